import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const FIXTURE = fileURLToPath(new URL('./fixtures/worker-group.ts', import.meta.url));

test('a worker group is ready only once every worker listens, not at the first', async (t) => {
  const group = spawn(process.execPath, [FIXTURE], {
    env: { PATH: process.env.PATH ?? '', WORKERS: '3' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const killer = setTimeout(() => group.kill('SIGKILL'), 30_000);
  let output = '';
  group.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  await once(group, 'exit');
  clearTimeout(killer);
  const lines = output
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { listening: number; ready: boolean });
  t.deepEqual(lines, [
    { listening: 1, ready: false },
    { listening: 2, ready: false },
    { listening: 3, ready: true },
    { listening: 3, ready: true, done: true },
  ]);
});
