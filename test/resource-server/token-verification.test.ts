import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import test from 'ava';
import { buildResourceServerApp, type ResourceServerDeps } from '../../src/resource-server/app.ts';
import { VerifiedTokenCache } from '../../src/resource-server/auth/verified-token-cache.ts';
import { bearer, call, type Served, serve, silentLogger, testConfig } from './fixtures/serve.ts';
import { decodePayload, startTestIssuer, type TestIssuer } from './fixtures/test-issuer.ts';

// Verification with node:crypto KeyObjects, the JWKS cache that follows the AS's Cache-Control, and
// the verified-token cache (issue 11 item 2, issue 9 finding 13). These tests change the fixture's
// keys and headers, so they run one at a time.
let issuer: TestIssuer;
const servers: Served[] = [];

test.before(async () => {
  issuer = await startTestIssuer();
});

test.after.always(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await issuer?.close();
});

async function startApi(
  env: Record<string, string> = {},
  bearerAuthOptions?: ResourceServerDeps['bearerAuthOptions'],
): Promise<Served> {
  const served = await serve(
    buildResourceServerApp({ config: testConfig(issuer, env), logger: silentLogger, bearerAuthOptions }),
  );
  servers.push(served);
  return served;
}

/**
 * Signature checks, counted where they happen: the resource server verifies with node:crypto's
 * `verify` (auth/jws-verify.ts), which this test file wraps (syncBuiltinESMExports updates the
 * binding the module imported). Counted per signature, so only the token under test counts (the
 * tokens here are RS256, whose signature reaches `verify` as the token carries it; ECDSA ones are
 * converted to DER first); the test issuer signs with WebCrypto and never calls it.
 */
const signatureChecks = new Map<string, number>();
const realVerify = crypto.verify;
crypto.verify = ((...args: Parameters<typeof crypto.verify>) => {
  const signature = args[3];
  if (Buffer.isBuffer(signature)) {
    const key = signature.toString('base64url');
    signatureChecks.set(key, (signatureChecks.get(key) ?? 0) + 1);
  }
  return (realVerify as (...a: unknown[]) => unknown)(...args);
}) as typeof crypto.verify;
syncBuiltinESMExports();
const checksOf = (token: string) => signatureChecks.get(token.split('.')[2] as string) ?? 0;

const listPolicies = (api: Served, token: string) => call(`${api.url}/policies`, { headers: bearer(token) });

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test.serial(
  'every asymmetric algorithm the AS may sign with verifies (RS256, PS256, ES256, EdDSA)',
  async (t) => {
    const api = await startApi();
    for (const alg of ['PS256', 'ES256', 'EdDSA', 'RS256']) {
      const key = await issuer.rotate(alg);
      const token = await issuer.userToken('alice', 'policies:read', { key });
      t.is((await listPolicies(api, token)).status, 200, alg);
      // The same key under another algorithm's name, or another algorithm's signature, never verifies.
      const [header, payload, signature] = token.split('.') as [string, string, string];
      const relabelled = Buffer.from(
        JSON.stringify({
          ...JSON.parse(Buffer.from(header, 'base64url').toString()),
          alg: alg === 'ES256' ? 'PS256' : 'ES256',
        }),
      ).toString('base64url');
      const response = await listPolicies(api, `${relabelled}.${payload}.${signature}`);
      t.is(response.status, 401, `${alg} relabelled`);
      t.like(response.body, { error: 'invalid_token' });
    }
  },
);

test.serial(
  'issue 9 finding 13: the JWKS max-age is honoured: a dropped key stops verifying within seconds, cached tokens too',
  async (t) => {
    const api = await startApi(); // RS_JWKS_CACHE_MAX_AGE_SECONDS at its default (60)
    const key = await issuer.rotate();
    issuer.setJwksCacheControl('public, max-age=1');
    t.teardown(() => issuer.setJwksCacheControl(undefined));
    const token = await issuer.userToken('alice', 'policies:read', { key });
    t.is((await listPolicies(api, token)).status, 200);
    t.is((await listPolicies(api, token)).status, 200, 'repeated: answered from the verified-token cache');
    t.is(checksOf(token), 1, 'the repeat was not checked again: it came from the cache');

    issuer.unpublish(key.kid);
    const started = Date.now();
    t.true(await until(async () => (await listPolicies(api, token)).status === 401, 5000));
    t.log(`refused ${Date.now() - started} ms after the key left the JWKS`);
    t.like((await listPolicies(api, token)).body, { error: 'invalid_token' });
  },
);

test.serial('without Cache-Control the JWKS is kept at most RS_JWKS_CACHE_MAX_AGE_SECONDS', async (t) => {
  const api = await startApi({ RS_JWKS_CACHE_MAX_AGE_SECONDS: '1' });
  const key = await issuer.rotate();
  const token = await issuer.userToken('alice', 'policies:read', { key });
  t.is((await listPolicies(api, token)).status, 200);
  issuer.unpublish(key.kid);
  t.true(await until(async () => (await listPolicies(api, token)).status === 401, 5000));
});

test.serial(
  'a Cache-Control max-age of 0 does not make the RS fetch the JWKS on every request',
  async (t) => {
    const api = await startApi();
    issuer.setJwksCacheControl('no-store');
    t.teardown(() => issuer.setJwksCacheControl(undefined));
    const token = await issuer.userToken('alice', 'policies:read');
    t.is((await listPolicies(api, token)).status, 200);
    const before = issuer.hits.get('/jwks') ?? 0;
    for (let i = 0; i < 20; i++)
      t.is((await listPolicies(api, await issuer.userToken('bob', 'policies:read'))).status, 200);
    t.true((issuer.hits.get('/jwks') ?? 0) - before <= 2, 'at most one refresh a second');
  },
);

test.serial(
  "a cached token stops working when it expires (the cache keeps the token's own exp)",
  async (t) => {
    const api = await startApi({ RS_CLOCK_TOLERANCE_SECONDS: '0' });
    const now = Math.floor(Date.now() / 1000);
    const token = await issuer.userToken('alice', 'policies:read', { claims: { iat: now, exp: now + 3 } });
    t.is((await listPolicies(api, token)).status, 200);
    t.is((await listPolicies(api, token)).status, 200);
    t.true(await until(async () => (await listPolicies(api, token)).status === 401, 5000));
    t.regex(JSON.stringify((await listPolicies(api, token)).body), /expired/);
  },
);

test.serial(
  'a repeated token is answered from the verified-token cache without checking its signature again',
  async (t) => {
    const api = await startApi();
    const token = await issuer.userToken('alice', 'policies:read');
    t.is((await listPolicies(api, token)).status, 200);
    t.is(checksOf(token), 1, 'the first request checks the signature');
    for (let i = 0; i < 5; i++) t.is((await listPolicies(api, token)).status, 200);
    t.is(checksOf(token), 1, 'five repeats: no further signature check');

    // The counter sees every check: with the cache off, each request is checked.
    const uncached = await startApi({}, { tokenCacheSize: 0 });
    const other = await issuer.userToken('bob', 'policies:read');
    for (let i = 0; i < 3; i++) t.is((await listPolicies(uncached, other)).status, 200);
    t.is(checksOf(other), 3);
  },
);

test.serial('routes that check revocation never answer from the verified-token cache', async (t) => {
  const api = await startApi({
    RS_INTROSPECTION_CLIENT_ID: issuer.introspectionClient.clientId,
    RS_INTROSPECTION_CLIENT_SECRET: issuer.introspectionClient.clientSecret,
  });
  const token = await issuer.userToken('alice', 'policies:read policies:write');
  const create = () =>
    call(`${api.url}/policies`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json' },
      body: JSON.stringify({ product: 'home', coverage: 1000 }),
    });
  const introspections = () => issuer.hits.get('/token/introspection') ?? 0;
  // The token is in the cache: a read route (no revocation check) answers from it.
  t.is((await listPolicies(api, token)).status, 200);
  t.is((await listPolicies(api, token)).status, 200);
  t.is(checksOf(token), 1, 'cached after the first read');

  // A route that checks revocation verifies the token itself every time, then asks the AS.
  const asked = introspections();
  t.is((await create()).status, 201);
  t.is((await create()).status, 201);
  t.is(checksOf(token), 3, 'each revocation-checked request checked the signature again');
  t.is(introspections(), asked + 2);
  // ...and never fills the cache either: reads are still answered from the first entry.
  t.is((await listPolicies(api, token)).status, 200);
  t.is(checksOf(token), 3);

  issuer.revoke(decodePayload(token).jti as string);
  t.is((await listPolicies(api, token)).status, 200, 'a read route without the revocation flag: cached');
  const refused = await create();
  t.is(refused.status, 401);
  t.like(refused.body, { error: 'invalid_token' });
  t.is(checksOf(token), 4);
  t.is(introspections(), asked + 3);
});

test('the verified-token cache is bounded, forgets expired tokens and tokens of unpublished keys', (t) => {
  const cache = new VerifiedTokenCache<string>(2);
  cache.set('a', 'A', 'k1', 100);
  cache.set('b', 'B', 'k2', 100);
  cache.set('c', 'C', 'k2', 100);
  t.is(cache.size, 2);
  t.is(cache.get('a', 50), undefined, 'the oldest went first');
  t.is(cache.get('b', 50), 'B');
  t.is(cache.get('c', 100), undefined, 'at exp it is gone');
  t.is(cache.size, 1);
  cache.set('d', 'D', 'k1', 100);
  cache.retainKids(new Set(['k2']));
  t.is(cache.get('d', 50), undefined);
  t.is(cache.get('b', 50), 'B');
  const off = new VerifiedTokenCache<string>(0);
  off.set('a', 'A', 'k1', 100);
  t.is(off.size, 0);
});
