import { EventEmitter } from 'node:events';
import type { Kv, ReplaceResult, StoredRecord } from './kv.ts';

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

  async readCounters(keys: string[]): Promise<{ count: number; msLeft: number }[]> {
    return keys.map((key) => {
      const entry = this.#live(key);
      const count = typeof entry?.value === 'string' ? Number(entry.value) : 0;
      return { count, msLeft: count && entry?.expiresAt ? entry.expiresAt - Date.now() : 0 };
    });
  }

  async countUp(key: string, windowMs: number): Promise<void> {
    const entry = this.#live(key);
    if (typeof entry?.value === 'string' && entry.expiresAt) entry.value = String(Number(entry.value) + 1);
    else this.#entries.set(key, { value: '1', expiresAt: Date.now() + windowMs });
  }

  async indexByExpiry(key: string, member: string, expiresAt: number): Promise<void> {
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

  async hashDelete(key: string, field: string): Promise<boolean> {
    return this.#map(key, false)?.delete(field) ?? false;
  }

  async hashGetAll(key: string): Promise<Record<string, string>> {
    return Object.fromEntries(this.#map(key, false) ?? []);
  }

  async pushCapped(key: string, value: string, max: number): Promise<void> {
    const current = (await this.get(key)) ?? '[]';
    const list = [value, ...(JSON.parse(current) as string[])].slice(0, max);
    this.#put(key, JSON.stringify(list));
  }

  async listRange(key: string, count: number): Promise<string[]> {
    return (JSON.parse((await this.get(key)) ?? '[]') as string[]).slice(0, count);
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
