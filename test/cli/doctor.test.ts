import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { Redis } from 'ioredis';
import { type Check, runDoctor } from '../../src/cli/doctor.ts';
import { loadConfig } from '../../src/config/config.ts';
import { basic, postForm } from '../integration/support/harness.ts';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { runCli } from '../support/cli.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';

const prefix = testPrefix('doctor');
const secrets = testSecrets();
const API = 'http://localhost:4000';
const DAY = 86_400_000;
let redis: Redis;
let as: RunningAuthServer;
let usedSecret: string;

test.before(async () => {
  redis = await connectRedis();
  as = await startAuthServer({ prefix, secrets, env: { TOKEN_RATE_LIMIT: '0' } });
  await as.store.resources.add({ uri: API, scopes: ['reports:read', 'policies:read'] });
  // A login client like the demo's, never used; a machine client that uses all it holds.
  await as.store.clients.add({
    id: 'idle-web',
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', 'policies:read'],
    resources: [API],
    redirectUris: ['http://localhost:8080/callback'],
    postLogoutRedirectUris: [],
    authMethod: 'none',
  });
  const used = await as.store.clients.add({
    id: 'busy-m2m',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  usedSecret = String(used.client_secret);
  const token = await postForm(
    `${as.issuer}/token`,
    { grant_type: 'client_credentials', resource: API, scope: 'reports:read' },
    { authorization: basic('busy-m2m', usedSecret) },
  );
  if (token.status !== 200) throw new Error(token.text);
});
test.after.always(async () => {
  await as?.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

// Serial: one test rotates the keys and one records a secret rotation, which the others judge.
const byId = (checks: Check[]) => Object.fromEntries(checks.map((c) => [c.id, c]));

test.serial('a good production configuration passes every check', async (t) => {
  const config = loadConfig({
    NODE_ENV: 'production',
    ISSUER: 'https://idp.example.com',
    REDIS_URL: 'rediss://idp:s3cret@redis.internal.example.com:6380',
    REDIS_PREFIX: prefix,
    STORE_KEY: testSecrets().STORE_KEY,
    ADMIN_PORT: '9000',
    KEY_ROTATION_INTERVAL: String(90 * 86_400),
  });
  // 40 days on: the keys are within the 90-day interval, the clients old enough to judge their use.
  const checks = await runDoctor({
    config,
    store: as.store,
    now: new Date(Date.now() + 40 * DAY),
    nodeVersion: '24.11.1',
  });
  const notPassing = checks.filter((c) => c.status !== 'pass' && c.id !== 'unused-grants-scopes');
  t.deepEqual(notPassing, []);
  t.deepEqual(
    checks.map((c) => c.id),
    [
      'issuer-https',
      'node-env',
      'store-key',
      'redis-password',
      'redis-tls',
      'admin-bind',
      'trust-proxy',
      'key-age',
      'retired-keys',
      'client-secret-age',
      'unused-grants-scopes',
      'argon2',
      'node-version',
    ],
  );
  // The machine client used its grant and scope; the idle login client is named, with what it never used.
  const unused = byId(checks)['unused-grants-scopes'];
  t.is(unused?.status, 'warn');
  t.regex(
    unused?.message ?? '',
    /idle-web \(grant authorization_code, grant refresh_token, scope policies:read\)/,
  );
  t.notRegex(unused?.message ?? '', /busy-m2m/);
});

test.serial('an old, unrotated, demo-like deployment gets warns and fails, each with its fix', async (t) => {
  const config = loadConfig({
    ISSUER: 'http://idp.example.com',
    REDIS_URL: 'redis://redis.example.com:6379',
    REDIS_PREFIX: prefix,
    KEYS_DIR: mkdtempSync(join(tmpdir(), 'doctor-keys-')),
    ADMIN_PORT: '9000',
    ADMIN_HOST: '0.0.0.0',
    TRUST_PROXY: 'true',
    CLIENT_SECRET_MAX_AGE_DAYS: '30',
  });
  await as.store.keyRing.rotate();
  const checks = byId(
    await runDoctor({
      config,
      store: as.store,
      now: new Date(Date.now() + 100 * DAY),
      nodeVersion: '20.19.0',
    }),
  );
  t.like(checks, {
    'issuer-https': { status: 'fail' },
    'node-env': { status: 'warn' },
    'store-key': { status: 'warn' },
    'redis-password': { status: 'fail' },
    'redis-tls': { status: 'fail' },
    'admin-bind': { status: 'warn' },
    'trust-proxy': { status: 'warn' },
    'key-age': { status: 'fail' },
    'retired-keys': { status: 'warn' },
    'client-secret-age': { status: 'warn' },
    'unused-grants-scopes': { status: 'warn' },
    'node-version': { status: 'fail' },
  });
  t.regex(checks['key-age']?.message ?? '', /KEY_ROTATION_INTERVAL/);
  t.regex(checks['retired-keys']?.message ?? '', /keys retire/);
  t.regex(checks['client-secret-age']?.message ?? '', /busy-m2m.*clients rotate-secret/);
  t.regex(checks['redis-password']?.message ?? '', /requirepass/);
});

test.serial('a rotated secret is judged from its rotation, found in the audit trail', async (t) => {
  const config = loadConfig({ REDIS_PREFIX: prefix, CLIENT_SECRET_MAX_AGE_DAYS: '30' });
  const later = new Date(Date.now() + 40 * DAY);
  await as.store.audit.record({
    actor: 'cli:test',
    action: 'clients.rotate-secret',
    target: 'busy-m2m',
    source: 'cli',
    outcome: 'ok',
  });
  const auditedNow = byId(await runDoctor({ config, store: as.store, now: new Date() }));
  t.is(auditedNow['client-secret-age']?.status, 'pass');
  const fortyDaysOn = byId(await runDoctor({ config, store: as.store, now: later }));
  t.is(fortyDaysOn['client-secret-age']?.status, 'warn');
});

test.serial(
  'npm run admin -- doctor on the demo store (no REDIS_URL): JSON checks and exit 1 for the fail',
  async (t) => {
    const result = await runCli(['doctor', '--json'], {
      REDIS_URL: '',
      KEYS_DIR: mkdtempSync(join(tmpdir(), 'doctor-demo-')),
    });
    t.is(result.code, 1, result.stderr);
    const { checks } = JSON.parse(result.stdout) as { checks: Check[] };
    for (const c of checks) {
      t.deepEqual(Object.keys(c), ['id', 'status', 'message']);
      t.true(['pass', 'warn', 'fail'].includes(c.status));
    }
    t.like(byId(checks), {
      'redis-url': { status: 'fail' },
      'issuer-https': { status: 'warn' },
      'node-env': { status: 'warn' },
      store: { status: 'warn' },
    });
  },
);

test.serial('npm run admin -- doctor on a shared store with warnings only exits 0', async (t) => {
  const result = await runCli(['doctor'], { REDIS_PREFIX: prefix, ...secrets });
  t.is(result.code, 0, result.stdout + result.stderr);
  t.regex(result.stdout, /^WARN {2}node-env: NODE_ENV=/m);
  t.regex(result.stdout, /^PASS {2}argon2: /m);
});
