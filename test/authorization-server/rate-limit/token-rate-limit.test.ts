import test from 'ava';
import {
  TOKEN_AUTH_FAILURES_PER_ADDRESS,
  TOKEN_AUTH_FAILURES_PER_CALLER,
} from '../../../src/authorization-server/rate-limit/limits.ts';
import { API, Deployment, startClientSite } from '../../e2e/support/deployment.ts';
import {
  authorizationRequest,
  exchangeCode,
  runAuthorization,
  UserAgent,
} from '../../e2e/support/user-agent.ts';
import type { RunningAuthServer } from '../../support/auth-server.ts';

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

let site: Awaited<ReturnType<typeof startClientSite>> | undefined;

test.after.always(async () => {
  await site?.close();
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

test('a burst of parallel requests gets no more tokens than the budget: the take and the token record are one step', async (t) => {
  const { client_secret } = await a.store.clients.add({
    id: 'm2m-burst',
    grants: ['client_credentials'],
    scope: ['policies:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const burst = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      fetch(`${(i % 2 ? a : b).issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-forwarded-for': '198.51.100.77',
          authorization: `Basic ${Buffer.from(`m2m-burst:${client_secret}`).toString('base64')}`,
        },
        body: 'grant_type=client_credentials&scope=policies%3Aread',
        signal: AbortSignal.timeout(10_000),
      }),
    ),
  );
  const statuses = burst.map((r) => r.status);
  t.is(
    statuses.filter((s) => s === 200).length,
    LIMIT,
    `exactly the budget gets tokens: ${statuses.join(' ')}`,
  );
  t.is(statuses.filter((s) => s === 429).length, 30 - LIMIT);
  for (const refused of burst.filter((r) => r.status === 429)) {
    const retryAfter = Number(refused.headers.get('retry-after'));
    t.true(retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const body = (await refused.json()) as { error: string; error_description: string };
    t.is(body.error, 'temporarily_unavailable');
    t.regex(body.error_description, /too many token requests for this client/);
  }
});

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

test.serial(
  'a client id longer than any registered one gets no counter of its own: one key per address, whatever the ids',
  async (t) => {
    const before = (await deployment.keys('rate-limit:token-auth-failures:*')).length;
    const statuses = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        fetch(`${a.issuer}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '192.0.2.61' },
          // Ids of 5,000 characters: no registered client can have one (1-128 visible ASCII).
          body: `grant_type=client_credentials&client_id=${'x'.repeat(5000)}${i}&client_secret=wrong`,
          signal: AbortSignal.timeout(10_000),
        }).then((r) => r.status),
      ),
    );
    t.deepEqual(new Set(statuses), new Set([401]));
    const created = (await deployment.keys('rate-limit:token-auth-failures:*')).length - before;
    t.is(created, 1, 'one per-(address, no client) counter, not one per made-up id');
  },
);

test.serial(
  'one address cycling through made-up client ids is stopped, and writes a bounded number of keys',
  async (t) => {
    const before = (await deployment.keys('rate-limit:token-auth-failures:*')).length;
    const from = '192.0.2.44';
    const attempt = (id: string) =>
      fetch(`${a.issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-forwarded-for': from,
          authorization: `Basic ${Buffer.from(`${id}:wrong`).toString('base64')}`,
        },
        body: 'grant_type=client_credentials',
        signal: AbortSignal.timeout(10_000),
      });
    const statuses: number[] = [];
    // In parallel batches, as an attacker would send them.
    for (let batch = 0; batch < 15; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => attempt(`made-up-${batch * 20 + i}`).then((r) => r.status)),
      );
      statuses.push(...answers);
    }
    const limited = statuses.filter((s) => s === 429).length;
    t.true(limited > 0, 'the address is held back');
    t.true(
      statuses.filter((s) => s === 401).length <= TOKEN_AUTH_FAILURES_PER_ADDRESS,
      'at most the per-address budget of failures reached the provider',
    );
    t.is(statuses.filter((s) => s !== 401 && s !== 429).length, 0);
    const created = (await deployment.keys('rate-limit:token-auth-failures:*')).length - before;
    t.true(
      created <= TOKEN_AUTH_FAILURES_PER_ADDRESS,
      `${created} per-(address, id) counters for one address`,
    );
    // Another address is not affected.
    const other = await fetch(`${a.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-forwarded-for': '192.0.2.45',
        authorization: `Basic ${Buffer.from('made-up-0:wrong').toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
      signal: AbortSignal.timeout(10_000),
    });
    t.is(other.status, 401);
  },
);

test('issue 9 #14: failed client authentications from one IPv6 /64 count as one address, whatever its host bits', async (t) => {
  // One machine holds a whole /64: a fresh address per request must not buy a fresh budget.
  const attempt = (i: number) =>
    fetch(`${a.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-forwarded-for': `2001:db8:44:7:${(i + 1).toString(16)}::1`,
        authorization: `Basic ${Buffer.from(`v6-made-up-${i}:wrong`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
      signal: AbortSignal.timeout(10_000),
    });
  const statuses: number[] = [];
  const batches = Math.ceil((TOKEN_AUTH_FAILURES_PER_ADDRESS + 40) / 20);
  for (let batch = 0; batch < batches; batch++) {
    statuses.push(
      ...(await Promise.all(
        Array.from({ length: 20 }, (_, i) => attempt(batch * 20 + i).then((r) => r.status)),
      )),
    );
  }
  t.true(statuses.includes(429), 'the /64 is held back');
  t.true(statuses.filter((s) => s === 401).length <= TOKEN_AUTH_FAILURES_PER_ADDRESS);
  t.is(statuses.filter((s) => s !== 401 && s !== 429).length, 0);
});

test("one user of a public client looping refresh tokens spends only their own grant's budget", async (t) => {
  site = await startClientSite();
  const redirectUri = `${site.origin}/callback`;
  await a.store.clients.add({
    id: 'public-app',
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', 'offline_access'],
    resources: [],
    redirectUris: [redirectUri],
    postLogoutRedirectUris: [],
    authMethod: 'none',
  });
  const signIn = async (email: string) => {
    const user = await deployment.addUser(a, email);
    const request = authorizationRequest(a.issuer, {
      client_id: 'public-app',
      redirect_uri: redirectUri,
      scope: 'openid offline_access',
      prompt: 'consent',
    });
    const flow = await runAuthorization(new UserAgent(), request.url, redirectUri, {
      credentials: user,
      consent: 'approve',
    });
    return exchangeCode(a.issuer, flow.callback, {
      client_id: 'public-app',
      redirect_uri: redirectUri,
      verifier: request.verifier,
    });
  };
  const refresh = (server: RunningAuthServer, refreshToken: string) =>
    fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        client_id: 'public-app',
      }),
      signal: AbortSignal.timeout(10_000),
    });

  const looping = await signIn('looping@example.com');
  let refreshToken = looping.refresh_token as string;
  const statuses: number[] = [];
  for (let i = 0; i < LIMIT; i++) {
    const response = await refresh(i % 2 ? a : b, refreshToken);
    statuses.push(response.status);
    if (response.status === 200)
      refreshToken = ((await response.json()) as { refresh_token: string }).refresh_token;
  }
  // The code exchange and LIMIT - 1 refreshes fit the grant's budget; the next refresh does not.
  t.deepEqual(statuses, [...Array(LIMIT - 1).fill(200), 429]);

  const other = await signIn('patient@example.com');
  t.truthy(other.refresh_token, 'another user of the same app still gets tokens');
  t.is((await refresh(b, other.refresh_token as string)).status, 200);
});
