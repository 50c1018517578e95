/**
 * `npm test` after the lint step: runs ava against a real Redis. Uses the one answering at
 * REDIS_URL (default redis://127.0.0.1:6379); when none answers at a loopback address, starts a
 * `redis-server` of its own on a free loopback port in a temporary folder, points the suite at
 * it, and removes both afterwards. Arguments are passed to ava (`npm test -- test/cli`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

const AVA_CLI = join(import.meta.dirname, '..', 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

async function answers(url: string): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

interface OwnRedis {
  url: string;
  stop(): void;
}

async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'idp-test-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  const missing = new Promise<never>((_, reject) =>
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT'
          ? new Error(
              'npm test: no Redis answers and redis-server is not installed; install the Debian package `redis-server` (apt-get install redis-server), or set REDIS_URL to a running Redis',
            )
          : error,
      ),
    ),
  );
  const deadline = Date.now() + 10_000;
  const up = (async () => {
    while (!(await answers(url))) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`npm test: the redis-server started on ${url} did not answer`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    await Promise.race([up, missing]);
  } catch (error) {
    stop();
    throw error;
  }
  return { url, stop };
}

async function main(): Promise<number> {
  const url = process.env.REDIS_URL || DEFAULT_REDIS_URL;
  let own: OwnRedis | undefined;
  if (!(await answers(url))) {
    const host = new URL(url).hostname;
    if (!LOOPBACK.has(host)) {
      console.error(`npm test: no Redis answers at REDIS_URL=${url}; start it, or unset REDIS_URL`);
      return 1;
    }
    own = await startOwnRedis();
    console.error(`npm test: no Redis answered at ${url}; started redis-server at ${own.url} for this run`);
  }
  const ava = spawn(process.execPath, [AVA_CLI, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, REDIS_URL: own?.url ?? url },
  });
  const forward = (signal: NodeJS.Signals) => ava.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((resolve) =>
    ava.once('exit', (status, signal) => resolve(status ?? (signal ? 1 : 0))),
  );
  own?.stop();
  return code;
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(error.message);
    process.exit(1);
  },
);
