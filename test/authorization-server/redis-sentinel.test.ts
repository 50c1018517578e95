import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { Redis } from 'ioredis';
import { freePort, type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, testPrefix } from '../support/redis.ts';
import { type ExtraRedis, startExtraRedis } from '../support/redis-server.ts';

// Redis high availability with Sentinel, by configuration only: a primary, a replica and a sentinel
// of the test's own on loopback ports. The primary is killed while tokens are being issued; the
// server carries on with the promoted replica, without a restart.
const NAME = 'idp-primary';
let primary: ExtraRedis;
let replica: ExtraRedis;
let sentinel: ChildProcess;
let sentinelPort: number;
let sentinelDir: string;
let sentinelClient: Redis;
let server: RunningAuthServer;
let secret: string;
const api = 'https://api.sentinel.test';

async function waitUntil(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function role(redis: ExtraRedis): Promise<string> {
  const connection = await connectRedis(redis.url);
  try {
    return String(((await connection.call('ROLE')) as unknown[])[0]);
  } finally {
    connection.disconnect();
  }
}

test.before(async () => {
  primary = await startExtraRedis();
  replica = await startExtraRedis(['--replicaof', '127.0.0.1', String(primary.port)]);
  await waitUntil(
    'the replica is in sync',
    async () => {
      const connection = await connectRedis(replica.url);
      const info = await connection.info('replication');
      connection.disconnect();
      return info.includes('master_link_status:up');
    },
    20_000,
  );

  sentinelPort = await freePort();
  sentinelDir = mkdtempSync(join(tmpdir(), 'idp-sentinel-'));
  const configFile = join(sentinelDir, 'sentinel.conf');
  writeFileSync(
    configFile,
    [
      `port ${sentinelPort}`,
      'bind 127.0.0.1',
      `dir ${sentinelDir}`,
      `sentinel monitor ${NAME} 127.0.0.1 ${primary.port} 1`,
      `sentinel down-after-milliseconds ${NAME} 1000`,
      `sentinel failover-timeout ${NAME} 10000`,
      '',
    ].join('\n'),
  );
  sentinel = spawn('redis-server', [configFile, '--sentinel'], { stdio: 'ignore' });
  sentinelClient = await (async () => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await connectRedis(`redis://127.0.0.1:${sentinelPort}`);
      } catch (error) {
        if (attempt > 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  })();
  await waitUntil(
    'the sentinel knows the replica',
    async () => ((await sentinelClient.call('SENTINEL', 'REPLICAS', NAME)) as unknown[]).length === 1,
    30_000,
  );

  server = await startAuthServer({
    prefix: testPrefix('sentinel'),
    secrets: testSecrets(),
    env: {
      // The host here is not used: the sentinels name the primary. REDIS_URL gives credentials and db.
      REDIS_URL: 'redis://sentinel-managed',
      REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`,
      REDIS_SENTINEL_NAME: NAME,
    },
  });
  await server.store.resources.add({ uri: api, scopes: ['reports:read'] });
  secret = String(
    (
      await server.store.clients.add({
        id: 'sentinel-client',
        grants: ['client_credentials'],
        scope: ['reports:read'],
        resources: [api],
        redirectUris: [],
        postLogoutRedirectUris: [],
      })
    ).client_secret,
  );
  // What was acknowledged before the failover and must survive it has reached the replica (WAIT).
  const onPrimary = await connectRedis(primary.url);
  const replicated = await onPrimary.call('WAIT', '1', '5000');
  onPrimary.disconnect();
  if (Number(replicated) !== 1) throw new Error('the replica did not acknowledge the writes');
});

test.after.always(async () => {
  await server?.close();
  sentinelClient?.disconnect();
  if (sentinel && sentinel.exitCode === null) {
    sentinel.kill('SIGTERM');
    await new Promise((resolve) => sentinel.once('exit', resolve));
  }
  await replica?.stop();
  await primary?.stop('SIGKILL');
  for (const dir of [sentinelDir, replica?.dir, primary?.dir])
    if (dir) rmSync(dir, { recursive: true, force: true });
});

function tokenRequest(): Promise<Response> {
  return fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`sentinel-client:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials&scope=reports%3Aread',
    signal: AbortSignal.timeout(5000),
  });
}

test('the primary is killed under load; service resumes on the promoted replica without a restart', async (t) => {
  t.is((await tokenRequest()).status, 200);

  // Bounded load: one token request after another, for at most 60 s or until told to stop.
  const statuses: number[] = [];
  let stop = false;
  const load = (async () => {
    const deadline = Date.now() + 60_000;
    while (!stop && Date.now() < deadline) {
      statuses.push(
        await tokenRequest().then(
          (r) => r.status,
          () => 0,
        ),
      );
    }
  })();
  await waitUntil(
    'some tokens are issued under load',
    async () => statuses.filter((s) => s === 200).length >= 3,
    20_000,
  );

  await primary.stop('SIGKILL');
  const killedAt = statuses.length;
  const killedTime = Date.now();
  await waitUntil(
    'the sentinel promotes the replica',
    async () => (await role(replica)) === 'master',
    40_000,
  );
  await waitUntil(
    'tokens are issued again',
    async () => statuses.length > killedAt && statuses.at(-1) === 200,
    40_000,
  );
  stop = true;
  await load;
  t.log(
    `service resumed ${((Date.now() - killedTime) / 1000).toFixed(1)} s after the kill; ` +
      `${statuses.length} requests, ${statuses.filter((s) => s === 503).length} answered 503 meanwhile`,
  );

  const master = (await sentinelClient.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)) as string[];
  t.is(Number(master[1]), replica.port, 'the sentinel names the old replica as the primary');
  t.true(
    statuses.every((status) => status === 200 || status === 503),
    `during the failover requests got 200 or 503, never a 500 or no answer: ${[...new Set(statuses)].join(',')}`,
  );
  // The client registered before the failover (replicated) still authenticates, and a token made
  // now is recorded on the new primary: introspection finds it active.
  const response = await tokenRequest();
  t.is(response.status, 200);
  const { access_token: token } = (await response.json()) as { access_token: string };
  const introspection = await fetch(`${server.issuer}/token/introspection`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`sentinel-client:${secret}`).toString('base64')}`,
    },
    body: `token=${token}`,
  });
  t.like(await introspection.json(), { active: true, client_id: 'sentinel-client' });
  const ready = await fetch(`${server.issuer}/readyz`);
  t.is(ready.status, 200);
});
