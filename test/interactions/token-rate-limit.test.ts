import test from 'ava';
import { TOKEN_AUTH_FAILURES_PER_CALLER } from '../../src/authorization-server/rate-limit/limits.ts';
import { API, Deployment } from '../e2e/support/deployment.ts';
import type { RunningAuthServer } from '../support/auth-server.ts';

/** `/token` is limited per client, in Redis, so the budget holds across instances. */
const LIMIT = 3;
let deployment: Deployment;
let a: RunningAuthServer;
let b: RunningAuthServer;
const secrets: Record<string, string> = {};

test.before(async () => {
  deployment = await Deployment.create('test-token-limit');
  // TRUST_PROXY lets the test speak for two callers through X-Forwarded-For (a header only: all
  // traffic stays on loopback).
  const env = { TOKEN_RATE_LIMIT: String(LIMIT), TRUST_PROXY: 'true' };
  a = await deployment.start({ env });
  b = await deployment.start({ env });
  await deployment.addApi(a);
  for (const authMethod of ['client_secret_basic', 'client_secret_post'] as const) {
    const { client_secret } = await a.store.clients.add({
      id: `m2m-${authMethod}`,
      grants: ['client_credentials'],
      scope: ['policies:read'],
      resources: [API],
      redirectUris: [],
      postLogoutRedirectUris: [],
      authMethod,
    });
    secrets[authMethod] = client_secret as string;
  }
});

test.after.always(async () => {
  await deployment?.cleanup();
});

function requestToken(
  server: RunningAuthServer,
  authMethod: 'client_secret_basic' | 'client_secret_post',
  { from = '198.51.100.1', secret = secrets[authMethod] as string } = {},
) {
  const id = `m2m-${authMethod}`;
  const form = new URLSearchParams({ grant_type: 'client_credentials', scope: 'policies:read' });
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    'x-forwarded-for': from,
  };
  if (authMethod === 'client_secret_basic') {
    headers.authorization = `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  } else {
    form.set('client_id', id);
    form.set('client_secret', secret);
  }
  return fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers,
    body: form,
    signal: AbortSignal.timeout(10_000),
  });
}

for (const authMethod of ['client_secret_basic', 'client_secret_post'] as const) {
  test(`${authMethod}: at most TOKEN_RATE_LIMIT token requests per client per minute, across instances`, async (t) => {
    for (let i = 0; i < LIMIT; i++) {
      const response = await requestToken(i % 2 === 0 ? a : b, authMethod);
      t.is(response.status, 200, `request ${i + 1} is within the limit`);
      t.truthy(((await response.json()) as { access_token?: string }).access_token);
    }
    const limited = await requestToken(b, authMethod);
    t.is(limited.status, 429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    t.true(retryAfter > 0 && retryAfter <= 60);
    const body = (await limited.json()) as { error: string; error_description: string };
    t.is(body.error, 'temporarily_unavailable');
    t.regex(body.error_description, /too many token requests/);
    t.is((await requestToken(a, authMethod)).status, 429);
  });
}

test('wrong secrets sent with a client id are charged to the sender, never to the client', async (t) => {
  const { client_secret } = await a.store.clients.add({
    id: 'victim',
    grants: ['client_credentials'],
    scope: ['policies:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const attempt = (server: RunningAuthServer, from: string, secret: string) =>
    fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-forwarded-for': from,
        authorization: `Basic ${Buffer.from(`victim:${secret}`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials&scope=policies%3Aread',
      signal: AbortSignal.timeout(10_000),
    });
  const attacker = '203.0.113.9';
  let statuses: number[] = [];
  for (let i = 0; i < TOKEN_AUTH_FAILURES_PER_CALLER; i++)
    statuses.push((await attempt(i % 2 ? a : b, attacker, 'guess')).status);
  t.deepEqual([...new Set(statuses)], [401]);
  statuses = [
    (await attempt(a, attacker, 'guess')).status,
    (await attempt(b, attacker, client_secret as string)).status,
  ];
  t.deepEqual(statuses, [429, 429], 'the sender is held back, on every instance');
  t.is((await attempt(a, '198.51.100.7', client_secret as string)).status, 200, 'the real client is not');
  const neighbour = await a.store.clients.add({
    id: 'neighbour',
    grants: ['client_credentials'],
    scope: ['policies:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const fromSameAddress = await fetch(`${a.issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-forwarded-for': attacker,
      authorization: `Basic ${Buffer.from(`neighbour:${neighbour.client_secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
    signal: AbortSignal.timeout(10_000),
  });
  t.is(fromSameAddress.status, 200, 'nor another client behind the same address');
});
