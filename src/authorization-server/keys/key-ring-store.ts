import type { ChangeFeed } from '../storage/change-feed.ts';
import type { Kv } from '../storage/kv.ts';
import type { KeyNames } from '../storage/redis-keys.ts';
import type { SealedBox } from '../storage/sealed-box.ts';
import { completeRing, type KeyRing, pruneRing, retireKey, rotateRing, type SigningAlg } from './signing-key-ring.ts';

export interface KeyRingStoreOptions {
  algs: SigningAlg[];
  /** The longest a token can live: retired keys are kept that long. */
  maxTokenLifetimeSeconds: number;
}

/**
 * The ring lives sealed under one key, changed only by compare-and-set, so two admins (or two
 * instances starting at once) can never lose each other's change.
 */
export class KeyRingStore {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #box: SealedBox;
  readonly #feed: ChangeFeed;
  readonly #options: KeyRingStoreOptions;

  constructor(kv: Kv, keys: KeyNames, box: SealedBox, feed: ChangeFeed, options: KeyRingStoreOptions) {
    this.#kv = kv;
    this.#keys = keys;
    this.#box = box;
    this.#feed = feed;
    this.#options = options;
  }

  async read(): Promise<KeyRing | undefined> {
    const sealed = await this.#kv.get(this.#keys.keyRing());
    return sealed ? this.#box.openJson<KeyRing>(sealed, this.#keys.keyRing()) : undefined;
  }

  /** Loads the ring, creating whatever is missing (first start). */
  async ensure(): Promise<KeyRing> {
    return this.#update(async (ring) => completeRing(ring, this.#options.algs, new Date()), { onlyIfChanged: true });
  }

  async rotate(emergency = false): Promise<KeyRing> {
    return this.#update(async (ring) => {
      const now = new Date();
      return rotateRing(pruneRing(ring, this.#options.maxTokenLifetimeSeconds, now), this.#options.algs, now, emergency);
    });
  }

  async retire(kid: string): Promise<KeyRing> {
    return this.#update(async (ring) => retireKey(ring, kid));
  }

  async #update(change: (ring: KeyRing) => Promise<KeyRing>, { onlyIfChanged = false } = {}): Promise<KeyRing> {
    const key = this.#keys.keyRing();
    for (let attempt = 0; attempt < 10; attempt++) {
      const sealed = await this.#kv.get(key);
      const ring = sealed ? this.#box.openJson<KeyRing>(sealed, key) : { keys: [] };
      const next = await change(ring);
      if (onlyIfChanged && sealed && JSON.stringify(next) === JSON.stringify(ring) && !this.#box.isStale(sealed)) {
        return ring;
      }
      if (await this.#kv.compareAndSet(key, sealed, this.#box.sealJson(next, key))) {
        await this.#feed.announce();
        return next;
      }
    }
    throw new Error('the key ring is changing too often to update it; try again');
  }
}
