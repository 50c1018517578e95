import type { SealedBox } from '../../shared/sealing/index.ts';
import {
  completeRing,
  familiesOf,
  type KeyRing,
  nextKeysReadyIn,
  pruneRing,
  retireKey,
  rotateRing,
  type SigningAlg,
} from '../keys/signing-key-ring.ts';
import type { ChangeFeed } from './change-feed.ts';
import type { JwtTokenStore } from './jwt-token-store.ts';
import type { Kv } from './kv.ts';
import { resealValueIfStale } from './lazy-reseal.ts';
import type { KeyNames } from './redis-keys.ts';

export interface KeyRingStoreOptions {
  /** The algorithm families in use (ID tokens, the default access-token algorithm, each API's). */
  algs: () => Promise<SigningAlg[]>;
  /** The longest a token can live: retired keys are kept that long. */
  maxTokenLifetimeSeconds: number;
  /** The clock rotations and pruning read; tests pass their own instead of sleeping. */
  now?: () => Date;
  /** How a rotation waits for its next keys to be known everywhere (NEXT_KEY_LEAD_MS); a timer by default. */
  sleep?: (ms: number) => Promise<void>;
  /** The JWT access token registry, which an emergency rotation revokes from. */
  tokens: JwtTokenStore;
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
  readonly #now: () => Date;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(kv: Kv, keys: KeyNames, box: SealedBox, feed: ChangeFeed, options: KeyRingStoreOptions) {
    this.#kv = kv;
    this.#keys = keys;
    this.#box = box;
    this.#feed = feed;
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async read(): Promise<KeyRing | undefined> {
    const key = this.#keys.keyRing();
    const sealed = await this.#kv.get(key);
    if (!sealed) return undefined;
    const ring = this.#box.openJson<KeyRing>(sealed, key);
    resealValueIfStale(this.#kv, this.#box, key, sealed);
    return ring;
  }

  /**
   * Loads the ring, creating whatever family in use (or in `also`) is missing: at first start, and
   * before an API names an algorithm no family has yet.
   */
  async ensure(also: SigningAlg[] = []): Promise<KeyRing> {
    const algs = [...new Set([...(await this.#options.algs()), ...also])];
    return this.#update(async (ring) => completeRing(ring, algs, this.#now()), { onlyIfChanged: true });
  }

  /** Every family is rotated together: those in use and any the ring still holds. */
  async #rotatedFamilies(ring: KeyRing): Promise<SigningAlg[]> {
    return [...new Set([...(await this.#options.algs()), ...familiesOf(ring)])];
  }

  /**
   * next → current → retired. An emergency rotation (a leaked key) drops the old current keys from
   * the JWKS at once and revokes the access tokens they signed (their registry records go, so
   * introspection says inactive); ID tokens are not stored and can only stop verifying.
   */
  async rotate(emergency = false): Promise<KeyRing> {
    if (!emergency) {
      // A rotation right after another waits until the keys it promotes are known everywhere.
      const current = await this.read();
      const wait = current ? nextKeysReadyIn(current, await this.#rotatedFamilies(current), this.#now()) : 0;
      if (wait > 0) await this.#sleep(wait);
    }
    let dropped: string[] = [];
    const ring = await this.#update(async (current) => {
      const now = this.#now();
      dropped = current.keys.filter((k) => k.status === 'current').map((k) => k.kid);
      return rotateRing(
        pruneRing(current, this.#options.maxTokenLifetimeSeconds, now),
        await this.#rotatedFamilies(current),
        now,
        emergency,
      );
    });
    if (emergency) await Promise.all(dropped.map((kid) => this.#options.tokens.revokeSignedBy(kid)));
    return ring;
  }

  /** Rotates when the current keys have been active for `intervalSeconds`; one instance wins the race. */
  async rotateIfDue(intervalSeconds: number): Promise<boolean> {
    let rotated = false;
    await this.#update(
      async (ring) => {
        const now = this.#now();
        const activated = ring.keys
          .filter((k) => k.status === 'current')
          .map((k) => Date.parse(k.activated_at ?? k.created_at));
        const families = await this.#rotatedFamilies(ring);
        rotated =
          activated.length > 0 &&
          Math.min(...activated) + intervalSeconds * 1000 <= now.getTime() &&
          // Not yet known everywhere: the next check rotates.
          nextKeysReadyIn(ring, families, now) === 0;
        if (!rotated) return ring;
        return rotateRing(pruneRing(ring, this.#options.maxTokenLifetimeSeconds, now), families, now);
      },
      { onlyIfChanged: true },
    );
    return rotated;
  }

  async retire(kid: string): Promise<KeyRing> {
    return this.#update(async (ring) => retireKey(ring, kid));
  }

  async #update(
    change: (ring: KeyRing) => Promise<KeyRing>,
    { onlyIfChanged = false } = {},
  ): Promise<KeyRing> {
    const key = this.#keys.keyRing();
    for (let attempt = 0; attempt < 10; attempt++) {
      const sealed = await this.#kv.get(key);
      const ring = sealed ? this.#box.openJson<KeyRing>(sealed, key) : { keys: [] };
      const next = await change(ring);
      if (onlyIfChanged && sealed && JSON.stringify(next) === JSON.stringify(ring)) {
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
