import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import test from 'ava';

const children: ChildProcess[] = [];

test.after.always(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, ['src/resource-server/main.ts'], {
    env: { PATH: process.env.PATH ?? '', ISSUER: 'http://127.0.0.1:9', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    lines.push(JSON.parse(line));
  });
  return { child, lines };
}

async function waitFor(lines: Record<string, unknown>[], message: string) {
  while (!lines.some((line) => line.msg === message)) await new Promise((resolve) => setTimeout(resolve, 20));
  return lines.find((line) => line.msg === message) as Record<string, unknown>;
}

test('main listens, serves, and exits 0 on SIGTERM even though the AS is down', async (t) => {
  const { child, lines } = start({ RS_PORT: '0' });
  const listening = await waitFor(lines, 'resource server listening');
  const response = await fetch(`http://127.0.0.1:${listening.port}/health`);
  t.is(response.status, 200);
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.is(code, 0);
  t.truthy(lines.find((line) => line.msg === 'request' && line.path === '/health'));
});

test('main refuses to start on bad configuration, naming the variable', async (t) => {
  const { child, lines } = start({ RS_PORT: 'abc' });
  const [code] = await once(child, 'exit');
  t.is(code, 1);
  t.true(lines.some((line) => line.variable === 'RS_PORT'));
});

test('issue 9 finding 14: the fatal error for a bad REDIS_URL never prints its password', async (t) => {
  const { child, lines } = start({ RS_PORT: '0', REDIS_URL: 'redis://admin:pw-Zq81xK@[bad-host:6379' });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = await once(child, 'exit');
  t.is(code, 1);
  t.true(lines.some((line) => line.variable === 'REDIS_URL'));
  t.false(JSON.stringify(lines).includes('pw-Zq81xK'));
  t.false(stderr.includes('pw-Zq81xK'));
});
