import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import { Cluster } from 'ioredis';
import {
  authorizationRequest,
  exchangeCode,
  runAuthorization,
  UserAgent,
} from '../e2e/support/user-agent.ts';
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
  server = await startAuthServer({
    prefix: testPrefix('cluster'),
    secrets: testSecrets(),
    env: { REDIS_URL: `redis://127.0.0.1:${nodes[0]?.port}`, REDIS_CLUSTER: 'true' },
  });
});

test.after.always(async () => {
  await server?.close();
  await Promise.all(nodes.map((n) => n.stop()));
});

function running(): RunningAuthServer {
  if (!server) throw new Error('the cluster test server did not start');
  return server;
}

test.serial(
  'the whole authorization server runs on Redis Cluster: clients, keys, tokens, introspection, revocation',
  async (t) => {
    const { store, issuer } = running();
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
  },
);

test.serial(
  'on Redis Cluster: login session, authorization code, refresh rotation and reuse detection',
  async (t) => {
    const { store, issuer } = running();
    const api = 'https://api.cluster-login.test';
    const redirectUri = 'https://app.cluster.test/callback';
    await store.resources.add({ uri: api, scopes: ['policies:read'] });
    await store.clients.add({
      id: 'cluster-app',
      grants: ['authorization_code', 'refresh_token'],
      scope: ['openid', 'offline_access', 'policies:read'],
      resources: [api],
      redirectUris: [redirectUri],
      postLogoutRedirectUris: [],
      authMethod: 'none',
      firstParty: true,
    });
    const credentials = { email: 'cluster-login@example.com', password: 'a long enough password' };
    await store.users.add(credentials);

    const browser = new UserAgent();
    const signIn = async (expectLogin: boolean) => {
      const request = authorizationRequest(issuer, {
        client_id: 'cluster-app',
        redirect_uri: redirectUri,
        scope: 'openid offline_access policies:read',
        resource: api,
      });
      const flow = await runAuthorization(browser, request.url, redirectUri, { credentials });
      t.is(flow.pages.includes('login'), expectLogin, expectLogin ? 'signs in' : 'the session is remembered');
      return exchangeCode(issuer, flow.callback, {
        client_id: 'cluster-app',
        redirect_uri: redirectUri,
        verifier: request.verifier,
      });
    };
    const first = await signIn(true);
    t.truthy(first.id_token);
    t.truthy(first.refresh_token);
    const second = await signIn(false);
    t.truthy(second.access_token);

    const refresh = (refreshToken: string) =>
      fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
          client_id: 'cluster-app',
        }),
      });
    const rotated = await refresh(first.refresh_token as string);
    t.is(rotated.status, 200);
    const { refresh_token: next } = (await rotated.json()) as { refresh_token: string };
    t.not(next, first.refresh_token);
    const reused = await refresh(first.refresh_token as string);
    t.is(reused.status, 400, 'a spent refresh token is refused');
    t.is((await refresh(next)).status, 400, 'and its reuse revoked the whole grant');
  },
);

test.serial(
  'on Redis Cluster a burst of client-credentials requests gets no more tokens than the budget',
  async (t) => {
    // A second instance of its own, with a budget of two, on the same cluster.
    const limited = await startAuthServer({
      prefix: testPrefix('cluster-budget'),
      secrets: testSecrets(),
      env: {
        REDIS_URL: `redis://127.0.0.1:${nodes[0]?.port}`,
        REDIS_CLUSTER: 'true',
        TOKEN_RATE_LIMIT: '2',
      },
    });
    t.teardown(() => limited.close());
    const api = 'https://budget.cluster.test';
    await limited.store.resources.add({ uri: api, scopes: ['reports:read'] });
    const { client_secret } = await limited.store.clients.add({
      id: 'cluster-burst',
      grants: ['client_credentials'],
      scope: ['reports:read'],
      resources: [api],
      redirectUris: [],
      postLogoutRedirectUris: [],
    });
    const statuses = await Promise.all(
      Array.from({ length: 12 }, () =>
        fetch(`${limited.issuer}/token`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: `Basic ${Buffer.from(`cluster-burst:${client_secret}`).toString('base64')}`,
          },
          body: 'grant_type=client_credentials',
        }).then((r) => r.status),
      ),
    );
    t.is(statuses.filter((s) => s === 200).length, 2, statuses.join(' '));
    t.is(statuses.filter((s) => s === 429).length, 10);
  },
);
