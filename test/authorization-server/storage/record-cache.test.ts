import test from 'ava';
import { MemoryKv } from '../../../src/authorization-server/storage/memory-kv.ts';
import {
  RECORD_CACHE_MAX_AGE_MS,
  RecordCache,
} from '../../../src/authorization-server/storage/record-cache.ts';
import { RedisKv } from '../../../src/authorization-server/storage/redis-kv.ts';
import { basic, eventually, postForm } from '../../integration/support/harness.ts';
import { startAuthServer, testSecrets } from '../../support/auth-server.ts';
import { movableClock } from '../../support/clock.ts';
import { connectRedis, deletePrefix, testPrefix } from '../../support/redis.ts';
import { startExtraRedis } from '../../support/redis-server.ts';

/** A store of one record per id, counting its reads. */
function backingStore(initial: Record<string, string>) {
  const records = new Map(Object.entries(initial));
  const reads: string[] = [];
  return {
    records,
    reads,
    load: (id: string) => async () => {
      reads.push(id);
      return records.get(id);
    },
  };
}

async function listeningCache(kv = new MemoryKv(), clock = movableClock()) {
  const cache = new RecordCache<string>(kv, 'changes', { now: clock });
  await cache.listen();
  return { cache, kv, clock };
}

test('a listening cache reads a record once while it is fresh, and again once it is older than the limit', async (t) => {
  const { cache, clock } = await listeningCache();
  const store = backingStore({ a: 'one' });
  t.is(await cache.get('a', store.load('a')), 'one');
  t.is(await cache.get('a', store.load('a')), 'one');
  t.deepEqual(store.reads, ['a']);
  store.records.set('a', 'two');
  clock.advance(RECORD_CACHE_MAX_AGE_MS - 1);
  t.is(await cache.get('a', store.load('a')), 'one');
  clock.advance(1);
  t.is(await cache.get('a', store.load('a')), 'two', 'never older than RECORD_CACHE_MAX_AGE_MS');
  t.deepEqual(store.reads, ['a', 'a']);
});

test('a change is seen at once by the cache that made it and, through the channel, by every other', async (t) => {
  const kv = new MemoryKv();
  const here = await listeningCache(kv);
  const there = await listeningCache(kv);
  const store = backingStore({ a: 'one' });
  await here.cache.get('a', store.load('a'));
  await there.cache.get('a', store.load('a'));
  store.records.set('a', 'two');
  await here.cache.changed('a');
  t.is(await here.cache.get('a', store.load('a')), 'two');
  t.is(await there.cache.get('a', store.load('a')), 'two');
  store.records.delete('a');
  await there.cache.changed('a');
  t.is(await here.cache.get('a', store.load('a')), undefined);
});

test('unknown ids are never cached, so made-up ids cannot fill the cache or hide a new record', async (t) => {
  const { cache } = await listeningCache();
  const store = backingStore({});
  t.is(await cache.get('new', store.load('new')), undefined);
  store.records.set('new', 'registered');
  t.is(await cache.get('new', store.load('new')), 'registered');
  t.deepEqual(store.reads, ['new', 'new']);
});

test('a read that began before a change does not put the old record back', async (t) => {
  const { cache } = await listeningCache();
  let release: (value: string) => void = () => {};
  const slow = cache.get('a', () => new Promise<string>((resolve) => (release = resolve)));
  await cache.changed('a');
  release('old');
  t.is(await slow, 'old', 'the request that read it still gets what it read');
  t.is(await cache.get('a', async () => 'new'), 'new', 'but the next one reads again');
});

test('concurrent misses share one read', async (t) => {
  const { cache } = await listeningCache();
  const store = backingStore({ a: 'one' });
  const results = await Promise.all(Array.from({ length: 20 }, () => cache.get('a', store.load('a'))));
  t.true(results.every((r) => r === 'one'));
  t.is(store.reads.length, 1);
});

test('a process that does not listen for changes (the admin CLI) always reads the store', async (t) => {
  const cache = new RecordCache<string>(new MemoryKv(), 'changes');
  const store = backingStore({ a: 'one' });
  await cache.get('a', store.load('a'));
  await cache.get('a', store.load('a'));
  t.is(store.reads.length, 2);
});

test('cached records cannot be changed in place by whoever reads them', async (t) => {
  const cache = new RecordCache<{ scopes: string[] }>(new MemoryKv(), 'changes');
  await cache.listen();
  const record = await cache.get('a', async () => ({ scopes: ['read'] }));
  t.throws(() => record?.scopes.push('admin'));
  t.deepEqual((await cache.get('a', async () => undefined))?.scopes, ['read']);
});

test('when the change channel comes back after a lost connection, nothing cached is trusted (messages were missed)', async (t) => {
  // A Redis of the test's own, restarted under the subscription.
  const redis = await startExtraRedis();
  const kv = new RedisKv(redis.url);
  t.teardown(async () => {
    await kv.close();
    await redis.stop();
  });
  const cache = new RecordCache<string>(kv, 'changes', { now: movableClock() });
  await cache.listen();
  const store = backingStore({ a: 'one' });
  await cache.get('a', store.load('a'));
  await cache.get('a', store.load('a'));
  t.is(store.reads.length, 1, 'cached while the channel is up');
  await redis.stop();
  store.records.set('a', 'changed while the channel was down');
  await redis.start();
  // ioredis reconnects by itself (at most a second apart); the clock stands still, so only the
  // reconnection can drop the entry.
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (await cache.get('a', store.load('a'))) === 'one') {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.is(await cache.get('a', store.load('a')), 'changed while the channel was down');
});

// Across instances on real Redis: the admin's change reaches the other instance's token endpoint.
const prefix = testPrefix('record-cache');
test.after.always(async () => {
  const redis = await connectRedis();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

test('a removed client and a rotated secret stop working at once where the change was made, and on another instance through pub/sub', async (t) => {
  const secrets = testSecrets();
  const [a, b] = [await startAuthServer({ prefix, secrets }), await startAuthServer({ prefix, secrets })];
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const API = 'https://cache.api.test';
  await a.store.resources.add({ uri: API, scopes: ['reports:read'] });
  const created = await a.store.clients.add({
    id: 'cached-m2m',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const token = (issuer: string, secret: string) =>
    postForm(
      `${issuer}/token`,
      { grant_type: 'client_credentials' },
      { authorization: basic('cached-m2m', secret) },
    );
  const first = String(created.client_secret);
  // Both instances now hold the client in memory.
  t.is((await token(a.issuer, first)).status, 200);
  t.is((await token(b.issuer, first)).status, 200);

  const rotated = await a.store.clients.rotateSecret('cached-m2m');
  t.is(
    (await token(a.issuer, first)).status,
    401,
    'the instance that rotated refuses the old secret at once',
  );
  // The other instance hears it on the channel: well within RECORD_CACHE_MAX_AGE_MS (bounded polling).
  const refusedWithin2s = (issuer: string, secret: string) =>
    eventually(async () => (await token(issuer, secret)).status === 401, 2000, 20);
  t.true(
    await refusedWithin2s(b.issuer, first),
    'the other instance refuses the old secret after the message',
  );
  t.is((await token(b.issuer, rotated.client_secret)).status, 200);

  await b.store.clients.remove('cached-m2m');
  t.is((await token(b.issuer, rotated.client_secret)).status, 401, 'removed: refused at once here');
  t.true(await refusedWithin2s(a.issuer, rotated.client_secret), 'and on the other instance');

  // An API removed on one instance gets no more tokens on either.
  const again = await a.store.clients.add({
    id: 'cached-m2m',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  const secret = String(again.client_secret);
  t.is((await token(b.issuer, secret)).status, 200, 'a new registration works at once');
  await a.store.resources.remove(API);
  t.true(
    await eventually(async () => (await token(b.issuer, secret)).status !== 200, 2000, 20),
    'no token for a removed API',
  );
});
