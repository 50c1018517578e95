import { bodyParser } from '@koa/bodyparser';
import test from 'ava';
import { exportSPKI, SignJWT } from 'jose';
import Koa from 'koa';
import { createBearerAuth, getAuth } from '../../src/resource-server/auth/index.ts';
import { bearer, call, type Served, serve } from './fixtures/serve.ts';
import { generateSigningKey, startTestIssuer, type TestIssuer } from './fixtures/test-issuer.ts';

// The module on its own, in a bare Koa app: what any API protecting itself with it gets.
let issuer: TestIssuer;
let api: Served;

test.before(async () => {
  issuer = await startTestIssuer();
  const auth = createBearerAuth({
    issuer: issuer.issuer,
    audience: issuer.audience,
    jwksCooldownSeconds: 0,
    discoveryRetrySeconds: 0,
  });
  const app = new Koa();
  app.use(bodyParser({ enableTypes: ['json', 'form'] }));
  app.use(auth.protect({ scope: 'things:read' }));
  app.use(async (ctx) => {
    const info = getAuth(ctx);
    ctx.body = {
      subject: info.subject,
      clientId: info.clientId,
      endUser: info.endUser,
      scopes: [...info.scopes],
    };
  });
  api = await serve(app);
});

test.after.always(async () => {
  await api?.close();
  await issuer?.close();
});

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function assertChallenge(
  t: import('ava').ExecutionContext,
  response: { status: number; headers: Headers; body: unknown },
  status: number,
  error: string,
) {
  t.is(response.status, status);
  const challenge = response.headers.get('www-authenticate') ?? '';
  t.regex(challenge, /^Bearer /);
  t.true(challenge.includes(`error="${error}"`), challenge);
  t.true(challenge.includes('resource_metadata="'), challenge);
  t.like(response.body, { error });
  t.is(typeof (response.body as { error_description?: unknown }).error_description, 'string');
}

/** The description is checked too, so each case proves it failed for the reason it is about. */
async function expectInvalidToken(t: import('ava').ExecutionContext, token: string, reason: RegExp) {
  const response = await call(api.url, { headers: bearer(token) });
  assertChallenge(t, response, 401, 'invalid_token');
  t.regex((response.body as { error_description: string }).error_description, reason);
}

test('a valid token passes and its claims reach ctx.state.auth', async (t) => {
  const token = await issuer.userToken('alice', 'things:read other');
  const response = await call(api.url, { headers: bearer(token) });
  t.is(response.status, 200);
  t.deepEqual(response.body, {
    subject: 'alice',
    clientId: 'web-app',
    endUser: true,
    scopes: ['things:read', 'other'],
  });
});

test('the scheme is case-insensitive and typ application/at+jwt is accepted (RFC 9068 §4)', async (t) => {
  const token = await issuer.userToken('alice', 'things:read', { header: { typ: 'application/at+jwt' } });
  const response = await call(api.url, { headers: { authorization: `bEaReR ${token}` } });
  t.is(response.status, 200);
});

test('a client credentials token is marked as having no end user', async (t) => {
  const response = await call(api.url, { headers: bearer(await issuer.clientToken('batch', 'things:read')) });
  t.like(response.body, { subject: 'batch', endUser: false });
});

test('RFC 6750 §3.1: no token gets a challenge without an error code, pointing at the metadata', async (t) => {
  const response = await call(api.url);
  t.is(response.status, 401);
  const challenge = response.headers.get('www-authenticate') ?? '';
  t.regex(challenge, /^Bearer realm="[^"]+"/);
  t.false(challenge.includes('error='));
  t.true(
    challenge.includes(
      'resource_metadata="https://insurance.example.test/.well-known/oauth-protected-resource"',
    ),
  );
  t.is(typeof (response.body as { error?: unknown }).error, 'string');
});

test('another authentication scheme counts as no token', async (t) => {
  const response = await call(api.url, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
  t.is(response.status, 401);
  t.false((response.headers.get('www-authenticate') ?? '').includes('error='));
});

test('a bearer credential that is not a b64token is a malformed token: 401 invalid_token (SPEC)', async (t) => {
  for (const authorization of [
    'Bearer a b',
    'Bearer {not-b64token}',
    'Bearer a$b',
    `Bearer ${'a'.repeat(9000)}`,
  ]) {
    assertChallenge(t, await call(api.url, { headers: { authorization } }), 401, 'invalid_token');
  }
});

test('"Bearer" with no token is no token: the plain challenge (RFC 6750 §3.1)', async (t) => {
  for (const authorization of ['Bearer', 'Bearer ', 'bearer   ']) {
    const response = await call(api.url, { headers: { authorization } });
    t.is(response.status, 401);
    t.notRegex(response.headers.get('www-authenticate') ?? '', /error=/);
  }
});

test('RFC 6750 §3.1 invalid_request: token in query or body, two methods', async (t) => {
  const token = await issuer.userToken('alice', 'things:read');
  assertChallenge(t, await call(`${api.url}/?access_token=${token}`), 400, 'invalid_request');
  assertChallenge(
    t,
    await call(`${api.url}/?access_token=${token}`, { headers: bearer(token) }),
    400,
    'invalid_request',
  );
  assertChallenge(
    t,
    await call(api.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ access_token: token }),
    }),
    400,
    'invalid_request',
  );
});

test('garbage and non-JWT tokens are invalid_token', async (t) => {
  for (const token of ['garbage', 'a.b.c', `${b64url({ alg: 'RS256' })}.e30`, 'x.y.z.w.v']) {
    await expectInvalidToken(t, token, /not a signed JWT/);
  }
});

test('expired tokens are refused', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  await expectInvalidToken(
    t,
    await issuer.userToken('alice', 'things:read', { claims: { iat: now - 600, exp: now - 60 } }),
    /expired/,
  );
});

test('tokens not valid yet (nbf or iat in the future) are refused', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  await expectInvalidToken(
    t,
    await issuer.userToken('alice', 'things:read', { claims: { nbf: now + 120 } }),
    /not valid yet/,
  );
  await expectInvalidToken(
    t,
    await issuer.userToken('alice', 'things:read', { claims: { iat: now + 120, exp: now + 600 } }),
    /not valid yet/,
  );
});

test('wrong issuer or wrong audience is refused', async (t) => {
  await expectInvalidToken(
    t,
    await issuer.userToken('alice', 'things:read', { claims: { iss: 'https://evil.test' } }),
    /iss/,
  );
  await expectInvalidToken(
    t,
    await issuer.userToken('alice', 'things:read', { claims: { aud: 'https://other-api.test' } }),
    /aud/,
  );
});

test('RFC 9068 §4: a JWT that is not typed as an access token is refused', async (t) => {
  for (const typ of ['JWT', 'id_token+jwt', undefined]) {
    await expectInvalidToken(t, await issuer.userToken('alice', 'things:read', { header: { typ } }), /typ/);
  }
});

test('RFC 9068 §2.2: a token missing a required claim is refused', async (t) => {
  for (const claim of ['sub', 'client_id', 'jti', 'exp', 'iat', 'scope']) {
    await expectInvalidToken(
      t,
      await issuer.userToken('alice', 'things:read', { claims: { [claim]: undefined } }),
      new RegExp(`no ${claim} claim`),
    );
  }
});

test('alg none is refused', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    iss: issuer.issuer,
    aud: issuer.audience,
    sub: 'alice',
    client_id: 'web-app',
    scope: 'things:read',
    jti: 'x',
    iat: now,
    exp: now + 60,
  };
  await expectInvalidToken(t, `${b64url({ alg: 'none', typ: 'at+jwt' })}.${b64url(payload)}.`, /algorithm/);
  await expectInvalidToken(
    t,
    `${b64url({ alg: 'none', typ: 'at+jwt', kid: issuer.currentKey().kid })}.${b64url(payload)}.`,
    /algorithm/,
  );
});

test('HS256 keyed with the public key bytes is refused (algorithm confusion)', async (t) => {
  const key = issuer.currentKey();
  const secrets = [
    new TextEncoder().encode(await exportSPKI(key.publicKey)),
    new TextEncoder().encode(JSON.stringify(key.publicJwk)),
  ];
  for (const secret of secrets) {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ sub: 'alice', client_id: 'web-app', scope: 'things:read', jti: 'x' })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: key.kid })
      .setIssuer(issuer.issuer)
      .setAudience(issuer.audience)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(secret);
    await expectInvalidToken(t, token, /algorithm/);
  }
});

test('a foreign key reusing a published kid is refused', async (t) => {
  const foreign = await generateSigningKey();
  const impostor = { ...foreign, kid: issuer.currentKey().kid };
  await expectInvalidToken(t, await issuer.userToken('alice', 'things:read', { key: impostor }), /signature/);
});

test('a tampered payload is refused', async (t) => {
  const [header, payload, signature] = (await issuer.userToken('alice', 'things:read')).split('.');
  const claims = JSON.parse(Buffer.from(payload as string, 'base64url').toString());
  const tampered = b64url({ ...claims, sub: 'mallory', scope: 'things:read admin' });
  await expectInvalidToken(t, `${header}.${tampered}.${signature}`, /signature/);
});

test('RFC 8725 §3.10: tokens naming their own key (jku, x5u, jwk, x5c) or carrying crit are refused', async (t) => {
  const key = issuer.currentKey();
  const headers = [
    { jku: `${issuer.issuer}/jwks` },
    { x5u: 'https://evil.test/cert.pem' },
    { jwk: key.publicJwk },
    { x5c: ['MIIB'] },
    { crit: ['b64'], b64: true },
  ];
  for (const header of headers) {
    await expectInvalidToken(
      t,
      await issuer.userToken('alice', 'things:read', { header }),
      new RegExp(Object.keys(header)[0] as string),
    );
  }
});

test('a valid token without the needed scope gets 403 insufficient_scope naming it', async (t) => {
  const response = await call(api.url, { headers: bearer(await issuer.userToken('alice', 'things:write')) });
  assertChallenge(t, response, 403, 'insufficient_scope');
  t.true((response.headers.get('www-authenticate') ?? '').includes('scope="things:read"'));
});

test('a prefix or substring of the scope is not the scope', async (t) => {
  for (const scope of ['things', 'things:rea', 'things:read:all', 'xthings:read']) {
    const response = await call(api.url, { headers: bearer(await issuer.userToken('alice', scope)) });
    t.is(response.status, 403, scope);
  }
});
