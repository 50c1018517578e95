import test from 'ava';
import type { Redis } from 'ioredis';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../../support/redis.ts';

/**
 * Issue 9 finding 9: the JWT introspection/revocation bridge must not depend on how the path is
 * spelled. oidc-provider's router ignores case and one trailing slash, so every spelling it routes
 * must introspect and revoke our JWT access tokens like the canonical one.
 */
const prefix = testPrefix('jwt-bridge');
const api = 'https://api.bridge.test';
let redis: Redis;
let server: RunningAuthServer;
let authorization: string;

test.before(async () => {
  redis = await connectRedis();
  server = await startAuthServer({ prefix, secrets: testSecrets() });
  await server.store.resources.add({ uri: api, scopes: ['reports:read'] });
  const { client_secret } = (await server.store.clients.add({
    id: 'bridge-m2m',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  })) as { client_secret: string };
  authorization = `Basic ${Buffer.from(`bridge-m2m:${client_secret}`).toString('base64')}`;
});

test.after.always(async () => {
  await server?.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

async function post(path: string, form: Record<string, string>) {
  const response = await fetch(`${server.issuer}${path}`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

async function accessToken(): Promise<string> {
  const { status, body } = await post('/token', { grant_type: 'client_credentials', scope: 'reports:read' });
  if (status !== 200) throw new Error(`token endpoint answered ${status}`);
  return String(body.access_token);
}

/** Spellings oidc-provider's router sends to the same endpoint (case-folded, one trailing slash). */
const spellings = (path: string) => [
  path,
  path.toUpperCase(),
  path.replace(/(^|\/)([a-z])/g, (_, slash: string, letter: string) => slash + letter.toUpperCase()),
  `${path}/`,
  `${path.toUpperCase()}/`,
];

for (const path of spellings('/token/introspection')) {
  test(`issue 9 #9: introspection at ${path} reads a JWT access token, active with its own jti`, async (t) => {
    const jwt = await accessToken();
    const { status, body } = await post(path, { token: jwt });
    t.is(status, 200);
    t.is(body.active, true);
    t.is(body.jti, JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()).jti);
  });
}

for (const path of spellings('/token/revocation')) {
  test(`issue 9 #9: revocation at ${path} revokes a JWT access token`, async (t) => {
    const jwt = await accessToken();
    t.true((await post('/token/introspection', { token: jwt })).body.active as boolean);
    const revoked = await post(path, { token: jwt });
    t.is(revoked.status, 200);
    t.is((await post('/token/introspection', { token: jwt })).body.active, false);
  });
}

test('a spelling the provider does not route is a 404, never an unbridged endpoint', async (t) => {
  const jwt = await accessToken();
  for (const path of ['/token/revocation//', '/token//revocation', '/token/revocation/x']) {
    t.is((await post(path, { token: jwt })).status, 404, path);
  }
  t.is((await post('/token/introspection', { token: jwt })).body.active, true);
});
