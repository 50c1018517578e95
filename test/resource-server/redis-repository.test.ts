import { randomBytes } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import type { Redis } from 'ioredis';
import { buildResourceServerApp } from '../../src/resource-server/app.ts';
import { createRedisInsuranceRepository } from '../../src/resource-server/insurance/redis-repository.ts';
import { connectRedis as connectProductRedis } from '../../src/shared/redis.ts';
import { freePort } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, dumpPrefix, REDIS_URL, testPrefix } from '../support/redis.ts';
import { startExtraRedis } from '../support/redis-server.ts';
import {
  bearer,
  call,
  type JsonResponse,
  type Served,
  serve,
  silentLogger,
  testConfig,
} from './fixtures/serve.ts';
import { startTestIssuer, type TestIssuer } from './fixtures/test-issuer.ts';

// With REDIS_URL set, policies and claims live in Redis: they survive a restart and every
// instance of the resource server sees them (SPEC: all state in Redis, nothing acknowledged lost).
const prefix = testPrefix('rs-redis');
const SCOPES = 'policies:read policies:write claims:read claims:write';
let redis: Redis;
let issuer: TestIssuer;
const servers: Served[] = [];
const connections: { disconnect(): void }[] = [];

test.before(async () => {
  redis = await connectRedis();
  issuer = await startTestIssuer();
});

test.after.always(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const c of connections) c.disconnect();
  await issuer?.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

const storeKey = { current: randomBytes(32) };

/** One resource server instance on its own Redis connection, as a separate process would have. */
async function instance(url = REDIS_URL, key = storeKey, keyPrefix = prefix): Promise<Served> {
  const connection = connectProductRedis(url);
  connections.push(connection);
  const served = await serve(
    buildResourceServerApp({
      config: testConfig(issuer),
      logger: silentLogger,
      repository: createRedisInsuranceRepository(connection, keyPrefix, key),
    }),
  );
  servers.push(served);
  return served;
}

const json = (token: string, body: unknown) => ({
  method: 'POST',
  headers: { ...bearer(token), 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

test.serial(
  'a policy and its claims made on one instance are there on another, and after a restart',
  async (t) => {
    const alice = await issuer.userToken('alice', SCOPES);
    const bob = await issuer.userToken('bob', SCOPES);
    const first = await instance();
    const created = await call(`${first.url}/policies`, json(alice, { product: 'home', coverage: 250000 }));
    t.is(created.status, 201);
    const id = (created.body as { id: string }).id;
    t.is(
      (
        await call(
          `${first.url}/policies/${id}/claims`,
          json(alice, { description: 'Flooded kitchen', amount: 1200 }),
        )
      ).status,
      201,
    );

    await first.close();
    servers.splice(servers.indexOf(first), 1);
    const second = await instance();
    const listed = await call(`${second.url}/policies`, { headers: bearer(alice) });
    t.deepEqual(
      (listed.body as { id: string }[]).map((p) => p.id),
      [id],
    );
    const claims = await call(`${second.url}/policies/${id}/claims`, { headers: bearer(alice) });
    t.like((claims.body as object[])[0], { policy_id: id, description: 'Flooded kitchen', amount: 1200 });

    // Ownership holds in Redis as in memory: Bob sees nothing of it.
    t.is((await call(`${second.url}/policies/${id}`, { headers: bearer(bob) })).status, 404);
    t.deepEqual((await call(`${second.url}/policies`, { headers: bearer(bob) })).body, []);
    t.is(
      (await call(`${second.url}/policies/${id}/claims`, json(bob, { description: 'x', amount: 1 }))).status,
      404,
    );

    const report = await call(`${second.url}/reports/claims`, {
      headers: bearer(await issuer.clientToken('analytics', 'reports:read')),
    });
    t.like(report.body, { policies: { total: 1 }, claims: { total: 1, total_amount: 1200 } });
    t.false(JSON.stringify(report.body).includes('alice'));

    const dump = await dumpPrefix(redis, prefix);
    t.true(dump.includes(`${prefix}rs:`), 'under the deployment prefix');
  },
);

test.serial(
  "issue 9 finding 12: a dump of the API's Redis keys shows no holder, id, description or amount",
  async (t) => {
    const own = testPrefix('rs-sealed');
    t.teardown(() => deletePrefix(redis, own));
    const holder = `holder-${randomBytes(6).toString('hex')}`;
    const description = `Burst pipe flooded the attic ${randomBytes(4).toString('hex')}`;
    const token = await issuer.userToken(holder, SCOPES);
    const api = await instance(REDIS_URL, storeKey, own);
    const created = await call(
      `${api.url}/policies`,
      json(token, { product: 'travel', coverage: 4_445_551 }),
    );
    t.is(created.status, 201);
    const id = (created.body as { id: string }).id;
    const claim = await call(
      `${api.url}/policies/${id}/claims`,
      json(token, { description, amount: 987_653 }),
    );
    t.is(claim.status, 201);
    const claimId = (claim.body as { id: string }).id;
    // Everything still reads back through the API...
    t.like(
      ((await call(`${api.url}/policies/${id}/claims`, { headers: bearer(token) })).body as object[])[0],
      {
        description,
        amount: 987_653,
      },
    );
    const report = await call(`${api.url}/reports/claims`, {
      headers: bearer(await issuer.clientToken('analytics', 'reports:read')),
    });
    t.like(report.body, { claims: { total: 1, total_amount: 987_653 } });

    // ...but nothing of it is readable at rest: not in values, not in key names.
    const dump = await dumpPrefix(redis, own);
    t.true(dump.includes(`${own}rs:`));
    for (const secret of [
      holder,
      id,
      claimId,
      description,
      'Burst pipe',
      '987653',
      '4445551',
      'travel',
      storeKey.current.toString('base64url'),
    ]) {
      t.false(dump.includes(secret), `${secret} is not in Redis in plain text`);
    }
  },
);

/** A 503 in the RFC 6749-style JSON error shape, with Retry-After and nothing of the store's data. */
function assertUnavailable(t: ExecutionContext, response: JsonResponse, what: string): void {
  t.is(response.status, 503, what);
  t.deepEqual(
    response.body,
    { error: 'temporarily_unavailable', error_description: 'the service is temporarily unavailable' },
    what,
  );
  t.is(response.headers.get('retry-after'), '2', what);
  t.regex(response.headers.get('content-type') ?? '', /^application\/json/, what);
}

test.serial(
  'records are bound to RS_STORE_KEY: another key cannot open the store (503, never data)',
  async (t) => {
    const own = testPrefix('rs-sealed');
    t.teardown(() => deletePrefix(redis, own));
    const token = await issuer.userToken('dave', SCOPES);
    const first = await instance(REDIS_URL, storeKey, own);
    const created = await call(`${first.url}/policies`, json(token, { product: 'home', coverage: 10 }));
    t.is(created.status, 201);
    const id = (created.body as { id: string }).id;

    const connection = connectProductRedis(REDIS_URL);
    connections.push(connection);
    const wrongKey = createRedisInsuranceRepository(connection, own, { current: randomBytes(32) });
    await t.throwsAsync(wrongKey.open(), { message: /^RS_STORE_KEY: it is not the key/ });

    // Over HTTP, an instance started with the wrong key serves nothing of the data, and writes nothing.
    const wrong = await instance(REDIS_URL, { current: randomBytes(32) }, own);
    const before = await dumpPrefix(redis, own);
    assertUnavailable(t, await call(`${wrong.url}/policies`, { headers: bearer(token) }), 'list');
    assertUnavailable(t, await call(`${wrong.url}/policies/${id}`, { headers: bearer(token) }), 'read');
    assertUnavailable(
      t,
      await call(`${wrong.url}/policies/${id}/claims`, { headers: bearer(token) }),
      'claims',
    );
    assertUnavailable(
      t,
      await call(`${wrong.url}/policies`, json(token, { product: 'motor', coverage: 20 })),
      'create',
    );
    assertUnavailable(
      t,
      await call(`${wrong.url}/reports/claims`, {
        headers: bearer(await issuer.clientToken('analytics', 'reports:read')),
      }),
      'report',
    );
    t.is(await dumpPrefix(redis, own), before, 'nothing written with the wrong key');

    // Moving to a new key with the old one as RS_STORE_KEY_PREVIOUS re-wraps the data keys: data survives.
    const nextKey = { current: randomBytes(32), previous: storeKey.current };
    const moved = await instance(REDIS_URL, nextKey, own);
    t.is(((await call(`${moved.url}/policies`, { headers: bearer(token) })).body as unknown[]).length, 1);
  },
);

test.serial(
  'with its Redis unreachable from the start (a closed port) the resource server answers 503 in JSON, never a 500 or a hang',
  async (t) => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    const api = await instance(closed, storeKey, testPrefix('rs-unreachable'));
    const token = await issuer.userToken('erin', SCOPES);
    const bounded = { signal: AbortSignal.timeout(10_000) };
    assertUnavailable(t, await call(`${api.url}/policies`, { headers: bearer(token), ...bounded }), 'list');
    assertUnavailable(
      t,
      await call(`${api.url}/policies`, { ...json(token, { product: 'life', coverage: 5 }), ...bounded }),
      'create',
    );
    assertUnavailable(
      t,
      await call(`${api.url}/reports/claims`, {
        headers: bearer(await issuer.clientToken('analytics', 'reports:read')),
        ...bounded,
      }),
      'report',
    );
    // The token is still checked first: no token is a 401, whatever the store.
    t.is((await call(`${api.url}/policies`, bounded)).status, 401);
    t.is((await call(`${api.url}/health`, bounded)).status, 200);
  },
);

test.serial(
  'with its Redis gone the resource server answers 503 in JSON, never a 500 or a hang',
  async (t) => {
    const own = await startExtraRedis();
    try {
      const api = await instance(own.url);
      const token = await issuer.userToken('carol', SCOPES);
      t.is(
        (await call(`${api.url}/policies`, json(token, { product: 'motor', coverage: 1000 }))).status,
        201,
      );
      await own.stop();
      const response = await call(`${api.url}/policies`, {
        headers: bearer(token),
        signal: AbortSignal.timeout(5000),
      });
      t.is(response.status, 503);
      t.is((response.body as { error: string }).error, 'temporarily_unavailable');
      await own.start();
      const deadline = Date.now() + 10_000;
      let status = 0;
      while (status !== 200 && Date.now() < deadline) {
        status = (await call(`${api.url}/policies`, { headers: bearer(token) })).status;
        if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      t.is(status, 200, 'back by itself, and the policy acknowledged before is still there (AOF)');
    } finally {
      await own.stop();
    }
  },
);
