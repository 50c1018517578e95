import test from 'ava';
import { buildResourceServerApp } from '../../src/resource-server/app.ts';
import { bearer, call, type Served, serve, silentLogger, testConfig } from './fixtures/serve.ts';
import { startTestIssuer, type TestIssuer } from './fixtures/test-issuer.ts';

const ALL_USER_SCOPES = 'policies:read policies:write claims:read claims:write';
const POLICY_FIELDS = ['coverage', 'created_at', 'holder', 'id', 'product', 'status'];
const CLAIM_FIELDS = ['amount', 'created_at', 'description', 'id', 'policy_id', 'status'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

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

type Json = Record<string, unknown>;

const userToken = (sub: string, scope = ALL_USER_SCOPES) => issuer.userToken(sub, scope);

function post(path: string, token: string, body: unknown, contentType = 'application/json') {
  return call(`${api.url}${path}`, {
    method: 'POST',
    headers: { ...bearer(token), 'content-type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const get = (path: string, token: string) => call(`${api.url}${path}`, { headers: bearer(token) });

async function createPolicy(
  sub: string,
  body: unknown = { product: 'home', coverage: 250000 },
): Promise<Json> {
  const response = await post('/policies', await userToken(sub), body);
  if (response.status !== 201) throw new Error(`policy creation failed: ${JSON.stringify(response.body)}`);
  return response.body as Json;
}

test('POST /policies creates a policy owned by the token subject, with exactly the documented fields', async (t) => {
  const response = await post('/policies', await userToken('alice'), { product: 'motor', coverage: 15000 });
  t.is(response.status, 201);
  const policy = response.body as Json;
  t.deepEqual(Object.keys(policy).sort(), POLICY_FIELDS);
  t.like(policy, { holder: 'alice', product: 'motor', coverage: 15000, status: 'active' });
  t.regex(policy.id as string, UUID);
  t.false(Number.isNaN(Date.parse(policy.created_at as string)));
  t.is(response.headers.get('content-type'), 'application/json; charset=utf-8');
});

test('claims are created on one’s own policy with exactly the documented fields, and listed', async (t) => {
  const policy = await createPolicy('carol');
  const token = await userToken('carol');
  const created = await post(`/policies/${policy.id}/claims`, token, {
    description: '  Burst pipe  ',
    amount: 1200,
  });
  t.is(created.status, 201);
  const claim = created.body as Json;
  t.deepEqual(Object.keys(claim).sort(), CLAIM_FIELDS);
  t.like(claim, { policy_id: policy.id, description: 'Burst pipe', amount: 1200, status: 'submitted' });
  t.regex(claim.id as string, UUID);

  const listed = await get(`/policies/${policy.id}/claims`, token);
  t.is(listed.status, 200);
  t.deepEqual(listed.body, [claim]);
});

test('OWASP API1: user B never sees or touches user A’s policy or claims (404, not 403)', async (t) => {
  const policy = await createPolicy('alice-bola');
  const aliceToken = await userToken('alice-bola');
  t.is(
    (await post(`/policies/${policy.id}/claims`, aliceToken, { description: 'Hail', amount: 10 })).status,
    201,
  );

  const bobToken = await userToken('bob-bola');
  const notFound = { error: 'not_found' };
  for (const response of [
    await get(`/policies/${policy.id}`, bobToken),
    await get(`/policies/${policy.id}/claims`, bobToken),
    await post(`/policies/${policy.id}/claims`, bobToken, { description: 'Mine now', amount: 99 }),
  ]) {
    t.is(response.status, 404);
    t.like(response.body, notFound);
  }
  const bobList = await get('/policies', bobToken);
  t.deepEqual(bobList.body, []);

  // Alice still has exactly her one claim, and her list holds only her policy.
  t.is(((await get(`/policies/${policy.id}/claims`, aliceToken)).body as Json[]).length, 1);
  const aliceList = (await get('/policies', aliceToken)).body as Json[];
  t.deepEqual(
    aliceList.map((item) => item.id),
    [policy.id],
  );
});

test('an unknown or malformed policy id answers 404 exactly like someone else’s', async (t) => {
  const token = await userToken('dave');
  for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', '..%2f..%2fetc']) {
    const response = await get(`/policies/${id}`, token);
    t.is(response.status, 404, id);
    t.like(response.body, { error: 'not_found' });
  }
});

test('client credentials tokens are refused on user routes with 403', async (t) => {
  const policy = await createPolicy('erin');
  const machine = await issuer.clientToken('batch-job', `${ALL_USER_SCOPES} reports:read`);
  for (const response of [
    await get('/policies', machine),
    await get(`/policies/${policy.id}`, machine),
    await get(`/policies/${policy.id}/claims`, machine),
    await post('/policies', machine, { product: 'home', coverage: 1 }),
    await post(`/policies/${policy.id}/claims`, machine, { description: 'x', amount: 1 }),
  ]) {
    t.is(response.status, 403);
    t.like(response.body, { error: 'access_denied' });
  }
});

test('GET /reports/claims gives a machine client aggregates only: no ids, no holders', async (t) => {
  const policy = await createPolicy('frank-report', { product: 'travel', coverage: 5000 });
  await post(`/policies/${policy.id}/claims`, await userToken('frank-report'), {
    description: 'Lost bag',
    amount: 300,
  });

  const response = await get('/reports/claims', await issuer.clientToken('analytics', 'reports:read'));
  t.is(response.status, 200);
  const report = response.body as { policies: Json; claims: Json };
  t.true((report.policies.total as number) >= 1);
  t.true((report.claims.total as number) >= 1);
  t.true((report.claims.total_amount as number) >= 300);
  t.true(((report.claims.by_product as Record<string, Json>).travel?.count as number) >= 1);
  t.true(((report.claims.by_status as Json).submitted as number) >= 1);
  const text = JSON.stringify(report);
  t.false(text.includes(policy.id as string));
  t.false(text.includes('frank-report'));
  t.false(/"(id|holder|policy_id|sub|description)"/.test(text));
});

test('reports need reports:read', async (t) => {
  const response = await get('/reports/claims', await issuer.clientToken('analytics', 'policies:read'));
  t.is(response.status, 403);
  t.like(response.body, { error: 'insufficient_scope' });
});

test('OWASP API3: server-owned and unknown fields in a body are rejected and never take effect', async (t) => {
  const token = await userToken('grace');
  const attempts = [
    { product: 'home', coverage: 1000, id: '00000000-0000-4000-8000-000000000001' },
    { product: 'home', coverage: 1000, holder: 'someone-else' },
    { product: 'home', coverage: 1000, status: 'cancelled' },
    { product: 'home', coverage: 1000, created_at: '2000-01-01T00:00:00Z' },
    { product: 'home', coverage: 1000, is_admin: true },
  ];
  for (const body of attempts) {
    const response = await post('/policies', token, body);
    t.is(response.status, 400, JSON.stringify(body));
    t.like(response.body, { error: 'invalid_request' });
  }
  const policy = await createPolicy('grace');
  for (const extra of [{ policy_id: 'x' }, { status: 'approved' }, { id: 'x' }, { holder: 'x' }]) {
    const response = await post(`/policies/${policy.id}/claims`, token, {
      description: 'd',
      amount: 1,
      ...extra,
    });
    t.is(response.status, 400);
  }
  // Nothing above was stored: grace has only the policy made through the proper call, with no claims.
  t.deepEqual(
    ((await get('/policies', token)).body as Json[]).map((item) => [item.id, item.holder, item.status]),
    [[policy.id, 'grace', 'active']],
  );
  t.deepEqual((await get(`/policies/${policy.id}/claims`, token)).body, []);
  t.is((await get('/policies', await userToken('someone-else'))).status, 200);
  t.deepEqual((await get('/policies', await userToken('someone-else'))).body, []);
});

test('invalid field values get 400 invalid_request', async (t) => {
  const token = await userToken('heidi');
  const policies = [
    {},
    { product: 'boat', coverage: 10 },
    { product: 'home', coverage: 0 },
    { product: 'home', coverage: -5 },
    { product: 'home', coverage: 1.5 },
    { product: 'home', coverage: '1000' },
    { product: 'home', coverage: 1e300 },
    { product: 'home' },
    [{ product: 'home', coverage: 10 }],
    null,
  ];
  for (const body of policies) {
    const response = await post('/policies', token, JSON.stringify(body));
    t.is(response.status, 400, JSON.stringify(body));
    t.like(response.body, { error: 'invalid_request' });
  }
  const policy = await createPolicy('heidi');
  const claims = [
    { description: '', amount: 1 },
    { description: '   ', amount: 1 },
    { description: 'x'.repeat(2001), amount: 1 },
    { description: 'bell\u0007', amount: 1 },
    { description: 'ok', amount: 0 },
    { description: 'ok', amount: 2_000_000_000 },
    { description: 42, amount: 1 },
  ];
  for (const body of claims) {
    const response = await post(`/policies/${policy.id}/claims`, token, body);
    t.is(response.status, 400, JSON.stringify(body).slice(0, 60));
  }
});

test('bad bodies: malformed JSON 400, oversized 413, wrong content type 415, all JSON errors', async (t) => {
  const token = await userToken('ivan');
  const cases: [string, string, number][] = [
    ['{"product": "home", ', 'application/json', 400],
    ['{"__proto__": {"admin": true}, "product": "home", "coverage": 1}', 'application/json', 400],
    ['"just a string"', 'application/json', 400],
    [JSON.stringify({ product: 'home', coverage: 1, pad: 'x'.repeat(20_000) }), 'application/json', 413],
    ['product=home&coverage=1', 'application/x-www-form-urlencoded', 415],
    ['{"product": "home", "coverage": 1}', 'text/plain', 415],
    ['{"product": "home", "coverage": 1}', 'application/xml', 415],
  ];
  for (const [body, contentType, status] of cases) {
    const response = await post('/policies', token, body, contentType);
    t.is(response.status, status, `${contentType} ${body.slice(0, 30)}`);
    t.like(response.body, { error: 'invalid_request' });
    t.is(typeof (response.body as Json).error_description, 'string');
  }
  const noType = await call(`${api.url}/policies`, { method: 'POST', headers: bearer(token) });
  t.is(noType.status, 415);
});
