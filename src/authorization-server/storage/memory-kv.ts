import { EventEmitter } from 'node:events';
import {
  type Kv,
  type KvWrite,
  type LogEntry,
  putRecordInOpenSetStepwise,
  type ReplaceResult,
  type StoredRecord,
} from './kv.ts';

/** The member that marks a set closed (as in redis-kv.ts). */
const CLOSED = '!closed';

/** An index ordered by expiry: member → epoch seconds. */
class ExpiryIndex {
  readonly scores = new Map<string, number>();
}

interface Entry {
  value: string | Set<string> | Map<string, string> | StoredRecord | ExpiryIndex;
  expiresAt?: number;
}

/**
 * The in-process store used when REDIS_URL is unset (development and demos only: nothing is shared
 * between processes and everything is lost on exit). Same semantics as the Redis store.
 */
export class MemoryKv implements Kv {
  readonly kind = 'memory' as const;
  readonly ready = true;
  readonly limiterClient = undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #bus = new EventEmitter();
  readonly #logs = new Map<string, LogEntry[]>();
  #lastLogId = { ms: 0, seq: 0 };

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry?.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #put(key: string, value: Entry['value'], ttlSeconds?: number): void {
    this.#entries.set(key, { value, expiresAt: ttlSeconds ? Date.now() + ttlSeconds * 1000 : undefined });
  }

  #map(key: string, create: boolean): Map<string, string> | undefined {
    const entry = this.#live(key);
    if (entry?.value instanceof Map) return entry.value;
    if (!create) return undefined;
    const map = new Map<string, string>();
    this.#put(key, map);
    return map;
  }

  async writeTogether(writes: readonly KvWrite[]): Promise<boolean> {
    // No await before the writes: the checks and the writes are one step, as on Redis.
    for (const write of writes) {
      if (write.op === 'takeBelow' && this.#count(write.key) >= write.limit) return false;
    }
    for (const write of writes) {
      if (write.op === 'putRecord') this.#put(write.key, { sealed: write.sealed }, write.ttlSeconds);
      else if (write.op === 'indexByExpiry') this.#indexByExpiry(write.key, write.member, write.expiresAt);
      else this.#countUp(write.key, write.windowMs);
    }
    return true;
  }

  #count(key: string): number {
    const entry = this.#live(key);
    return typeof entry?.value === 'string' ? Number(entry.value) : 0;
  }

  async putRecordInOpenSet(
    setKey: string,
    recordKey: string,
    sealed: string,
    ttlSeconds?: number,
    setTtlSeconds?: number,
  ): Promise<boolean> {
    return putRecordInOpenSetStepwise(this, setKey, recordKey, sealed, ttlSeconds, setTtlSeconds);
  }

  async putRecord(key: string, sealed: string, ttlSeconds?: number): Promise<void> {
    this.#put(key, { sealed }, ttlSeconds);
  }

  async getRecord(key: string): Promise<StoredRecord | undefined> {
    const value = this.#live(key)?.value as StoredRecord | undefined;
    return value && typeof value === 'object' && 'sealed' in value ? { ...value } : undefined;
  }

  async replaceRecord(key: string, expected: string, next: string): Promise<ReplaceResult> {
    const value = this.#live(key)?.value as StoredRecord | undefined;
    if (!value || !('sealed' in value)) return 'missing';
    if (value.sealed !== expected) return 'changed';
    value.sealed = next;
    return 'replaced';
  }

  async get(key: string): Promise<string | undefined> {
    const value = this.#live(key)?.value;
    return typeof value === 'string' ? value : undefined;
  }

  async set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    this.#put(key, value, ttlSeconds);
  }

  async del(key: string): Promise<void> {
    this.#entries.delete(key);
  }

  async compareAndSet(key: string, expected: string | undefined, value: string): Promise<boolean> {
    if ((await this.get(key)) !== expected) return false;
    this.#put(key, value);
    return true;
  }

  async incr(key: string): Promise<number> {
    const next = Number((await this.get(key)) ?? 0) + 1;
    this.#put(key, String(next));
    return next;
  }

  async addToSet(key: string, member: string, ttlSeconds?: number): Promise<void> {
    const entry = this.#live(key);
    const set = entry?.value instanceof Set ? entry.value : new Set<string>();
    set.add(member);
    const wanted = ttlSeconds ? Date.now() + ttlSeconds * 1000 : undefined;
    const expiresAt =
      entry?.value instanceof Set && entry.expiresAt !== undefined && wanted !== undefined
        ? Math.max(entry.expiresAt, wanted)
        : entry?.value instanceof Set && entry.expiresAt === undefined
          ? undefined
          : wanted;
    this.#entries.set(key, { value: set, expiresAt });
  }

  async removeFromSet(key: string, member: string): Promise<void> {
    const value = this.#live(key)?.value;
    if (value instanceof Set) value.delete(member);
  }

  async setMembers(key: string): Promise<string[]> {
    const value = this.#live(key)?.value;
    return value instanceof Set ? [...value].filter((member) => member !== CLOSED) : [];
  }

  async addToOpenSet(key: string, member: string, ttlSeconds?: number): Promise<boolean> {
    if (await this.isSetClosed(key)) return false;
    await this.addToSet(key, member, ttlSeconds);
    return true;
  }

  async closeSet(key: string, ttlSeconds: number): Promise<string[]> {
    const members = await this.setMembers(key);
    this.#put(key, new Set([CLOSED]), ttlSeconds);
    return members;
  }

  async isSetClosed(key: string): Promise<boolean> {
    const value = this.#live(key)?.value;
    return value instanceof Set && value.has(CLOSED);
  }

  async readCounters(keys: string[]): Promise<number[]> {
    return keys.map((key) => {
      const entry = this.#live(key);
      return typeof entry?.value === 'string' ? Number(entry.value) : 0;
    });
  }

  async counterMsLeft(key: string): Promise<number> {
    const expiresAt = this.#live(key)?.expiresAt;
    return expiresAt ? Math.max(0, expiresAt - Date.now()) : 0;
  }

  async countUp(key: string, windowMs: number): Promise<void> {
    this.#countUp(key, windowMs);
  }

  #countUp(key: string, windowMs: number): void {
    const entry = this.#live(key);
    if (typeof entry?.value === 'string' && entry.expiresAt) entry.value = String(Number(entry.value) + 1);
    else this.#entries.set(key, { value: '1', expiresAt: Date.now() + windowMs });
  }

  async indexByExpiry(key: string, member: string, expiresAt: number): Promise<void> {
    this.#indexByExpiry(key, member, expiresAt);
  }

  #indexByExpiry(key: string, member: string, expiresAt: number): void {
    const now = Math.floor(Date.now() / 1000);
    const entry = this.#live(key);
    const index = entry?.value instanceof ExpiryIndex ? entry.value : new ExpiryIndex();
    for (const [m, at] of index.scores) if (at <= now) index.scores.delete(m);
    index.scores.set(member, expiresAt);
    const newest = Math.max(...index.scores.values());
    this.#entries.set(key, { value: index, expiresAt: newest * 1000 });
  }

  async popFromExpiryIndex(key: string, count: number): Promise<string[]> {
    const value = this.#live(key)?.value;
    if (!(value instanceof ExpiryIndex)) return [];
    const soonest = [...value.scores].sort((x, y) => x[1] - y[1]).slice(0, count);
    for (const [member] of soonest) value.scores.delete(member);
    return soonest.map(([member]) => member);
  }

  async expiryIndexSize(key: string): Promise<number> {
    const value = this.#live(key)?.value;
    return value instanceof ExpiryIndex ? value.scores.size : 0;
  }

  async hashGet(key: string, field: string): Promise<string | undefined> {
    return this.#map(key, false)?.get(field);
  }

  async hashSet(key: string, field: string, value: string): Promise<void> {
    this.#map(key, true)?.set(field, value);
  }

  async hashSetIfAbsent(key: string, field: string, value: string): Promise<boolean> {
    const map = this.#map(key, true) as Map<string, string>;
    if (map.has(field)) return false;
    map.set(field, value);
    return true;
  }

  async hashCompareAndSet(
    key: string,
    field: string,
    expected: string | undefined,
    value: string,
  ): Promise<boolean> {
    const map = this.#map(key, true) as Map<string, string>;
    if (map.get(field) !== expected) return false;
    map.set(field, value);
    return true;
  }

  async hashDelete(key: string, field: string): Promise<boolean> {
    return this.#map(key, false)?.delete(field) ?? false;
  }

  async hashGetAll(key: string): Promise<Record<string, string>> {
    return Object.fromEntries(this.#map(key, false) ?? []);
  }

  /** Stream-like ids (ms-seq), increasing even within one millisecond. */
  #nextLogId(): string {
    const ms = Date.now();
    this.#lastLogId =
      ms > this.#lastLogId.ms ? { ms, seq: 0 } : { ms: this.#lastLogId.ms, seq: this.#lastLogId.seq + 1 };
    return `${this.#lastLogId.ms}-${this.#lastLogId.seq}`;
  }

  async appendToLog(
    logKey: string,
    headKey: string,
    expectedHead: string | undefined,
    newHead: string,
    values: string[],
  ): Promise<string[] | undefined> {
    if ((await this.get(headKey)) !== expectedHead) return undefined;
    const log = this.#logs.get(logKey) ?? [];
    this.#logs.set(logKey, log);
    const ids = values.map((value) => {
      const id = this.#nextLogId();
      log.push({ id, value });
      return id;
    });
    this.#put(headKey, newHead);
    return ids;
  }

  async readLog(logKey: string, afterId: string | undefined, count: number): Promise<LogEntry[]> {
    const log = this.#logs.get(logKey) ?? [];
    const start = afterId === undefined ? 0 : log.findIndex((e) => compareIds(e.id, afterId) > 0);
    return start < 0 ? [] : log.slice(start, start + count).map((e) => ({ ...e }));
  }

  async readLogNewest(logKey: string, count: number): Promise<LogEntry[]> {
    return (this.#logs.get(logKey) ?? [])
      .slice(-count)
      .reverse()
      .map((e) => ({ ...e }));
  }

  async trimLog(
    logKey: string,
    checkpointKey: string,
    expected: string | undefined,
    checkpoint: string,
    throughId: string,
  ): Promise<boolean> {
    if ((await this.get(checkpointKey)) !== expected) return false;
    this.#put(checkpointKey, checkpoint);
    this.#logs.set(
      logKey,
      (this.#logs.get(logKey) ?? []).filter((e) => compareIds(e.id, throughId) > 0),
    );
    return true;
  }

  async publish(channel: string, message: string): Promise<void> {
    this.#bus.emit(channel, message);
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    this.#bus.on(channel, onMessage);
    return async () => {
      this.#bus.off(channel, onMessage);
    };
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.#bus.removeAllListeners();
  }
}

function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}
