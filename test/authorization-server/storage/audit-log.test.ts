import test from 'ava';
import type { Redis } from 'ioredis';
import {
  AuditChainError,
  type AuditEvent,
  AuditLog,
} from '../../../src/authorization-server/storage/audit-log.ts';
import type { Kv } from '../../../src/authorization-server/storage/kv.ts';
import { MemoryKv } from '../../../src/authorization-server/storage/memory-kv.ts';
import { KeyNames } from '../../../src/authorization-server/storage/redis-keys.ts';
import { openStore, type Store } from '../../../src/authorization-server/storage/store.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { testSecrets } from '../../support/auth-server.ts';
import { interleave, interleavings } from '../../support/interleave.ts';
import { connectRedis, deletePrefix, dumpPrefix, REDIS_URL, testPrefix } from '../../support/redis.ts';

let redis: Redis;
const prefixes: string[] = [];
const opened: Store[] = [];

test.before(async () => {
  redis = await connectRedis();
});
test.after.always(async () => {
  await Promise.allSettled(opened.map((s) => s.close()));
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  redis.disconnect();
});

/** A fresh deployment's store; `instances` opens that many (separate connections, one store). */
async function deployment(instances = 1): Promise<Store[]> {
  const prefix = testPrefix('audit');
  prefixes.push(prefix);
  const env = { REDIS_URL, REDIS_PREFIX: prefix, LOG_LEVEL: 'silent', ...testSecrets() };
  const stores: Store[] = [];
  for (let i = 0; i < instances; i++) stores.push(await openStore(loadConfig(env)));
  opened.push(...stores);
  return stores;
}

const event = (n: number): AuditEvent => ({
  actor: 'cli:auditor',
  action: 'clients.add',
  target: `client-${n}`,
  source: 'cli',
  outcome: 'ok',
});

async function withEntries(count: number): Promise<Store> {
  const [store] = (await deployment()) as [Store];
  for (let i = 1; i <= count; i++) await store.audit.record(event(i));
  return store;
}

/** The raw stream, oldest first: [id, value] pairs as an attacker with Redis access sees them. */
async function rawEntries(store: Store): Promise<[string, string][]> {
  const raw = await redis.xrange(store.keys.auditLog(), '-', '+');
  return raw.map(([id, fields]) => [id, fields[1] as string]);
}

/** Rewrites the stream with the attacker's edit (ids must keep increasing, as Redis requires). */
async function rewrite(
  store: Store,
  edit: (entries: [string, string][]) => [string, string][],
): Promise<void> {
  const edited = edit(await rawEntries(store));
  await redis.del(store.keys.auditLog());
  for (const [id, value] of edited) await redis.xadd(store.keys.auditLog(), id, 'v', value);
}

test('entries chain: each carries its sequence number and the hash of the one before', async (t) => {
  const store = await withEntries(4);
  t.deepEqual(await store.audit.verify(), { ok: true, entries: 4 });
  const newestFirst = await store.audit.recent(10);
  t.deepEqual(
    newestFirst.map((e) => e.seq),
    [4, 3, 2, 1],
  );
  t.is(newestFirst[3]?.prev, '0'.repeat(64));
  for (let i = 0; i < 3; i++) t.is(newestFirst[i]?.prev, newestFirst[i + 1]?.hash);
  t.like(newestFirst[0], { actor: 'cli:auditor', action: 'clients.add', target: 'client-4', outcome: 'ok' });
  t.deepEqual(
    (await store.audit.recent(2)).map((e) => e.seq),
    [4, 3],
  );
});

test('sealed at rest: nothing of an entry readable in Redis', async (t) => {
  const store = await withEntries(2);
  const dump = JSON.stringify(await dumpPrefix(redis, store.keys.prefix));
  for (const plain of ['cli:auditor', 'clients.add', 'client-1']) t.false(dump.includes(plain), plain);
});

test('a changed entry is named', async (t) => {
  const store = await withEntries(5);
  await rewrite(store, (entries) =>
    entries.map(([id, value], i) => [id, i === 2 ? `${value.slice(0, -4)}AAAA` : value]),
  );
  const verdict = await store.audit.verify();
  t.like(verdict, { ok: false, first_bad: { seq: 3, reason: 'changed' } });
  t.is(
    (verdict as { first_bad: { id: string | undefined } }).first_bad.id,
    (await rawEntries(store))[2]?.[0],
  );
});

test('a removed entry is named, in the middle, at the start and at the tail', async (t) => {
  for (const [index, seq] of [
    [2, 3],
    [0, 1],
    [4, 5],
  ] as const) {
    const store = await withEntries(5);
    const id = (await rawEntries(store))[index]?.[0] as string;
    await redis.xdel(store.keys.auditLog(), id);
    t.like(await store.audit.verify(), { ok: false, first_bad: { seq, reason: 'removed' } }, `entry ${seq}`);
  }
});

test('reordered entries are named', async (t) => {
  const store = await withEntries(5);
  await rewrite(store, (entries) => {
    const values = entries.map(([, v]) => v);
    [values[1], values[2]] = [values[2] as string, values[1] as string];
    return entries.map(([id], i) => [id, values[i] as string]);
  });
  t.like(await store.audit.verify(), { ok: false, first_bad: { seq: 3, reason: 'reordered' } });
});

test('an entry replaced by a copy of another (replayed ciphertext) is named', async (t) => {
  const store = await withEntries(4);
  await rewrite(store, (entries) =>
    entries.map(([id, value], i) => [id, i === 3 ? (entries[1]?.[1] as string) : value]),
  );
  t.like(await store.audit.verify(), { ok: false, first_bad: { seq: 2, reason: 'reordered' } });
});

test('appends from several instances at once keep one valid chain', async (t) => {
  const stores = await deployment(3);
  await Promise.all(
    stores.flatMap((store, s) =>
      Array.from({ length: 30 }, (_, i) => store.audit.record(event(s * 100 + i))),
    ),
  );
  const first = stores[0] as Store;
  t.deepEqual(await first.audit.verify(), { ok: true, entries: 90 });
  const seqs = (await first.audit.recent(1000)).map((e) => e.seq).sort((a, b) => a - b);
  t.deepEqual(
    seqs,
    Array.from({ length: 90 }, (_, i) => i + 1),
  );
});

test('retention drops old entries behind a sealed checkpoint; the chain still verifies from it', async (t) => {
  const [store] = (await deployment()) as [Store];
  let clock = new Date('2026-01-01T00:00:00Z');
  const log = new AuditLog(store.kv, store.keys, store.box, { now: () => clock });
  for (let day = 0; day < 5; day++) {
    clock = new Date(Date.UTC(2026, 0, 1 + day));
    await log.record(event(day));
  }
  // Keep two days: entries of Jan 1-3 are dropped when it is Jan 5.
  t.deepEqual(await log.applyRetention(2 * 86_400), { dropped: 2 });
  t.deepEqual(await log.applyRetention(2 * 86_400), { dropped: 0 }, 'nothing more is old enough');
  const verdict = await log.verify();
  t.like(verdict, {
    ok: true,
    entries: 3,
    checkpoint: { seq: 2, dropped: 2, through: '2026-01-02T00:00:00.000Z' },
  });
  t.deepEqual(
    (await log.recent(10)).map((e) => e.seq),
    [5, 4, 3],
  );
  await log.record(event(6));
  t.like(await log.verify(), { ok: true, entries: 4 });

  // The checkpoint is what lets the shorter chain verify: without it, the start is missing.
  const checkpoint = (await redis.get(store.keys.auditCheckpoint())) as string;
  await redis.del(store.keys.auditCheckpoint());
  t.like(await log.verify(), { ok: false, first_bad: { seq: 1, reason: 'removed' } });
  await redis.set(store.keys.auditCheckpoint(), checkpoint);
  t.like(await log.verify(), { ok: true });
});

test('retention drains every old entry, in batches, however many there are (two instances at once too)', async (t) => {
  const OLD = 2_345; // more than two of retention's batches (1000 entries each)
  const [a, b] = (await deployment(2)) as [Store, Store];
  let clock = new Date('2026-01-01T00:00:00Z');
  const logA = new AuditLog(a.kv, a.keys, a.box, { now: () => clock });
  const logB = new AuditLog(b.kv, b.keys, b.box, { now: () => clock });
  await Promise.all(Array.from({ length: OLD }, (_, i) => logA.record(event(i))));
  clock = new Date('2026-01-10T00:00:00Z');
  for (let i = 0; i < 3; i++) await logA.record(event(OLD + i));

  const [first, second] = await Promise.all([
    logA.applyRetention(2 * 86_400),
    logB.applyRetention(2 * 86_400),
  ]);
  t.is(first.dropped + second.dropped, OLD, 'every old entry dropped, each once');
  t.is(await redis.xlen(a.keys.auditLog()), 3, 'only the recent entries are left');
  t.like(await logA.verify(), { ok: true, entries: 3, checkpoint: { seq: OLD, dropped: OLD } });
  t.deepEqual(await logA.applyRetention(2 * 86_400), { dropped: 0 });
});

test('two instances applying retention at once, in every interleaving: no false alarm, each old entry dropped once', async (t) => {
  const [a, b] = (await deployment(2)) as [Store, Store];
  let round = 0;
  for (const schedule of interleavings({ a: 4, b: 6 })) {
    // A log of its own per round: entries of Jan 1, 2 and 10. It is Jan 10; instance a keeps 8.5
    // days (it drops Jan 1 only: say its clock or setting differs a little), b keeps 2 days.
    const keys = new KeyNames(`${a.keys.prefix}round-${round++}:`, (ns, id) => a.box.hashId(ns, id));
    let clock = new Date('2026-01-01T00:00:00Z');
    const writer = new AuditLog(a.kv, keys, a.box, { now: () => clock });
    await writer.record(event(1));
    clock = new Date('2026-01-02T00:00:00Z');
    await writer.record(event(2));
    clock = new Date('2026-01-10T00:00:00Z');
    await writer.record(event(3));
    const retention = (kv: Kv, days: number) =>
      new AuditLog(kv, keys, a.box).applyRetention(days * 86_400, clock);
    const { results, trace } = await interleave(
      { a: a.kv, b: b.kv },
      { a: (kv) => retention(kv, 8.5), b: (kv) => retention(kv, 2) },
      schedule,
    );
    const what = trace.join(' ');
    const outcomes = Object.values(results).map((r) =>
      r.status === 'fulfilled' ? (r.value as { dropped: number }).dropped : String(r.reason),
    );
    t.deepEqual(
      outcomes.filter((d) => typeof d === 'string'),
      [],
      `${what}: retention failed`,
    );
    t.is(
      (outcomes as number[]).reduce((x, y) => x + y, 0),
      2,
      `${what}: dropped`,
    );
    t.like(await writer.verify(), { ok: true, entries: 1, checkpoint: { seq: 2, dropped: 2 } }, what);
  }
});

test('retention never trims across a broken chain', async (t) => {
  const [store] = (await deployment()) as [Store];
  let clock = new Date('2026-01-01T00:00:00Z');
  const log = new AuditLog(store.kv, store.keys, store.box, { now: () => clock });
  for (let day = 0; day < 4; day++) {
    clock = new Date(Date.UTC(2026, 0, 1 + day));
    await log.record(event(day));
  }
  await redis.xdel(store.keys.auditLog(), (await rawEntries(store))[1]?.[0] as string);
  await t.throwsAsync(log.applyRetention(43_200), { instanceOf: AuditChainError });
  t.is((await rawEntries(store)).length, 3, 'nothing dropped');
  t.like(await log.verify(), { ok: false, first_bad: { seq: 2, reason: 'removed' } });
});

test('the in-process store keeps the same chain', async (t) => {
  const prefix = testPrefix('audit-memory');
  const store = await openStore(
    loadConfig({ REDIS_PREFIX: prefix, LOG_LEVEL: 'silent', ...testSecrets() }),
    new MemoryKv(),
  );
  for (let i = 0; i < 3; i++) await store.audit.record(event(i));
  t.deepEqual(await store.audit.verify(), { ok: true, entries: 3 });
  t.deepEqual(
    (await store.audit.recent(10)).map((e) => e.seq),
    [3, 2, 1],
  );
  await store.close();
});
