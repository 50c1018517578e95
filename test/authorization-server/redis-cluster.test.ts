import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import { Cluster } from 'ioredis';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { testPrefix } from '../support/redis.ts';
import { type ExtraRedis, startExtraRedis } from '../support/redis-server.ts';

// Three redis-server processes of this test's own, joined into a Redis Cluster; the whole
// authorization server runs on it, so every command it sends must stay within one hash slot.
const run = promisify(execFile);
const nodes: ExtraRedis[] = [];
let server: RunningAuthServer | undefined;

test.before(async () => {
  for (let i = 0; i < 3; i++) {
    nodes.push(
      await startExtraRedis([
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '2000',
      ]),
    );
  }
  await run(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    {
      timeout: 30_000,
    },
  );
  const probe = new Cluster([{ host: '127.0.0.1', port: nodes[0]?.port ?? 0 }]);
  const deadline = Date.now() + 15_000;
  while (!(await probe.cluster('INFO').catch(() => '')).toString().includes('cluster_state:ok')) {
    if (Date.now() > deadline) throw new Error('the test cluster did not reach cluster_state:ok');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  probe.disconnect();
});

test.after.always(async () => {
  await server?.close();
  await Promise.all(nodes.map((n) => n.stop()));
});

test('the whole authorization server runs on Redis Cluster: clients, keys, tokens, introspection, revocation', async (t) => {
  server = await startAuthServer({
    prefix: testPrefix('cluster'),
    secrets: testSecrets(),
    env: { REDIS_URL: `redis://127.0.0.1:${nodes[0]?.port}`, REDIS_CLUSTER: 'true' },
  });
  const { store, issuer } = server;
  const api = 'https://api.cluster.test';
  await store.resources.add({ uri: api, scopes: ['reports:read'] });
  const { client_secret } = await store.clients.add({
    id: 'cluster-client',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const auth = {
    authorization: `Basic ${Buffer.from(`cluster-client:${client_secret}`).toString('base64')}`,
  };
  const form = { 'content-type': 'application/x-www-form-urlencoded' };

  const issued = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { ...form, ...auth },
    body: 'grant_type=client_credentials',
  });
  t.is(issued.status, 200);
  const { access_token } = (await issued.json()) as { access_token: string };

  const introspect = () =>
    fetch(`${issuer}/token/introspection`, {
      method: 'POST',
      headers: { ...form, ...auth },
      body: `token=${access_token}`,
    }).then((r) => r.json() as Promise<{ active: boolean }>);
  t.true((await introspect()).active);
  t.is(
    (
      await fetch(`${issuer}/token/revocation`, {
        method: 'POST',
        headers: { ...form, ...auth },
        body: `token=${access_token}`,
      })
    ).status,
    200,
  );
  t.false((await introspect()).active);

  await store.keyRing.rotate();
  await store.users.add({ email: 'cluster@example.com', password: 'a long enough password' });
  t.truthy(await store.users.verifyPassword('cluster@example.com', 'a long enough password'));
  t.is((await store.clients.list()).length, 1);
  await store.audit.record({ actor: 'test', action: 'keys.rotate', source: 'test', outcome: 'ok' });
  t.is((await store.audit.recent())[0]?.action, 'keys.rotate');
  t.is((await fetch(`${issuer}/readyz`)).status, 200);
});
