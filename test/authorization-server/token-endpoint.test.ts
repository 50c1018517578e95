import test from 'ava';
import type { Redis } from 'ioredis';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
} from 'jose';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, dumpPrefix, testPrefix } from '../support/redis.ts';

const prefix = testPrefix('token');
const secrets = testSecrets();
const api = 'https://api.insurance.test';
const other = 'https://other.insurance.test';
let redis: Redis;
let server: RunningAuthServer;
let second: RunningAuthServer;
let m2mSecret: string;
/** Tests run concurrently: they share these secrets and never rotate them. */
let postSecret: string;
let clientKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

test.before(async () => {
  redis = await connectRedis();
  server = await startAuthServer({ prefix, secrets });
  const { store } = server;
  await store.resources.add({ uri: api, scopes: ['reports:read', 'policies:read'] });
  await store.resources.add({ uri: other, scopes: ['other:read'] });
  ({ client_secret: m2mSecret } = (await store.clients.add({
    id: 'm2m',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  })) as { client_secret: string });
  ({ client_secret: postSecret } = (await store.clients.add({
    id: 'post',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
    authMethod: 'client_secret_post',
  })) as { client_secret: string });
  const pair = await generateKeyPair('ES256', { extractable: true });
  clientKey = pair.privateKey;
  await store.clients.add({
    id: 'signed',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
    authMethod: 'private_key_jwt',
    jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'c1', alg: 'ES256' }] },
  });
  second = await startAuthServer({ prefix, secrets });
});

test.after.always(async () => {
  await Promise.allSettled([server?.close(), second?.close()]);
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function post(
  url: string,
  body: Record<string, string> | string,
  headers: Record<string, string> = {},
) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: typeof body === 'string' ? body : new URLSearchParams(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    // asserted by the caller
  }
  return { status: response.status, json, text, headers: response.headers };
}

const token = (
  s: RunningAuthServer,
  body: Record<string, string> | string,
  headers?: Record<string, string>,
) => post(`${s.issuer}/token`, body, headers);

async function m2mToken(s = server, extra: Record<string, string> = {}) {
  const r = await token(
    s,
    { grant_type: 'client_credentials', scope: 'reports:read', ...extra },
    { authorization: basic('m2m', m2mSecret) },
  );
  if (r.status !== 200) throw new Error(`token ${r.status} ${r.text}`);
  return String(r.json.access_token);
}

test('client credentials: an RFC 9068 JWT that verifies against the JWKS with every SPEC claim', async (t) => {
  const jwt = await m2mToken();
  const header = decodeProtectedHeader(jwt);
  t.is(header.typ, 'at+jwt');
  t.is(header.alg, 'RS256', 'ACCESS_TOKEN_ALG defaults to RS256 (RFC 9068 §2.1)');
  const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), {
    issuer: server.issuer,
    audience: api,
    typ: 'at+jwt',
  });
  for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'scope'])
    t.not(payload[claim], undefined, claim);
  t.is(payload.sub, 'm2m');
  t.is(payload.client_id, 'm2m');
  t.is(payload.scope, 'reports:read');
  t.is(payload.aud, api);
});

test('the JWKS never carries private key members', async (t) => {
  const jwks = (await (await fetch(`${server.issuer}/jwks`)).json()) as { keys: Record<string, unknown>[] };
  t.true(jwks.keys.length >= 2, 'next and current keys of the RS256 family at least');
  for (const key of jwks.keys)
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) t.false(member in key);
});

test('the audience is the requested resource, or the default one', async (t) => {
  const jwks = createRemoteJWKSet(new URL(`${server.issuer}/jwks`));
  const explicit = await m2mToken(server, { resource: api });
  t.is((await jwtVerify(explicit, jwks)).payload.aud, api);
  const byDefault = await m2mToken(server);
  t.is((await jwtVerify(byDefault, jwks)).payload.aud, api, "no resource: the client's default resource");
  const elsewhere = await token(
    server,
    { grant_type: 'client_credentials', scope: 'reports:read', resource: other },
    { authorization: basic('m2m', m2mSecret) },
  );
  t.is(elsewhere.status, 400, 'a resource the client is not registered for is never the audience');
  t.is(elsewhere.json.error, 'invalid_target');
});

test('client_secret_post and private_key_jwt authenticate', async (t) => {
  const viaPost = await token(server, {
    grant_type: 'client_credentials',
    scope: 'reports:read',
    client_id: 'post',
    client_secret: postSecret,
  });
  t.is(viaPost.status, 200, viaPost.text);

  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'c1' })
    .setIssuer('signed')
    .setSubject('signed')
    .setAudience(server.issuer)
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime('1m')
    .sign(clientKey);
  const viaJwt = await token(server, {
    grant_type: 'client_credentials',
    scope: 'reports:read',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  });
  t.is(viaJwt.status, 200, viaJwt.text);
  const replay = await token(server, {
    grant_type: 'client_credentials',
    scope: 'reports:read',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  });
  t.is(replay.status, 401, 'a client assertion works once (jti replay detection in the store)');
});

const refusals: [string, () => Promise<{ status: number; json: Record<string, unknown> }>, number, string][] =
  [
    [
      'wrong secret',
      () => token(server, { grant_type: 'client_credentials' }, { authorization: basic('m2m', 'wrong') }),
      401,
      'invalid_client',
    ],
    [
      'unknown client',
      () => token(server, { grant_type: 'client_credentials' }, { authorization: basic('ghost', 'x') }),
      401,
      'invalid_client',
    ],
    [
      'no client authentication',
      () => token(server, { grant_type: 'client_credentials', client_id: 'm2m' }),
      401,
      'invalid_client',
    ],
    [
      'a scope the client was not registered for',
      () =>
        token(
          server,
          { grant_type: 'client_credentials', scope: 'policies:read' },
          { authorization: basic('m2m', m2mSecret) },
        ),
      400,
      'invalid_scope',
    ],
    [
      'a scope nobody has',
      () =>
        token(
          server,
          { grant_type: 'client_credentials', scope: 'admin:everything' },
          { authorization: basic('m2m', m2mSecret) },
        ),
      400,
      'invalid_scope',
    ],
    [
      'a resource the client may not use',
      () =>
        token(
          server,
          { grant_type: 'client_credentials', scope: 'reports:read', resource: other },
          { authorization: basic('m2m', m2mSecret) },
        ),
      400,
      'invalid_target',
    ],
    [
      'an unknown resource',
      () =>
        token(
          server,
          { grant_type: 'client_credentials', resource: 'https://evil.test' },
          { authorization: basic('m2m', m2mSecret) },
        ),
      400,
      'invalid_target',
    ],
    [
      'a resource with a fragment',
      () =>
        token(
          server,
          { grant_type: 'client_credentials', resource: `${api}#x` },
          { authorization: basic('m2m', m2mSecret) },
        ),
      400,
      'invalid_target',
    ],
    [
      // A parameter given twice (SPEC): the resource too, as a token is for one audience.
      'two resources',
      () =>
        token(
          server,
          `grant_type=client_credentials&resource=${encodeURIComponent(api)}&resource=${encodeURIComponent(other)}`,
          { authorization: basic('m2m', m2mSecret) },
        ),
      400,
      'invalid_request',
    ],
    [
      'a grant the client does not have',
      () =>
        token(
          server,
          { grant_type: 'refresh_token', refresh_token: 'x' },
          { authorization: basic('m2m', m2mSecret) },
        ),
      400,
      'unauthorized_client',
    ],
    [
      'an unknown grant type',
      () => token(server, { grant_type: 'urn:nope' }, { authorization: basic('m2m', m2mSecret) }),
      400,
      'unsupported_grant_type',
    ],
    [
      'no grant type',
      () => token(server, {}, { authorization: basic('m2m', m2mSecret) }),
      400,
      'invalid_request',
    ],
    [
      'a JSON body',
      () =>
        token(server, '{"grant_type":"client_credentials"}', {
          'content-type': 'application/json',
          authorization: basic('m2m', m2mSecret),
        }),
      400,
      'invalid_request',
    ],
    [
      'a duplicated parameter',
      () =>
        token(server, 'grant_type=client_credentials&grant_type=client_credentials', {
          authorization: basic('m2m', m2mSecret),
        }),
      400,
      'invalid_request',
    ],
    [
      'a garbage Authorization header',
      () => token(server, { grant_type: 'client_credentials' }, { authorization: 'Basic %%%' }),
      400,
      'invalid_request',
    ],
    [
      'an oversized body',
      () =>
        token(server, `grant_type=client_credentials&scope=${'a'.repeat(200_000)}`, {
          authorization: basic('m2m', m2mSecret),
        }),
      // The one 413 every endpoint answers an oversized body with (issue 9 #8), Basic auth or not.
      413,
      'invalid_request',
    ],
  ];
for (const [title, request, status, error] of refusals) {
  test(`token endpoint refuses ${title} with ${status} ${error}`, async (t) => {
    const r = await request();
    t.is(r.status, status);
    t.is(r.json.error, error);
  });
}

test('malformed input never produces a 5xx', async (t) => {
  const bodies = [
    '%',
    '%%%%',
    'grant_type',
    '=&=&=',
    'grant_type=client_credentials&scope=%FF%FE',
    '\u0000\u0001',
    'a'.repeat(60_000),
  ];
  for (const body of bodies) {
    const r = await token(server, body, { authorization: basic('m2m', m2mSecret) });
    t.true(r.status >= 400 && r.status < 500, `${JSON.stringify(body.slice(0, 20))} → ${r.status}`);
    t.is(typeof r.json.error, 'string');
  }
});

test('introspection: a JWT access token is active with its claims, inactive once revoked', async (t) => {
  const jwt = await m2mToken();
  const auth = { authorization: basic('m2m', m2mSecret) };
  const active = await post(`${server.issuer}/token/introspection`, { token: jwt }, auth);
  t.is(active.status, 200);
  const claims = (await jwtVerify(jwt, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)))).payload;
  t.like(active.json, {
    active: true,
    client_id: 'm2m',
    scope: 'reports:read',
    aud: api,
    jti: claims.jti,
    sub: 'm2m',
    iss: server.issuer,
    exp: claims.exp,
  });

  const revoked = await post(
    `${second.issuer}/token/revocation`,
    { token: jwt, token_type_hint: 'access_token' },
    auth,
  );
  t.is(revoked.status, 200);
  t.deepEqual((await post(`${server.issuer}/token/introspection`, { token: jwt }, auth)).json, {
    active: false,
  });
});

test('introspection: tampered, foreign and garbage tokens are inactive; no client is 401', async (t) => {
  const jwt = await m2mToken();
  const auth = { authorization: basic('m2m', m2mSecret) };
  const [h, p, s] = jwt.split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(String(p), 'base64url').toString()), scope: 'policies:read' })).toString('base64url')}.${s}`;
  const { privateKey } = await generateKeyPair('ES256');
  const foreign = await new SignJWT({ jti: 'x', client_id: 'm2m' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
    .sign(privateKey);
  for (const candidate of [tampered, foreign, 'garbage', 'a.b.c']) {
    const r = await post(`${server.issuer}/token/introspection`, { token: candidate }, auth);
    t.is(r.status, 200);
    t.deepEqual(r.json, { active: false });
  }
  const anonymous = await post(`${server.issuer}/token/introspection`, { token: jwt });
  t.is(anonymous.status, 401);
  t.is(anonymous.json.error, 'invalid_client');
});

test('scale-out: two instances behind one issuer serve the same clients, and tokens cross between them', async (t) => {
  // Two instances of one deployment behind one issuer, as behind a load balancer: same issuer,
  // same store, each reached on its own port.
  const behindLoadBalancer = await startAuthServer({ prefix, secrets, env: { ISSUER: server.issuer } });
  t.teardown(() => behindLoadBalancer.close());
  const otherInstance = `http://127.0.0.1:${behindLoadBalancer.port}`;
  const issued = await post(
    `${otherInstance}/token`,
    { grant_type: 'client_credentials', scope: 'reports:read' },
    { authorization: basic('m2m', m2mSecret) },
  );
  t.is(issued.status, 200, issued.text);
  const fromOther = String(issued.json.access_token);
  const { payload } = await jwtVerify(fromOther, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), {
    issuer: server.issuer,
    audience: api,
    typ: 'at+jwt',
  });
  t.is(payload.client_id, 'm2m');
  const auth = { authorization: basic('m2m', m2mSecret) };
  const introspected = await post(`${server.issuer}/token/introspection`, { token: fromOther }, auth);
  t.like(introspected.json, { active: true, jti: payload.jti, iss: server.issuer });
  const revoked = await post(`${server.issuer}/token/revocation`, { token: fromOther }, auth);
  t.is(revoked.status, 200);
  const afterRevocation = await post(`${otherInstance}/token/introspection`, { token: fromOther }, auth);
  t.deepEqual(afterRevocation.json, { active: false }, 'revoked on one instance, inactive on the other');
});

test('at rest: client secrets, tokens and private keys are not readable in Redis', async (t) => {
  const jwt = await m2mToken();
  const dump = await dumpPrefix(redis, prefix);
  t.false(dump.includes(m2mSecret), 'client secret');
  t.false(dump.includes(jwt), 'access token');
  const jti = String(JSON.parse(Buffer.from(String(jwt.split('.')[1]), 'base64url').toString()).jti);
  t.false(dump.includes(jti), 'token id');
  t.false(/"d":"/.test(dump), 'private key member');
  t.false(dump.includes('PRIVATE KEY'));
});

test('discovery says how to use all of it', async (t) => {
  const metadata = (await (
    await fetch(`${server.issuer}/.well-known/openid-configuration`)
  ).json()) as Record<string, unknown>;
  t.is(metadata.issuer, server.issuer);
  t.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
  t.true((metadata.id_token_signing_alg_values_supported as string[]).includes('RS256'));
  for (const endpoint of [
    'token_endpoint',
    'jwks_uri',
    'introspection_endpoint',
    'revocation_endpoint',
    'userinfo_endpoint',
    'end_session_endpoint',
  ]) {
    t.is(typeof metadata[endpoint], 'string', endpoint);
  }
  t.deepEqual(metadata.response_types_supported, ['code']);
  for (const scope of ['openid', 'offline_access', 'reports:read', 'policies:read', 'other:read']) {
    t.true((metadata.scopes_supported as string[]).includes(scope), scope);
  }
  t.true((metadata.grant_types_supported as string[]).includes('client_credentials'));
});

test('health and readiness', async (t) => {
  t.is((await fetch(`${server.issuer}/healthz`)).status, 200);
  const ready = await fetch(`${server.issuer}/readyz`);
  t.is(ready.status, 200);
  t.like(await ready.json(), { status: 'ready', checks: { store: true, keys: true } });
});

test("introspection and revocation are limited to the token's client (and its API's clients)", async (t) => {
  const jwt = await m2mToken();
  const outsider = await server.store.clients.add({
    id: 'outsider',
    grants: ['client_credentials'],
    scope: ['other:read'],
    resources: [other],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const asOutsider = { authorization: basic('outsider', String(outsider.client_secret)) };
  t.deepEqual((await post(`${server.issuer}/token/introspection`, { token: jwt }, asOutsider)).json, {
    active: false,
  });

  // `post` is registered for the token's API, as a resource server's own client would be.
  const asApiClient = { authorization: basic('post', postSecret) };
  t.is((await post(`${server.issuer}/token/introspection`, { token: jwt }, asApiClient)).json.active, true);

  // Revocation by another client is refused and leaves the token active.
  const refused = await post(`${server.issuer}/token/revocation`, { token: jwt }, asApiClient);
  t.is(refused.status, 400);
  t.is(refused.json.error, 'unauthorized_client');
  t.is((await post(`${server.issuer}/token/introspection`, { token: jwt }, asApiClient)).json.active, true);
});

test('an oversized introspection or revocation body is a 413 in the OAuth format, and service goes on', async (t) => {
  for (const path of ['/token/introspection', '/token/revocation']) {
    const r = await post(`${server.issuer}${path}`, `token=${'a'.repeat(200_000)}`, {
      authorization: basic('m2m', m2mSecret),
    });
    t.is(r.status, 413, path);
    t.is(r.json.error, 'invalid_request');
  }
  const after = await post(
    `${server.issuer}/token/introspection`,
    { token: await m2mToken() },
    { authorization: basic('m2m', m2mSecret) },
  );
  t.is(after.json.active, true);
});

test('a duplicated token parameter is refused, not half-read', async (t) => {
  const jwt = await m2mToken();
  const r = await post(`${server.issuer}/token/introspection`, `token=${jwt}&token=${jwt}`, {
    authorization: basic('m2m', m2mSecret),
  });
  t.is(r.status, 400);
  t.is(r.json.error, 'invalid_request');
});

test('client credentials without a scope gets the scopes the client is registered for at the API (RFC 6749 §3.3)', async (t) => {
  const r = await token(
    server,
    { grant_type: 'client_credentials' },
    { authorization: basic('m2m', m2mSecret) },
  );
  t.is(r.status, 200);
  t.is(r.json.scope, 'reports:read');
  const claims = JSON.parse(
    Buffer.from(String(r.json.access_token).split('.')[1] as string, 'base64url').toString(),
  );
  t.is(claims.scope, 'reports:read');
});

test('DPoP is off: a DPoP header does not turn a token into one the bearer-only APIs would misread', async (t) => {
  const metadata = (await (
    await fetch(`${server.issuer}/.well-known/openid-configuration`)
  ).json()) as Record<string, unknown>;
  t.is(metadata.dpop_signing_alg_values_supported, undefined);

  // A well-formed DPoP proof (RFC 9449 §4.2) sent anyway: the answer is a plain Bearer token with no
  // `cnf` binding, so no API is asked to check a proof it was never told about.
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const proof = await new SignJWT({ htm: 'POST', htu: `${server.issuer}/token` })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(publicKey) })
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .sign(privateKey);
  const r = await token(
    server,
    { grant_type: 'client_credentials', scope: 'reports:read' },
    { authorization: basic('m2m', m2mSecret), dpop: proof },
  );
  t.is(r.status, 200, r.text);
  t.is(r.json.token_type, 'Bearer');
  const claims = JSON.parse(
    Buffer.from(String(r.json.access_token).split('.')[1] as string, 'base64url').toString(),
  ) as Record<string, unknown>;
  t.is(claims.cnf, undefined);
});

test('unknown paths and wrong methods answer 404 in JSON', async (t) => {
  for (const [method, path] of [
    ['GET', '/nope'],
    ['GET', '/token'],
    ['PUT', '/token/introspection'],
  ] as const) {
    const response = await fetch(`${server.issuer}${path}`, { method });
    t.is(response.status, 404, `${method} ${path}`);
    t.like(await response.json(), { error: 'not_found' });
  }
});

test('a token does not outlive its client: once the client is removed, it introspects inactive', async (t) => {
  const { client_secret } = await server.store.clients.add({
    id: 'short-lived-client',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const issued = await token(
    server,
    { grant_type: 'client_credentials' },
    { authorization: basic('short-lived-client', String(client_secret)) },
  );
  const jwt = String(issued.json.access_token);
  const watcher = await server.store.clients.add({
    id: 'api-watcher',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const asApiClient = { authorization: basic('api-watcher', String(watcher.client_secret)) };
  t.is((await post(`${server.issuer}/token/introspection`, { token: jwt }, asApiClient)).json.active, true);
  await server.store.clients.remove('short-lived-client');
  t.deepEqual((await post(`${server.issuer}/token/introspection`, { token: jwt }, asApiClient)).json, {
    active: false,
  });
});

test('URLs follow the issuer, never the Host header a request carries', async (t) => {
  const { request } = await import('node:http');
  const body: string = await new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        path: '/.well-known/openid-configuration',
        headers: { host: 'evil.example' },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => resolve(text));
      },
    );
    req.on('error', reject);
    req.end();
  });
  const metadata = JSON.parse(body) as Record<string, string>;
  t.false(body.includes('evil.example'));
  t.true(String(metadata.token_endpoint).startsWith(server.issuer));
});
