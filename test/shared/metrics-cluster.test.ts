import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { freePort } from '../support/auth-server.ts';
import { metricValue } from '../support/prometheus.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/metrics-cluster.ts', import.meta.url));
let group: ChildProcess | undefined;
test.after.always(() => {
  if (group?.exitCode === null) group.kill('SIGKILL');
});

test('with several workers, any scrape answers for the whole group', async (t) => {
  const port = await freePort();
  group = spawn(process.execPath, [FIXTURE], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port), WORKERS: '3' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stdout = group.stdout as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the group did not start in 20 s')), 20_000);
    stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  // Whichever worker the connection reaches, the figures are the group's.
  for (let i = 0; i < 4; i++) {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'close' } });
    t.is(response.status, 200);
    const text = await response.text();
    t.is(metricValue(text, 'oauth_tokens_issued_total', { grant_type: 'client_credentials' }), 3, 'summed');
    const age = metricValue(text, 'signing_key_age_seconds', { alg: 'RS256', status: 'current' });
    t.true(age >= 300 && age < 330, `the oldest, not the sum: ${age}`);
  }
  group.kill('SIGTERM');
  await once(group, 'exit');
});
