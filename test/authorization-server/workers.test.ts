import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { Redis } from 'ioredis';
import { openStore } from '../../src/authorization-server/storage/store.ts';
import { loadConfig } from '../../src/config/config.ts';
import { freePort, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, REDIS_URL, testPrefix } from '../support/redis.ts';

// WORKERS=2: `npm start` as a Node cluster of two workers sharing the port and Redis.
const AS_MAIN = fileURLToPath(new URL('../../src/authorization-server/main.ts', import.meta.url));
const RS_MAIN = fileURLToPath(new URL('../../src/resource-server/main.ts', import.meta.url));
const prefix = testPrefix('workers');
const secrets = testSecrets();
const API = 'https://workers.api.test';
let redis: Redis;

test.before(async () => {
  redis = await connectRedis();
});
test.after.always(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

interface LogLine {
  pid?: number;
  msg?: string;
  method?: string;
  path?: string;
  [field: string]: unknown;
}

function start(main: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [main], {
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let buffer = '';
  child.stdout.on('data', (chunk) => {
    buffer += chunk;
    const complete = buffer.split('\n');
    buffer = complete.pop() ?? '';
    for (const line of complete) if (line.trim()) lines.push(JSON.parse(line));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  void exited.then(() => clearTimeout(timer));
  return { child, lines, exited };
}

/** One request on a connection of its own, so the cluster hands each request to the next worker. */
function fresh(
  url: string,
  {
    method = 'GET',
    headers = {},
    body,
  }: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 45_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} did not happen in ${ms} ms`);
}

test.serial(
  'two workers: tokens cross between them, key changes reach both, SIGTERM stops the group',
  async (t) => {
    const port = await freePort();
    const env = {
      PORT: String(port),
      REDIS_URL,
      REDIS_PREFIX: prefix,
      WORKERS: '2',
      RELOAD_INTERVAL_MS: '5000',
      ...secrets,
    };
    const store = await openStore(loadConfig(env));
    const { child, lines, exited } = start(AS_MAIN, env);
    try {
      const issuer = `http://localhost:${port}`;
      await until('two workers listening', async () =>
        new Set(lines.filter((l) => l.msg === 'authorization server listening').map((l) => l.pid)).size === 2
          ? true
          : undefined,
      );
      await store.resources.add({ uri: API, scopes: ['reports:read'] });
      const { client_secret } = await store.clients.add({
        id: 'workers-m2m',
        grants: ['client_credentials'],
        scope: ['reports:read'],
        resources: [API],
        redirectUris: [],
        postLogoutRedirectUris: [],
      });
      const basic = `Basic ${Buffer.from(`workers-m2m:${client_secret}`).toString('base64')}`;
      const form = { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' };

      // Each token is issued on one connection and introspected on the next: with two workers
      // taking connections in turn, issuer and introspector differ.
      for (let i = 0; i < 6; i++) {
        const issued = await fresh(`${issuer}/token`, {
          method: 'POST',
          headers: form,
          body: 'grant_type=client_credentials&scope=reports%3Aread',
        });
        t.is(issued.status, 200);
        const introspected = await fresh(`${issuer}/token/introspection`, {
          method: 'POST',
          headers: form,
          body: `token=${issued.json.access_token}`,
        });
        t.is(introspected.json.active, true, `token ${i} is active on the other worker`);
      }
      // Log lines reach stdout in blocks, within a fraction of a second (shared/logger.ts).
      await until('the request lines', async () =>
        lines.filter((l) => l.msg === 'request').length >= 12 ? true : undefined,
      );
      const servedBy = (path: string) =>
        new Set(lines.filter((l) => l.msg === 'request' && l.path === path).map((l) => l.pid));
      const issuers = servedBy('/token');
      const introspectors = servedBy('/token/introspection');
      t.is(new Set([...issuers, ...introspectors]).size, 2, 'both workers served');
      t.true(
        [...introspectors].some((pid) => !issuers.has(pid)) ||
          [...issuers].some((pid) => !introspectors.has(pid)),
        'a worker introspected tokens it did not issue',
      );

      // A key change made elsewhere (the CLI's store) reaches both workers within 5 s.
      const rotated = await store.keyRing.rotate();
      const signing = rotated.keys.filter((k) => k.status === 'current').map((k) => k.kid);
      const started = Date.now();
      await until(
        'every worker signing with the new keys',
        async () => {
          for (let i = 0; i < 4; i++) {
            const { json } = await fresh(`${issuer}/token`, {
              method: 'POST',
              headers: form,
              body: 'grant_type=client_credentials&scope=reports%3Aread',
            });
            const kid = JSON.parse(
              Buffer.from(String(json.access_token).split('.')[0] as string, 'base64url').toString(),
            ).kid;
            if (!signing.includes(kid)) return undefined;
          }
          return true;
        },
        5_000,
      );
      t.true(Date.now() - started <= 5_000);

      child.kill('SIGTERM');
      t.is(await exited, 0);
      const stopped = lines.filter((l) => l.msg === 'stopped').map((l) => l.pid);
      t.is(new Set(stopped).size, 2, 'each worker finished and stopped');
      t.true(lines.some((l) => l.msg === 'all workers stopped'));
    } finally {
      child.kill('SIGKILL');
      await store.close();
    }
  },
);

test.serial('the resource server runs as two workers too, and SIGTERM stops the group', async (t) => {
  const port = await freePort();
  const { child, lines, exited } = start(RS_MAIN, {
    RS_PORT: String(port),
    REDIS_URL,
    REDIS_PREFIX: prefix,
    WORKERS: '2',
    KEYS_DIR: secrets.KEYS_DIR,
    ISSUER: 'http://127.0.0.1:9',
  });
  try {
    await until('two workers listening', async () =>
      new Set(lines.filter((l) => l.msg === 'resource server listening').map((l) => l.pid)).size === 2
        ? true
        : undefined,
    );
    for (let i = 0; i < 4; i++) t.is((await fresh(`http://127.0.0.1:${port}/health`)).status, 200);
    child.kill('SIGTERM');
    t.is(await exited, 0);
    t.true(lines.some((l) => l.msg === 'all workers stopped'));
  } finally {
    child.kill('SIGKILL');
  }
});

test('WORKERS is validated, and more than one needs REDIS_URL', (t) => {
  t.is(loadConfig({ WORKERS: 'auto', REDIS_URL }).workers >= 1, true);
  t.is(loadConfig({}).workers, 1);
  t.throws(() => loadConfig({ WORKERS: 'many' }), { message: /WORKERS/ });
  t.throws(() => loadConfig({ WORKERS: '257', REDIS_URL }), { message: /WORKERS/ });
  t.throws(() => loadConfig({ WORKERS: '0' }), { message: /WORKERS/ });
  t.throws(() => loadConfig({ WORKERS: '2' }), { message: /WORKERS: .*REDIS_URL/ });
});
