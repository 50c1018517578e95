import type { RedisConnection } from '../../shared/redis.ts';

/**
 * The few storage operations the product needs, implemented by Redis (redis-kv.ts) and by an
 * in-process store (memory-kv.ts). Every operation touches one key, or (the audit trail's log
 * operations) keys of one hash slot, so the layout works on Redis Cluster; operations that must be
 * atomic are atomic there.
 */
export interface StoredRecord {
  sealed: string;
  /**
   * Epoch seconds of a consumed marker written beside the sealed value by earlier versions. Read
   * only so that a record spent before an upgrade stays spent; consumption now lives inside the
   * sealed value (oidc-adapter.ts), where it cannot be deleted or forged.
   */
  legacyConsumed?: number;
}

export type ReplaceResult = 'replaced' | 'changed' | 'missing';

/** One entry of an append-only log (a Redis stream): its id orders it. */
export interface LogEntry {
  id: string;
  value: string;
}

export interface Kv {
  readonly kind: 'redis' | 'memory';
  /** False while the backend is unreachable: callers answer 503 at once instead of waiting. */
  readonly ready: boolean;
  /** The Redis connection rate limiters share (one budget across instances); none in memory. */
  readonly limiterClient: RedisConnection | undefined;
  /** Replaces a record (value + consumed marker) and sets its time to live in seconds. */
  putRecord(key: string, sealed: string, ttlSeconds?: number): Promise<void>;
  /**
   * Several of the writes below at once: on one Redis (or a Sentinel's primary) one script call,
   * so one command and one round trip; on Cluster, where the keys live in different slots, each
   * write on its own, auto-pipelined. A `takeBelow` whose counter has reached its limit stops the
   * whole call before anything is written: false then. Otherwise each write stands by itself.
   */
  writeTogether(writes: readonly KvWrite[]): Promise<boolean>;
  /**
   * Writes a record and adds its key to a set, unless the set is closed (`closeSet`): false then,
   * and no record is left, whatever the interleaving with a `closeSet` on another instance. One
   * script on one Redis; on Cluster (two slots) indexed first, written, then checked again.
   */
  putRecordInOpenSet(
    setKey: string,
    recordKey: string,
    sealed: string,
    ttlSeconds?: number,
    setTtlSeconds?: number,
  ): Promise<boolean>;
  getRecord(key: string): Promise<StoredRecord | undefined>;
  /**
   * Swaps a record's sealed value for `next` (keeping its time to live) only while it still holds
   * `expected`: of two callers swapping from one value, exactly one sees 'replaced'.
   */
  replaceRecord(key: string, expected: string, next: string): Promise<ReplaceResult>;

  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlSeconds?: number): Promise<void>;
  del(key: string): Promise<void>;
  /** Sets the value only when the key holds `expected` (undefined: absent); true when it did. */
  compareAndSet(key: string, expected: string | undefined, value: string): Promise<boolean>;
  incr(key: string): Promise<number>;

  /** Adds to a set and makes sure the set lives at least ttlSeconds (never shortens it). */
  addToSet(key: string, member: string, ttlSeconds?: number): Promise<void>;
  removeFromSet(key: string, member: string): Promise<void>;
  /** addToSet, unless the set has been closed: false then, and nothing is added. */
  addToOpenSet(key: string, member: string, ttlSeconds?: number): Promise<boolean>;
  /**
   * Closes the set for good (later addToOpenSet calls fail), empties it and returns what it held;
   * the closed set lives at least ttlSeconds more.
   */
  closeSet(key: string, ttlSeconds: number): Promise<string[]>;
  isSetClosed(key: string): Promise<boolean>;
  setMembers(key: string): Promise<string[]>;

  /**
   * Fixed-window counters: each key's count (0 when absent), in one round trip (one MGET, or on
   * Cluster single-key reads issued together). Rejects at once when the store is not ready.
   */
  readCounters(keys: string[]): Promise<number[]>;
  /** The milliseconds left in a counter's window (0 when it is absent), for Retry-After. */
  counterMsLeft(key: string): Promise<number>;
  /** Adds one to a fixed-window counter, starting a window of `windowMs` when the key is new. */
  countUp(key: string, windowMs: number): Promise<void>;

  /**
   * Adds a member to an index ordered by expiry (epoch seconds), dropping the members already
   * expired, so the index holds live entries only; the index lives as long as its newest member.
   */
  indexByExpiry(key: string, member: string, expiresAt: number): Promise<void>;
  /** Takes out and returns up to `count` members of an expiry index, soonest expiry first. */
  popFromExpiryIndex(key: string, count: number): Promise<string[]>;
  /** How many members an expiry index holds (expired ones not trimmed yet included). */
  expiryIndexSize(key: string): Promise<number>;

  hashGet(key: string, field: string): Promise<string | undefined>;
  hashSet(key: string, field: string, value: string): Promise<void>;
  /** Sets the field only when absent; true when it did. */
  hashSetIfAbsent(key: string, field: string, value: string): Promise<boolean>;
  /** Sets the field only while it holds `expected` (undefined: absent); true when it did. */
  hashCompareAndSet(
    key: string,
    field: string,
    expected: string | undefined,
    value: string,
  ): Promise<boolean>;
  hashDelete(key: string, field: string): Promise<boolean>;
  hashGetAll(key: string): Promise<Record<string, string>>;

  /**
   * Appends values to a log when its head record (a key in the same hash slot) still holds
   * `expectedHead` (undefined: absent), and sets the head to `newHead`, atomically. Returns the new
   * entries' ids, or undefined when another writer moved the head first.
   */
  appendToLog(
    logKey: string,
    headKey: string,
    expectedHead: string | undefined,
    newHead: string,
    values: string[],
  ): Promise<string[] | undefined>;
  /** Up to `count` entries, oldest first, after `afterId` (from the start when undefined). */
  readLog(logKey: string, afterId: string | undefined, count: number): Promise<LogEntry[]>;
  /** Up to `count` entries, newest first. */
  readLogNewest(logKey: string, count: number): Promise<LogEntry[]>;
  /**
   * Drops the entries up to and including `throughId` and writes `checkpoint` (a key in the same
   * hash slot) when it still holds `expected`, atomically; false when another writer got there first.
   */
  trimLog(
    logKey: string,
    checkpointKey: string,
    expected: string | undefined,
    checkpoint: string,
    throughId: string,
  ): Promise<boolean>;

  publish(channel: string, message: string): Promise<void>;
  /** Calls onMessage for each message on the channel until the returned function is called. */
  /**
   * `onReconnect` is called each time the subscription's connection is ready again after it was
   * lost: messages published meanwhile were not received.
   */
  subscribe(
    channel: string,
    onMessage: (message: string) => void,
    onReconnect?: () => void,
  ): Promise<() => Promise<void>>;

  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A write `Kv.writeTogether` can combine: the same as putRecord, indexByExpiry and countUp. */
export type KvWrite =
  | { op: 'putRecord'; key: string; sealed: string; ttlSeconds?: number | undefined }
  | { op: 'indexByExpiry'; key: string; member: string; expiresAt: number }
  | { op: 'countUp'; key: string; windowMs: number }
  /** countUp, only while the counter is below `limit`. */
  | { op: 'takeBelow'; key: string; limit: number; windowMs: number };

type OpenSetSteps = Pick<Kv, 'addToOpenSet' | 'putRecord' | 'isSetClosed' | 'del'>;

/**
 * Kv.putRecordInOpenSet in separate steps, for stores that cannot make it one (Cluster, where the
 * two keys live in different slots; the in-process store, where another caller may run between
 * awaits): indexed before it is written (or refused, the set being closed), and deleted again if
 * the set was closed meanwhile, so a closeSet wins at any interleaving.
 */
export async function putRecordInOpenSetStepwise(
  kv: OpenSetSteps,
  setKey: string,
  recordKey: string,
  sealed: string,
  ttlSeconds?: number,
  setTtlSeconds?: number,
): Promise<boolean> {
  if (!(await kv.addToOpenSet(setKey, recordKey, setTtlSeconds))) return false;
  await kv.putRecord(recordKey, sealed, ttlSeconds);
  if (await kv.isSetClosed(setKey)) {
    await kv.del(recordKey);
    return false;
  }
  return true;
}
