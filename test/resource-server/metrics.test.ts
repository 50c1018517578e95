import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import test from 'ava';
import { loadResourceServerConfig } from '../../src/config/resource-server-config.ts';
import { metricValue } from '../support/prometheus.ts';

let child: ChildProcess | undefined;
test.after.always(() => {
  if (child?.exitCode === null) child.kill('SIGKILL');
});

test('RS_METRICS_PORT: metrics on their own loopback listener; unset, none', (t) => {
  t.deepEqual(loadResourceServerConfig({ RS_METRICS_PORT: '9464' }).metrics, {
    port: 9464,
    host: '127.0.0.1',
  });
  t.is(loadResourceServerConfig({}).metrics, undefined);
  t.throws(() => loadResourceServerConfig({ RS_METRICS_PORT: 'abc' }), { message: /RS_METRICS_PORT/ });
});

test('the real resource server counts requests by route pattern and status on its metrics port', async (t) => {
  child = spawn(process.execPath, ['src/resource-server/main.ts'], {
    env: { PATH: process.env.PATH ?? '', ISSUER: 'http://127.0.0.1:9', RS_PORT: '0', RS_METRICS_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) =>
    lines.push(JSON.parse(line)),
  );
  const logged = async (message: string) => {
    for (let i = 0; i < 500; i++) {
      const found = lines.find((line) => line.msg === message);
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`no "${message}" in the log`);
  };
  const api = `http://127.0.0.1:${(await logged('resource server listening')).port}`;
  const metricsAt = await logged('metrics listening');
  t.is(metricsAt.host, '127.0.0.1');
  const metrics = `http://127.0.0.1:${metricsAt.port}`;

  t.is((await fetch(`${api}/health`)).status, 200);
  t.is((await fetch(`${api}/policies/p-123`)).status, 401);
  t.is((await fetch(`${api}/metrics`)).status, 404, 'not on the public port');

  const scraped = await fetch(`${metrics}/metrics`);
  t.is(scraped.status, 200);
  const text = await scraped.text();
  const count = (route: string, status: string) =>
    metricValue(text, 'http_request_duration_seconds_count', {
      server: 'resource',
      method: 'GET',
      route,
      status,
    });
  t.is(count('/health', '200'), 1);
  t.is(count('/policies/:id', '401'), 1);
  t.false(text.includes('p-123'));
  t.is((await fetch(`${metrics}/other`)).status, 404);

  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.is(code, 0);
});
