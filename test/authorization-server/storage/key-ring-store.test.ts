import test from 'ava';
import { families, NEXT_KEY_LEAD_MS } from '../../../src/authorization-server/keys/signing-key-ring.ts';
import { KeyRingStore } from '../../../src/authorization-server/storage/key-ring-store.ts';
import { MAX_TOKEN_LIFETIME_SECONDS } from '../../../src/config/fields.ts';
import { startAuthServer, testSecrets } from '../../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../../support/redis.ts';

const prefix = testPrefix('key-ring-store');
test.after.always(async () => {
  const redis = await connectRedis();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

test('a rotation right after another waits until the keys it promotes have been published NEXT_KEY_LEAD_MS; an emergency one and a scheduled one never promote early', async (t) => {
  const server = await startAuthServer({ prefix, secrets: testSecrets() });
  t.teardown(() => server.close());
  let now = Date.now();
  const waits: number[] = [];
  const keyRing = new KeyRingStore(server.store.kv, server.store.keys, server.store.box, server.store.feed, {
    algs: async () => families(server.config.accessTokenAlg, await server.store.resources.namedAlgs()),
    maxTokenLifetimeSeconds: MAX_TOKEN_LIFETIME_SECONDS,
    now: () => new Date(now),
    tokens: server.store.jwtTokens,
    // The wait is recorded and passes on the test's clock.
    sleep: async (ms) => {
      waits.push(ms);
      now += ms;
    },
  });
  now += NEXT_KEY_LEAD_MS;
  await keyRing.rotate();
  t.deepEqual(waits, [], 'next keys published long enough ago: no wait');

  // At once again: the keys it would promote were made a moment ago by the first rotation.
  const next = (await keyRing.read())?.keys.filter((k) => k.status === 'next').map((k) => k.kid);
  await keyRing.rotate();
  t.is(waits.length, 1);
  t.true((waits[0] as number) > NEXT_KEY_LEAD_MS - 1000 && (waits[0] as number) <= NEXT_KEY_LEAD_MS);
  const current = (await keyRing.read())?.keys.filter((k) => k.status === 'current').map((k) => k.kid);
  t.deepEqual(current?.sort(), next?.sort(), 'then it promotes them');

  // A scheduled rotation that is due skips a ring whose next keys are too new; the next check rotates.
  t.false(await keyRing.rotateIfDue(0), 'due, but its next keys are not known everywhere yet');
  now += NEXT_KEY_LEAD_MS;
  t.true(await keyRing.rotateIfDue(0));

  // A leaked key cannot wait.
  waits.length = 0;
  await keyRing.rotate(true);
  t.deepEqual(waits, []);
});
