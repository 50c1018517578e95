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
