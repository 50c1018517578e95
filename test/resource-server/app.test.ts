import { Writable } from 'node:stream';
import test from 'ava';
import { pino } from 'pino';
import { buildResourceServerApp } from '../../src/resource-server/app.ts';
import { createInMemoryInsuranceRepository } from '../../src/resource-server/insurance/in-memory-repository.ts';
import { bearer, call, type Served, serve, testConfig } from './fixtures/serve.ts';
import { startTestIssuer, type TestIssuer } from './fixtures/test-issuer.ts';

let issuer: TestIssuer;
let api: Served;
const logLines: string[] = [];

test.before(async () => {
  issuer = await startTestIssuer();
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  );
  const repository = {
    ...createInMemoryInsuranceRepository(),
    async claimsReport(): Promise<never> {
      throw new Error('database exploded at 10.0.0.7');
    },
  };
  api = await serve(buildResourceServerApp({ config: testConfig(issuer), logger, repository }));
});

test.after.always(async () => {
  await api?.close();
  await issuer?.close();
});

test.serial('an unexpected error is a generic 500 JSON, logged once with its cause', async (t) => {
  const before = logLines.length;
  const response = await call(`${api.url}/reports/claims`, {
    headers: bearer(await issuer.clientToken('analytics', 'reports:read')),
  });
  t.is(response.status, 500);
  t.deepEqual(response.body, { error: 'server_error', error_description: 'internal server error' });
  const errors = logLines.slice(before).filter((line) => line.includes('unexpected error'));
  t.is(errors.length, 1);
  t.true(errors[0]?.includes('database exploded'));
});

test.serial(
  'request logs carry method, path, status and duration, never the token or the query',
  async (t) => {
    const token = await issuer.userToken('alice', 'policies:read');
    const before = logLines.length;
    await call(`${api.url}/policies?secret=query-value`, { headers: bearer(token) });
    await call(`${api.url}/policies?access_token=${token}`);
    const lines = logLines.slice(before);
    const requests = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'request');
    t.is(requests.length, 2);
    t.like(requests[0], { method: 'GET', path: '/policies', status: 200 });
    t.like(requests[1], { method: 'GET', path: '/policies', status: 400 });
    t.is(typeof requests[0].duration_ms, 'number');
    const all = lines.join('\n');
    t.false(all.includes(token));
    t.false(all.includes(token.split('.')[2] as string));
    t.false(all.includes('query-value'));
  },
);

test('a body that cannot be decompressed or decoded is a 400, never a 500', async (t) => {
  const token = await issuer.userToken('alice', 'policies:write');
  for (const encoding of ['gzip', 'deflate', 'br']) {
    const response = await call(`${api.url}/policies`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json', 'content-encoding': encoding },
      body: 'not compressed at all',
    });
    t.is(response.status, 400, encoding);
    t.is((response.body as { error: string }).error, 'invalid_request');
  }
  const badCharset = await call(`${api.url}/policies`, {
    method: 'POST',
    headers: { ...bearer(token), 'content-type': 'application/json; charset=klingon' },
    body: '{"product":"home","coverage":1}',
  });
  // An unknown charset is read as UTF-8 (co-body); what matters is that it is never a 5xx.
  t.true(badCharset.status < 500);
});

test('an anonymous caller learns nothing from its body: 401 before the JSON is even read', async (t) => {
  const response = await call(`${api.url}/policies`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"not json',
  });
  t.is(response.status, 401);
  t.notRegex(response.headers.get('www-authenticate') ?? '', /error=/);
});

test('request logs are sampled for successes (RS_REQUEST_LOG_SAMPLE); errors and refusals are always logged', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  const sampled = await serve(
    buildResourceServerApp({ config: testConfig(issuer, { RS_REQUEST_LOG_SAMPLE: '5' }), logger }),
  );
  t.teardown(() => sampled.close());
  for (let i = 0; i < 10; i++) t.is((await call(`${sampled.url}/health`)).status, 200);
  for (let i = 0; i < 3; i++) t.is((await call(`${sampled.url}/policies`)).status, 401);
  const requests = lines.filter((line) => line.msg === 'request');
  t.is(requests.filter((line) => line.status === 200).length, 2, 'the 1st and the 6th success');
  t.like(
    requests.find((line) => line.status === 200),
    { path: '/health', sampled: 5 },
  );
  t.is(requests.filter((line) => line.status === 401).length, 3);
});
