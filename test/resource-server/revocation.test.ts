import test from 'ava';
import { buildResourceServerApp } from '../../src/resource-server/app.ts';
import { bearer, call, type Served, serve, silentLogger, testConfig } from './fixtures/serve.ts';
import { decodePayload, startTestIssuer, type TestIssuer } from './fixtures/test-issuer.ts';

let issuer: TestIssuer;
const servers: Served[] = [];

test.before(async () => {
  issuer = await startTestIssuer();
});

test.after.always(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await issuer?.close();
});

async function startApi(env: Record<string, string> = {}): Promise<Served> {
  const served = await serve(
    buildResourceServerApp({ config: testConfig(issuer, env), logger: silentLogger }),
  );
  servers.push(served);
  return served;
}

function withIntrospection(secret = issuer.introspectionClient.clientSecret) {
  return {
    RS_INTROSPECTION_CLIENT_ID: issuer.introspectionClient.clientId,
    RS_INTROSPECTION_CLIENT_SECRET: secret,
  };
}

const createPolicy = (url: string, token: string) =>
  call(`${url}/policies`, {
    method: 'POST',
    headers: { ...bearer(token), 'content-type': 'application/json' },
    body: JSON.stringify({ product: 'home', coverage: 1000 }),
  });

async function revokedToken(): Promise<string> {
  const token = await issuer.userToken('alice', 'policies:write policies:read');
  issuer.revoke(decodePayload(token).jti as string);
  return token;
}

test('RFC 7662: a token the AS reports inactive is refused with 401 invalid_token on write routes', async (t) => {
  const api = await startApi(withIntrospection());
  t.is((await createPolicy(api.url, await issuer.userToken('alice', 'policies:write'))).status, 201);

  const response = await createPolicy(api.url, await revokedToken());
  t.is(response.status, 401);
  t.like(response.body, { error: 'invalid_token' });
  t.true((response.headers.get('www-authenticate') ?? '').includes('error="invalid_token"'));
});

test.serial('routes without the revocation flag in the scope table do not call introspection', async (t) => {
  const api = await startApi(withIntrospection());
  const before = issuer.hits.get('/token/introspection') ?? 0;
  t.is((await call(`${api.url}/policies`, { headers: bearer(await revokedToken()) })).status, 200);
  t.is(issuer.hits.get('/token/introspection') ?? 0, before);
});

test('when introspection fails (bad credentials) the check fails closed with 503', async (t) => {
  const api = await startApi(withIntrospection('wrong secret'));
  const response = await createPolicy(api.url, await issuer.userToken('alice', 'policies:write'));
  t.is(response.status, 503);
  t.like(response.body, { error: 'temporarily_unavailable' });
});

test('without introspection credentials the revocation check is off', async (t) => {
  const api = await startApi();
  t.is((await createPolicy(api.url, await revokedToken())).status, 201);
});
