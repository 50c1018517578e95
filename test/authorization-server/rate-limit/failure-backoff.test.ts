import test from 'ava';
import type { Redis } from 'ioredis';
import {
  backoffDelay,
  type CounterRule,
  createFailureCounters,
  type FailureCounters,
  type Granted,
  type Reservation,
} from '../../../src/authorization-server/rate-limit/failure-backoff.ts';
import type { BackoffPolicy } from '../../../src/authorization-server/rate-limit/limits.ts';
import { MemoryKv } from '../../../src/authorization-server/storage/memory-kv.ts';
import { RedisKv } from '../../../src/authorization-server/storage/redis-kv.ts';
import { connectRedis, deletePrefix, REDIS_URL, testPrefix } from '../../support/redis.ts';

const prefix = testPrefix('backoff');
let redis: Redis;
let redisKv: RedisKv;

test.before(async () => {
  redis = await connectRedis();
  redisKv = new RedisKv(REDIS_URL);
});

test.after.always(async () => {
  await redisKv?.close();
  if (redis) {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  }
});

const policy: BackoffPolicy = {
  name: 'test',
  freeFailures: 3,
  firstDelaySeconds: 10,
  maxDelaySeconds: 40,
  memorySeconds: 3600,
};
const strict: BackoffPolicy = { ...policy, freeFailures: 0 };

let n = 0;
/** Two counters in one Redis Cluster slot, fresh for each test. */
function rules(strangerPolicy?: BackoffPolicy): [CounterRule, CounterRule] {
  n += 1;
  const slot = `${prefix}{t${n}}`;
  return [
    { key: `${slot}:a`, policy, strangerPolicy },
    { key: `${slot}:b`, policy: { ...policy, freeFailures: 10 } },
  ];
}

function granted(reservation: Reservation): Granted {
  if (!reservation.allowed) throw new Error('the reservation was refused');
  return reservation;
}

const backends: [string, () => FailureCounters][] = [
  ['Redis', () => createFailureCounters(redisKv)],
  ['in-process', () => createFailureCounters(new MemoryKv())],
];

test('backoffDelay: free failures, then doubling up to the ceiling', (t) => {
  t.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 40].map((f) => backoffDelay(policy, f)),
    [0, 0, 0, 10, 20, 40, 40, 40],
  );
});

for (const [backend, make] of backends) {
  test(`${backend}: of 40 parallel reservations only the free ones and the one starting the hold pass`, async (t) => {
    const counters = make();
    const now = 1_000_000;
    const same = rules();
    const raced = await Promise.all(Array.from({ length: 40 }, () => counters.reserve(same, now)));
    t.is(raced.filter((r) => r.allowed).length, policy.freeFailures + 1);
    t.deepEqual(
      raced.filter((r) => r.allowed).map((r) => (r.allowed ? r.waitIfFailedSeconds : -1)),
      [0, 0, 0, 10],
    );
    t.true(raced.filter((r) => !r.allowed).every((r) => !r.allowed && r.retryAfterSeconds === 10));
  });

  test(`${backend}: the hold lifts when the clock passes it, and the next failure doubles it`, async (t) => {
    const counters = make();
    const keys = rules();
    let now = 5_000_000;
    for (let i = 0; i < 4; i++) t.true((await counters.reserve(keys, now)).allowed);
    t.like(await counters.reserve(keys, now + 9_000), { allowed: false, retryAfterSeconds: 1 });
    now += 10_000;
    t.like(await counters.reserve(keys, now), { allowed: true, waitIfFailedSeconds: 20 });
    t.like(await counters.reserve(keys, now + 19_999), { allowed: false });
    // Failures are forgotten after the policy's memory.
    now += policy.memorySeconds * 1000;
    t.like(await counters.reserve(keys, now), { allowed: true, waitIfFailedSeconds: 0 });
  });

  test(`${backend}: a refund takes one failure back and lifts the hold it caused, never more`, async (t) => {
    const counters = make();
    const keys = rules();
    const now = 9_000_000;
    for (let i = 0; i < 3; i++) await counters.reserve(keys, now);
    const fourth = await counters.reserve(keys, now);
    t.like(fourth, { allowed: true, waitIfFailedSeconds: 10 });
    t.like(await counters.reserve(keys, now), { allowed: false });
    await counters.refund(keys, granted(fourth), now);
    t.like(await counters.reserve(keys, now), { allowed: true, waitIfFailedSeconds: 10 });
    // A refund of a key that never failed creates nothing and allows nothing extra.
    const fresh = rules();
    await counters.refund(fresh, granted(fourth), now);
    t.is(await counters.failures(fresh[0], now), 0);
  });

  test(`${backend}: a refund puts back the hold its reservation replaced: a right answer past the free failures keeps no hold of its own`, async (t) => {
    const counters = make();
    const keys = rules();
    let now = 30_000_000;
    // Past the free failures: the fourth held the key back 10 s, and that hold has run out.
    for (let i = 0; i < 4; i++) await counters.reserve(keys, now);
    now += 10_000;
    // The next check is reserved as the fifth failure, with the 20 s hold a failure would leave...
    const right = await counters.reserve(keys, now);
    t.like(right, { allowed: true, waitIfFailedSeconds: 20 });
    t.like(await counters.reserve(keys, now), { allowed: false, retryAfterSeconds: 20 });
    // ... but the answer was right: the refund undoes exactly that, so the next step is not held back.
    await counters.refund(keys, granted(right), now);
    t.is(await counters.failures(keys[0], now), 4);
    t.like(await counters.reserve(keys, now), { allowed: true, waitIfFailedSeconds: 20 });
  });

  test(`${backend}: a refund never lifts a hold another attempt set since: a stranger's failure still holds`, async (t) => {
    const counters = make();
    const keys = rules();
    const now = 40_000_000;
    for (let i = 0; i < 2; i++) await counters.reserve(keys, now);
    // The third failure is free: no hold. While it is checked, another attempt fails and holds.
    const right = await counters.reserve(keys, now);
    t.like(right, { allowed: true, waitIfFailedSeconds: 0 });
    t.like(await counters.reserve(keys, now), { allowed: true, waitIfFailedSeconds: 10 });
    // The first was right: its failure goes, and the other attempt's hold stays.
    await counters.refund(keys, granted(right), now);
    t.is(await counters.failures(keys[0], now), 3);
    t.like(await counters.reserve(keys, now), { allowed: false, retryAfterSeconds: 10 });
  });

  test(`${backend}: a known key keeps the normal policy; a stranger gets the strict one`, async (t) => {
    const counters = make();
    const now = 12_000_000;
    const stranger = rules(strict);
    t.like(await counters.reserve(stranger, now), { allowed: true, waitIfFailedSeconds: 10 });
    t.like(await counters.reserve(stranger, now), { allowed: false, retryAfterSeconds: 10 });
    const known = rules(strict);
    await counters.markKnown(known[0].key, 3600, now);
    for (let i = 0; i < policy.freeFailures; i++)
      t.like(await counters.reserve(known, now), { allowed: true, waitIfFailedSeconds: 0 });
    // Known for a while only.
    const later = now + 3600 * 1000;
    const knownThen = await counters.reserve(known, later);
    t.like(knownThen, { allowed: true, waitIfFailedSeconds: 10 });
  });

  test(`${backend}: count and failures keep a plain tally within the memory`, async (t) => {
    const counters = make();
    const [rule] = rules();
    const now = 20_000_000;
    for (let i = 1; i <= 5; i++) t.is(await counters.count(rule, now), i);
    t.is(await counters.failures(rule, now + 1000), 5);
    t.is(await counters.failures(rule, now + policy.memorySeconds * 1000), 0);
  });
}
