import test from 'ava';
import type { Redis } from 'ioredis';
import {
  base64url,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import type { SigningKey } from '../../src/authorization-server/keys/signing-key-ring.ts';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';
import {
  bearer,
  type ClientCredentials,
  call,
  clientCredentialsToken,
  introspect,
  revoke,
  type Served,
  startResourceServer,
  userTokens,
} from './support/harness.ts';

const prefix = testPrefix('it-rs');
const secrets = testSecrets();
const api = 'https://insurance-api.integration.test';
const otherApi = 'https://other-api.integration.test';
const INSURANCE_SCOPES = ['policies:read', 'policies:write', 'claims:read', 'claims:write', 'reports:read'];
const redirectUri = 'https://app.integration.test/callback';

let redis: Redis;
let as: RunningAuthServer;
let rs: Served;
let reporter: ClientCredentials;
let policyReader: ClientCredentials;
let otherClient: ClientCredentials;
let introspector: ClientCredentials;
let web: ClientCredentials;
let alice: string;
let bob: string;

async function addClient(
  id: string,
  fields: {
    grants: ('client_credentials' | 'authorization_code')[];
    scope: string[];
    resources: string[];
  } & {
    redirectUris?: string[];
    firstParty?: boolean;
  },
): Promise<ClientCredentials> {
  const created = await as.store.clients.add({
    id,
    redirectUris: [],
    postLogoutRedirectUris: [],
    ...fields,
  });
  return { id, secret: String(created.client_secret) };
}

test.before(async () => {
  redis = await connectRedis();
  as = await startAuthServer({ prefix, secrets, env: { TOKEN_RATE_LIMIT: '0' } });
  await as.store.resources.add({ uri: api, scopes: INSURANCE_SCOPES });
  await as.store.resources.add({ uri: otherApi, scopes: ['other:read'] });
  reporter = await addClient('reporter', {
    grants: ['client_credentials'],
    scope: ['reports:read', 'policies:read'],
    resources: [api],
  });
  policyReader = await addClient('policy-reader', {
    grants: ['client_credentials'],
    scope: ['policies:read'],
    resources: [api],
  });
  otherClient = await addClient('other-client', {
    grants: ['client_credentials'],
    scope: ['other:read'],
    resources: [otherApi],
  });
  // RFC 7662 policy of the AS (provider/configuration.ts): a confidential client registered for the
  // token's audience may introspect it.
  introspector = await addClient('rs-introspector', {
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
  });
  web = await addClient('web-app', {
    grants: ['authorization_code'],
    scope: ['openid', 'policies:read', 'policies:write', 'claims:read', 'claims:write'],
    resources: [api],
    redirectUris: [redirectUri],
    firstParty: true,
  });
  alice = (await as.store.users.add({ email: 'alice@integration.test', password: 'alice-password-123' })).sub;
  bob = (await as.store.users.add({ email: 'bob@integration.test', password: 'bob-password-12345' })).sub;
  rs = await startResourceServer({
    issuer: as.issuer,
    audience: api,
    introspection: { clientId: introspector.id, clientSecret: introspector.secret },
  });
});

test.after.always(async () => {
  await Promise.allSettled([rs?.close(), as?.close()]);
  if (redis) {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  }
});

const get = (path: string, token?: string) =>
  call(`${rs.url}${path}`, { headers: token ? bearer(token) : {} });
const postJson = (path: string, token: string, body: unknown) =>
  call(`${rs.url}${path}`, {
    method: 'POST',
    headers: { ...bearer(token), 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
const challenge = (r: { headers: Headers }) => r.headers.get('www-authenticate') ?? '';

function userToken(accountId: string, scope: string) {
  return userTokens(as, { client: web, redirectUri, accountId, scope, resource: api });
}

test('a client-credentials token from the real AS is accepted on GET /reports/claims', async (t) => {
  const token = await clientCredentialsToken(as.issuer, reporter, { scope: 'reports:read', resource: api });
  t.is(decodeJwt(token).aud, api);
  const r = await get('/reports/claims', token);
  t.is(r.status, 200, r.text);
  t.is(r.headers.get('content-type')?.split(';')[0], 'application/json');
});

test('a client-credentials token is refused on user routes with 403, even with the right scope', async (t) => {
  const token = await clientCredentialsToken(as.issuer, reporter, { scope: 'reports:read policies:read' });
  t.true(String(decodeJwt(token).scope).split(' ').includes('policies:read'));
  for (const path of ['/policies', '/policies/some-id', '/policies/some-id/claims']) {
    const r = await get(path, token);
    t.is(r.status, 403, `${path}: ${r.text}`);
    t.is(typeof r.json.error, 'string', path);
  }
  const write = await postJson('/policies', token, { product: 'home', coverage: 1000 });
  t.is(write.status, 403, write.text);
});

test('no token: 401 with a Bearer challenge and no error code', async (t) => {
  const r = await get('/reports/claims');
  t.is(r.status, 401);
  t.regex(challenge(r), /^Bearer /);
  t.false(challenge(r).includes('error='));
});

test('a real token for another resource (audience) is refused with 401 invalid_token', async (t) => {
  const token = await clientCredentialsToken(as.issuer, otherClient, { scope: 'other:read' });
  t.is(decodeJwt(token).aud, otherApi);
  const r = await get('/reports/claims', token);
  t.is(r.status, 401, r.text);
  t.is(r.json.error, 'invalid_token');
  t.true(challenge(r).includes('error="invalid_token"'));
});

test('a real token without reports:read is refused with 403 insufficient_scope naming reports:read', async (t) => {
  const token = await clientCredentialsToken(as.issuer, policyReader, { scope: 'policies:read' });
  const r = await get('/reports/claims', token);
  t.is(r.status, 403, r.text);
  t.is(r.json.error, 'insufficient_scope');
  t.true(challenge(r).includes('error="insufficient_scope"'));
  t.true(challenge(r).includes('scope="reports:read"'));
});

test('the AS refuses to widen: a scope the client was not registered for is invalid_scope', async (t) => {
  await t.throwsAsync(clientCredentialsToken(as.issuer, policyReader, { scope: 'reports:read' }), {
    message: /invalid_scope/,
  });
  await t.throwsAsync(clientCredentialsToken(as.issuer, policyReader, { resource: otherApi }), {
    message: /invalid_target/,
  });
});

/** Tokens signed by the AS's real current key but with one thing wrong, plus classic forgeries. */
test('forged and mis-claimed tokens built on the real AS keys are refused with 401 invalid_token', async (t) => {
  const good = await clientCredentialsToken(as.issuer, reporter, { scope: 'reports:read' });
  const header = decodeProtectedHeader(good);
  const claims = decodeJwt(good);
  const ring = await as.store.keyRing.read();
  const current = ring?.keys.find((k: SigningKey) => k.kid === header.kid) as SigningKey;
  t.is(current.status, 'current');
  const realKey = await importJWK(current.jwk, current.alg);
  const now = Math.floor(Date.now() / 1000);
  const signReal = (payload: JWTPayload, typ = 'at+jwt', extra: Record<string, unknown> = {}) =>
    new SignJWT(payload)
      .setProtectedHeader({ alg: current.alg, kid: current.kid, typ, ...extra })
      .sign(realKey);

  // Sanity: re-signing the real claims with the real key is accepted.
  t.is((await get('/reports/claims', await signReal(claims))).status, 200);

  const foreign = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(foreign.publicKey)), kid: current.kid } as JWK;
  const { d: _d, ...published } = current.jwk;
  const hmacWithPublicKey = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', kid: current.kid, typ: 'at+jwt' })
    .sign(new TextEncoder().encode(JSON.stringify(published)));
  const [h, p, s] = good.split('.');
  const tamperedPayload = base64url.encode(
    JSON.stringify({ ...claims, scope: 'reports:read policies:write' }),
  );
  const noneHeader = base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }));

  const cases: Record<string, string> = {
    garbage: 'not-a-jwt',
    expired: await signReal({ ...claims, iat: now - 7200, exp: now - 3600 }),
    'not yet valid': await signReal({ ...claims, nbf: now + 3600 }),
    'wrong iss': await signReal({ ...claims, iss: 'https://evil.test' }),
    'wrong aud': await signReal({ ...claims, aud: otherApi }),
    'wrong typ': await signReal(claims, 'JWT'),
    'alg none': `${noneHeader}.${p}.`,
    'HS256 keyed with the public key': hmacWithPublicKey,
    'a foreign key reusing the real kid': await new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: current.kid, typ: 'at+jwt' })
      .sign(foreign.privateKey),
    'tampered payload': `${h}.${tamperedPayload}.${s}`,
    'jku header': await signReal(claims, 'at+jwt', { jku: 'https://evil.test/jwks' }),
    'x5u header': await signReal(claims, 'at+jwt', { x5u: 'https://evil.test/cert' }),
    'embedded jwk header': await new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', jwk: publicJwk })
      .sign(foreign.privateKey),
  };
  for (const [name, token] of Object.entries(cases)) {
    const r = await get('/reports/claims', token);
    t.is(r.status, 401, `${name}: ${r.text}`);
    t.is(r.json.error, 'invalid_token', name);
    t.true(challenge(r).includes('error="invalid_token"'), name);
  }
});

test('user tokens from the real AS: each user sees only their own policies', async (t) => {
  const a = await userToken(alice, 'openid policies:read policies:write');
  const b = await userToken(bob, 'openid policies:read policies:write');
  t.is(decodeJwt(a.access_token).sub, alice);
  t.is(decodeJwt(a.access_token).aud, api);
  // Mass assignment: server-owned fields are refused (or would be ignored), never taken.
  const forged = await postJson('/policies', a.access_token, {
    product: 'home',
    coverage: 5000,
    holder: bob,
    id: 'chosen-by-client',
    status: 'approved',
  });
  if (forged.status === 201) {
    t.is(forged.json.holder, alice);
    t.not(forged.json.id, 'chosen-by-client');
  } else {
    t.is(forged.status, 400, forged.text);
  }
  const created = await postJson('/policies', a.access_token, { product: 'home', coverage: 5000 });
  t.is(created.status, 201, created.text);
  t.is(created.json.holder, alice);
  const id = String(created.json.id);
  t.is((await get(`/policies/${id}`, a.access_token)).status, 200);
  t.is((await get(`/policies/${id}`, b.access_token)).status, 404);
  const bobsList = await get('/policies', b.access_token);
  t.is(bobsList.status, 200);
  t.false(bobsList.text.includes(id));
});

test('introspection with the RS credentials: active, then inactive once the client revoked its token', async (t) => {
  const token = await clientCredentialsToken(as.issuer, reporter, { scope: 'reports:read' });
  const before = await introspect(as.issuer, introspector, token);
  t.is(before.status, 200, before.text);
  t.is(before.json.active, true);
  t.is(before.json.client_id, reporter.id);

  // Someone else's client may not revoke it.
  const foreign = await revoke(as.issuer, policyReader, token);
  t.not(foreign.status, 200);
  t.is((await introspect(as.issuer, introspector, token)).json.active, true);

  const revoked = await revoke(as.issuer, reporter, token);
  t.is(revoked.status, 200, revoked.text);
  const after = await introspect(as.issuer, introspector, token);
  t.is(after.status, 200);
  t.is(after.json.active, false);
});

test('a user token revoked at the AS by its own client is refused (401 invalid_token) on a write route that checks revocation', async (t) => {
  const { access_token: token } = await userToken(alice, 'openid policies:write');
  const first = await postJson('/policies', token, { product: 'motor', coverage: 1200 });
  t.is(first.status, 201, first.text);

  const revoked = await revoke(as.issuer, web, token);
  t.is(revoked.status, 200, revoked.text);

  const after = await postJson('/policies', token, { product: 'motor', coverage: 1200 });
  t.is(after.status, 401, after.text);
  t.is(after.json.error, 'invalid_token');
  t.true(challenge(after).includes('error="invalid_token"'));
  t.is((await introspect(as.issuer, introspector, token)).json.active, false);
});
