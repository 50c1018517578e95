import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { Redis } from 'ioredis';
import { freePort, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, REDIS_URL, testPrefix } from '../support/redis.ts';
import { startExtraRedis } from '../support/redis-server.ts';

// `npm start` as a process: what an operator sees at start and at shutdown.
const MAIN = fileURLToPath(new URL('../../src/authorization-server/main.ts', import.meta.url));
const prefix = testPrefix('main');
let redis: Redis;

test.before(async () => {
  redis = await connectRedis();
});
test.after.always(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

// Bounds, not timing assertions: a process start on a loaded 2-core machine can take tens of
// seconds, so the test waits generously and fails only when the process never comes up.
const STARTUP_DEADLINE_MS = 90_000;
const KILL_AFTER_MS = 120_000;
const TEST_TIMEOUT_MS = 150_000;

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let buffer = '';
  child.stdout.on('data', (chunk) => {
    buffer += chunk;
    const complete = buffer.split('\n');
    buffer = complete.pop() ?? '';
    for (const line of complete) if (line.trim()) lines.push(JSON.parse(line));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
  void exited.then(() => clearTimeout(timer));
  return { child, lines, exited };
}

test('a bad variable stops the start with one fatal line naming it', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const { lines, exited } = start({ PORT: 'not-a-port' });
  t.is(await exited, 1);
  t.like(lines.at(-1), { level: 60, variable: 'PORT' });
  t.regex(String(lines.at(-1)?.msg), /PORT/);
});

test('it serves discovery, then SIGTERM stops it cleanly', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const port = await freePort();
  const { child, lines, exited } = start({
    PORT: String(port),
    REDIS_URL,
    REDIS_PREFIX: prefix,
    ...testSecrets(),
  });
  const issuer = `http://localhost:${port}`;
  const deadline = Date.now() + STARTUP_DEADLINE_MS;
  let metadata: { issuer?: string } | undefined;
  while (!metadata && child.exitCode === null && Date.now() < deadline) {
    metadata = await fetch(`${issuer}/.well-known/openid-configuration`)
      .then((r) => (r.ok ? (r.json() as Promise<{ issuer: string }>) : undefined))
      .catch(() => undefined);
    if (!metadata) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.is(metadata?.issuer, issuer);
  child.kill('SIGTERM');
  t.is(await exited, 0);
  t.true(lines.some((line) => line.msg === 'stopped'));
});

test('SIGTERM still stops it when Redis has gone away', async (t) => {
  t.timeout(TEST_TIMEOUT_MS);
  const redisServer = await startExtraRedis();
  const port = await freePort();
  const { child, exited } = start({
    PORT: String(port),
    REDIS_URL: redisServer.url,
    REDIS_PREFIX: prefix,
    ...testSecrets(),
  });
  const deadline = Date.now() + STARTUP_DEADLINE_MS;
  let up = false;
  while (!up && child.exitCode === null && Date.now() < deadline) {
    up = await fetch(`http://localhost:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (!up) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.true(up);
  await redisServer.stop();
  child.kill('SIGTERM');
  // Not a timing assertion: the process is killed after KILL_AFTER_MS, and that would show as null here.
  t.is(await exited, 0);
});
