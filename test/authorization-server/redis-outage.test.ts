import test from 'ava';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { testPrefix } from '../support/redis.ts';
import { type ExtraRedis, startExtraRedis } from '../support/redis-server.ts';

// This file runs its own redis-server (stopped and restarted on purpose), never the shared one.
let redis: ExtraRedis;
let server: RunningAuthServer;
let secret: string;
const api = 'https://api.outage.test';

test.before(async () => {
  redis = await startExtraRedis();
  server = await startAuthServer({
    prefix: testPrefix('outage'),
    secrets: testSecrets(),
    env: { REDIS_URL: redis.url },
  });
  await server.store.resources.add({ uri: api, scopes: ['reports:read'] });
  secret = String(
    (
      await server.store.clients.add({
        id: 'outage-client',
        grants: ['client_credentials'],
        scope: ['reports:read'],
        resources: [api],
        redirectUris: [],
        postLogoutRedirectUris: [],
      })
    ).client_secret,
  );
});

test.after.always(async () => {
  await server?.close();
  await redis?.stop();
});

// "Within 2 s" is the contract, so it bounds each request; it is not a performance measurement.
const within2s = () => ({ signal: AbortSignal.timeout(2000) });

function tokenRequest() {
  return fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`outage-client:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials&scope=reports%3Aread',
    ...within2s(),
  });
}

async function waitUntil(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

test.serial(
  'with Redis down, /readyz fails and OAuth endpoints answer 503 in the OAuth format; then service resumes',
  async (t) => {
    t.is((await tokenRequest()).status, 200);
    await redis.stop();

    const ready = await fetch(`${server.issuer}/readyz`, within2s());
    t.is(ready.status, 503);
    t.like(await ready.json(), { checks: { store: false } });
    t.is((await fetch(`${server.issuer}/healthz`, within2s())).status, 200, 'the process is alive');

    for (const request of [
      () => tokenRequest(),
      () => fetch(`${server.issuer}/.well-known/openid-configuration`, within2s()),
      () =>
        fetch(`${server.issuer}/token/introspection`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'token=x',
          ...within2s(),
        }),
    ]) {
      const response = await request();
      t.is(response.status, 503);
      t.is(((await response.json()) as { error: string }).error, 'temporarily_unavailable');
    }

    await redis.start();
    t.true(
      await waitUntil(async () => (await fetch(`${server.issuer}/readyz`)).status === 200, 10_000),
      'ready again',
    );
    // Clients written before the outage were acknowledged, so they are still there.
    t.true(
      await waitUntil(async () => (await tokenRequest()).status === 200, 10_000),
      'tokens again, no restart',
    );
  },
);
