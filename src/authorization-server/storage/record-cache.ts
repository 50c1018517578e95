import type { Kv } from './kv.ts';

/** How stale a cached record may be on an instance that missed its change message. */
export const RECORD_CACHE_MAX_AGE_MS = 5000;
const MAX_ENTRIES = 10_000;

interface Entry<T> {
  value: T;
  loadedAt: number;
}

/**
 * An in-process cache of records that every token request reads and that rarely change (clients,
 * APIs), so the hot path does not go to Redis for them. A change is announced on a pub/sub channel
 * and drops the record at once on the instance that made it and, through the message, everywhere
 * else. When the subscription's connection comes back after a loss, everything cached is dropped
 * (messages published meanwhile were missed); and an entry is never older than
 * RECORD_CACHE_MAX_AGE_MS, so an instance still learns a change within that time whatever happens.
 * Reads that decide a write (`current` in the stores) never come from here. Only records that exist
 * are cached, so made-up ids cannot fill it, and it holds at most MAX_ENTRIES.
 *
 * A process caches only once it listens for changes (`listen`): the admin CLI, which never does,
 * always reads the store.
 */
export class RecordCache<T> {
  readonly #kv: Kv;
  readonly #channel: string;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry<T>>();
  readonly #loading = new Map<string, Promise<T | undefined>>();
  /** Bumped by every change: a load that began before a change must not cache what it read. */
  #generation = 0;
  #listening = false;

  constructor(kv: Kv, channel: string, { maxAgeMs = RECORD_CACHE_MAX_AGE_MS, now = Date.now } = {}) {
    this.#kv = kv;
    this.#channel = channel;
    this.#maxAgeMs = maxAgeMs;
    this.#now = now;
  }

  /** The record `id`, from the cache when fresh, else from `load` (concurrent misses share one load). */
  async get(id: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    if (!this.#listening) return load();
    const entry = this.#entries.get(id);
    if (entry && this.#now() - entry.loadedAt < this.#maxAgeMs) return entry.value;
    const pending = this.#loading.get(id);
    if (pending) return pending;
    const generation = this.#generation;
    const loadedAt = this.#now();
    const done = () => {
      if (this.#loading.get(id) === loading) this.#loading.delete(id);
    };
    const loading: Promise<T | undefined> = load().then(
      (value) => {
        done();
        if (value !== undefined && generation === this.#generation) this.#store(id, value, loadedAt);
        return value;
      },
      (error: unknown) => {
        done();
        throw error;
      },
    );
    this.#loading.set(id, loading);
    return loading;
  }

  /** `id` changed in the store: forget it here at once, and tell every other instance. */
  async changed(id: string): Promise<void> {
    this.#forget(id);
    await this.#kv.publish(this.#channel, id);
  }

  /** Starts caching, and forgetting what other instances announce; returns the stop function. */
  async listen(): Promise<() => Promise<void>> {
    const unsubscribe = await this.#kv.subscribe(
      this.#channel,
      (id) => this.#forget(id),
      // Changes announced while the connection was down were missed: trust nothing cached.
      () => this.#forgetAll(),
    );
    this.#listening = true;
    return async () => {
      this.#listening = false;
      this.#entries.clear();
      await unsubscribe();
    };
  }

  #forgetAll(): void {
    this.#generation++;
    this.#entries.clear();
    this.#loading.clear();
  }

  #forget(id: string): void {
    this.#generation++;
    this.#entries.delete(id);
    // A load in flight read the old record: the next reader loads again.
    this.#loading.delete(id);
  }

  #store(id: string, value: T, loadedAt: number): void {
    if (this.#entries.size >= MAX_ENTRIES) {
      // Oldest first (insertion order); a full cache is a sign of many clients, not of an attack,
      // since only existing records are cached.
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(id, { value: deepFreeze(value), loadedAt });
  }
}

/** Cached records are shared by every request: nobody may change one in place. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}
