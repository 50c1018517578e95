import test from 'ava';
import { buildResourceServerApp, buildResourceServerRouter } from '../../src/resource-server/app.ts';
import { createBearerAuth } from '../../src/resource-server/auth/index.ts';
import {
  routeEntries,
  routePolicies,
  routesWithoutPolicy,
  scopesSupported,
} from '../../src/resource-server/scope-policy.ts';
import { bearer, call, type Served, serve, silentLogger, testConfig } from './fixtures/serve.ts';
import { startTestIssuer, type TestIssuer } from './fixtures/test-issuer.ts';

let issuer: TestIssuer;
let api: Served;

test.before(async () => {
  issuer = await startTestIssuer();
  api = await serve(buildResourceServerApp({ config: testConfig(issuer), logger: silentLogger }));
});

test.after.always(async () => {
  await api?.close();
  await issuer?.close();
});

const SAMPLE_ID = '00000000-0000-4000-8000-000000000000';
const concrete = (path: string) => path.replace(':id', SAMPLE_ID);

test('every route registered on the router has an entry in the scope table, and vice versa', (t) => {
  const config = testConfig(issuer);
  const router = buildResourceServerRouter(
    { config, logger: silentLogger },
    createBearerAuth({ issuer: config.issuer, audience: config.audience }),
  );
  t.deepEqual(routesWithoutPolicy(router.stack), []);
  const registered = router.stack.flatMap((layer) =>
    layer.methods.map((method) => `${method} ${layer.path}`),
  );
  for (const [, policy] of routeEntries()) t.true(registered.includes(`${policy.method} ${policy.path}`));
});

test('a route outside the table is detected (deny by default)', (t) => {
  t.deepEqual(routesWithoutPolicy([{ methods: ['DELETE'], path: '/policies/:id' }]), [
    'DELETE /policies/:id',
  ]);
  t.deepEqual(routesWithoutPolicy([{ methods: [], path: '/admin' }]), ['(all) /admin']);
});

test('only /health and the metadata document are public', (t) => {
  const publicRoutes = routeEntries()
    .filter(([, policy]) => policy.scope === null)
    .map(([, policy]) => policy.path);
  t.deepEqual(publicRoutes.sort(), ['/.well-known/oauth-protected-resource', '/health']);
});

test('every protected route refuses a missing token (401) and a token without its scope (403)', async (t) => {
  for (const [id, policy] of routeEntries()) {
    if (policy.scope === null) continue;
    const url = `${api.url}${concrete(policy.path)}`;
    const init = { method: policy.method, headers: { 'content-type': 'application/json' }, body: undefined };

    const anonymous = await call(url, init);
    t.is(anonymous.status, 401, id);
    t.false((anonymous.headers.get('www-authenticate') ?? '').includes('error='), id);

    const others = scopesSupported()
      .filter((scope) => scope !== policy.scope)
      .join(' ');
    const token = policy.endUser
      ? await issuer.userToken('zoe', others)
      : await issuer.clientToken('svc', others);
    const wrongScope = await call(url, { ...init, headers: { ...init.headers, ...bearer(token) } });
    t.is(wrongScope.status, 403, id);
    t.true((wrongScope.headers.get('www-authenticate') ?? '').includes(`scope="${policy.scope}"`), id);
  }
});

test('the table matches SPEC', (t) => {
  const summary = Object.fromEntries(
    Object.values(routePolicies).map((policy) => [`${policy.method} ${policy.path}`, policy.scope]),
  );
  t.deepEqual(summary, {
    'GET /health': null,
    'GET /.well-known/oauth-protected-resource': null,
    'POST /policies': 'policies:write',
    'GET /policies': 'policies:read',
    'GET /policies/:id': 'policies:read',
    'POST /policies/:id/claims': 'claims:write',
    'GET /policies/:id/claims': 'claims:read',
    'GET /reports/claims': 'reports:read',
  });
});

test('RFC 9728: the protected resource metadata document', async (t) => {
  const response = await call(`${api.url}/.well-known/oauth-protected-resource`);
  t.is(response.status, 200);
  t.deepEqual(response.body, {
    resource: issuer.audience,
    authorization_servers: [issuer.issuer],
    scopes_supported: ['policies:write', 'policies:read', 'claims:write', 'claims:read', 'reports:read'],
    bearer_methods_supported: ['header'],
    resource_name: 'Insurance demo API',
  });
  const challenge = (await call(`${api.url}/policies`)).headers.get('www-authenticate') ?? '';
  t.true(challenge.includes(`resource_metadata="${issuer.audience}/.well-known/oauth-protected-resource"`));
});

test('GET /health answers 200 {"status":"ok"} with security headers', async (t) => {
  const response = await call(`${api.url}/health`);
  t.is(response.status, 200);
  t.deepEqual(response.body, { status: 'ok' });
  t.is(response.headers.get('x-content-type-options'), 'nosniff');
  t.is(response.headers.get('cache-control'), 'no-store');
});

test('unknown routes answer 404 JSON, known paths with a wrong method 405 JSON', async (t) => {
  const missing = await call(`${api.url}/admin`);
  t.is(missing.status, 404);
  t.like(missing.body, { error: 'not_found' });
  for (const method of ['DELETE', 'PUT', 'PATCH', 'PROPFIND']) {
    const wrong = await call(`${api.url}/policies`, { method });
    t.is(wrong.status, 405, method);
    t.like(wrong.body, { error: 'method_not_allowed' });
  }
  const health = await call(`${api.url}/health`, { method: 'POST' });
  t.is(health.status, 405);
});
