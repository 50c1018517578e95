import { randomBytes } from 'node:crypto';
import test from 'ava';
import type { Redis } from 'ioredis';
import { openStore } from '../../../src/authorization-server/storage/store.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { testSecrets } from '../../support/auth-server.ts';
import { connectRedis, deletePrefix, dumpPrefix, REDIS_URL, testPrefix } from '../../support/redis.ts';

let redis: Redis;
const prefixes: string[] = [];

test.before(async () => {
  redis = await connectRedis();
});
test.after.always(async () => {
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  redis.disconnect();
});

function configFor(prefix: string, storeKey: string, previous?: string) {
  return loadConfig({
    REDIS_URL,
    REDIS_PREFIX: prefix,
    KEYS_DIR: testSecrets().KEYS_DIR,
    STORE_KEY: storeKey,
    ...(previous ? { STORE_KEY_PREVIOUS: previous } : {}),
  });
}

const newKey = () => randomBytes(32).toString('base64url');

test('moving the store key re-wraps the data keys: clients, users and key names survive', async (t) => {
  const prefix = testPrefix('data-keys');
  prefixes.push(prefix);
  const oldKey = newKey();
  const nextKey = newKey();

  const first = await openStore(configFor(prefix, oldKey));
  await first.users.add({ email: 'carol@example.com', password: 'a long enough password' });
  const ring = await first.keyRing.ensure();
  await first.close();

  await t.throwsAsync(openStore(configFor(prefix, nextKey)), { message: /^STORE_KEY: it is not the key/ });

  const moving = await openStore(configFor(prefix, nextKey, oldKey));
  t.is((await moving.users.findByEmail('carol@example.com'))?.email, 'carol@example.com');
  await moving.close();

  const moved = await openStore(configFor(prefix, nextKey));
  t.is((await moved.users.findByEmail('CAROL@example.com'))?.email, 'carol@example.com');
  t.deepEqual(
    (await moved.keyRing.read())?.keys.map((k) => k.kid),
    ring.keys.map((k) => k.kid),
  );
  await moved.close();

  await t.throwsAsync(
    openStore(configFor(prefix, oldKey)),
    { message: /^STORE_KEY/ },
    'the old key no longer opens it',
  );
});

test('neither the store key nor the data keys are readable in Redis', async (t) => {
  const prefix = testPrefix('data-keys');
  prefixes.push(prefix);
  const storeKey = newKey();
  const store = await openStore(configFor(prefix, storeKey));
  await store.keyRing.ensure();
  await store.close();
  const dump = await dumpPrefix(redis, prefix);
  t.true(dump.includes(`${prefix}data-keys`));
  t.false(dump.includes(storeKey));
  t.false(/"encryption"|"idHash"|"cookie"/.test(dump));
});

test('two processes opening a new store at once agree on one set of data keys', async (t) => {
  const prefix = testPrefix('data-keys');
  prefixes.push(prefix);
  const storeKey = newKey();
  const stores = await Promise.all([1, 2, 3].map(() => openStore(configFor(prefix, storeKey))));
  const names = stores.map((s) => s.keys.model('Client', 'same-client'));
  t.is(new Set(names).size, 1);
  await Promise.all(stores.map((s) => s.close()));
});

test('issue 9 finding 14: the data key rotates; new writes use it, old values open and are re-sealed lazily', async (t) => {
  const prefix = testPrefix('data-keys');
  prefixes.push(prefix);
  const storeKey = newKey();
  const env = (extra: Record<string, string> = {}) => ({
    ...configFor(prefix, storeKey),
    reloadIntervalMs: 100,
    ...extra,
  });
  const a = await openStore(env());
  const b = await openStore(env());
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const api = 'https://api.data-keys.test';
  await a.resources.add({ uri: api, scopes: ['x:read'] });
  const client = (id: string) => ({
    id,
    grants: ['client_credentials' as const],
    scope: ['x:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  await a.clients.add(client('old-client'));
  const rawClient = async (id: string) => (await redis.hget(a.keys.model('Client', id), 'p')) ?? '';
  const oldKid = String((await rawClient('old-client')).split('.')[1]);
  t.is(oldKid, a.box.id);

  const rotation = await a.rotateDataKey({ activateAfterMs: 700 });
  t.not(rotation.kid, oldKid);
  t.deepEqual(rotation.previous, [oldKid]);
  // Not active yet: writes still use the old key, and the other instance learns the new one meanwhile.
  await b.clients.add(client('written-while-pending'));
  t.is((await rawClient('written-while-pending')).split('.')[1], oldKid);
  const deadline = Date.now() + 5000;
  while (b.box.id !== rotation.kid && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.is(b.box.id, rotation.kid, 'instance B seals with the new key once it is active');

  await b.clients.add(client('new-client'));
  t.is((await rawClient('new-client')).split('.')[1], rotation.kid, 'new writes use the new key');
  t.is((await b.clients.get('old-client'))?.client_id, 'old-client', 'the old value opens');
  const resealed = Date.now() + 5000;
  while ((await rawClient('old-client')).split('.')[1] !== rotation.kid && Date.now() < resealed) {
    await new Promise((r) => setTimeout(r, 50));
  }
  t.is(
    (await rawClient('old-client')).split('.')[1],
    rotation.kid,
    're-sealed under the new key after a read',
  );
  t.truthy(await a.clients.get('old-client'), 'and still opens everywhere');

  // A process started later (the CLI, a new instance) opens values under every key.
  const later = await openStore(env());
  t.truthy(await later.clients.get('written-while-pending'));
  t.truthy(await later.clients.get('new-client'));
  await later.close();
  const dump = await dumpPrefix(redis, prefix);
  t.false(dump.includes(storeKey));
});
