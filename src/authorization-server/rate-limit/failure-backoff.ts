import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Store } from '../storage/store.ts';
import { createLimiter } from './limiter.ts';
import type { BackoffPolicy } from './limits.ts';

/**
 * Counts failures per key and, past the free ones, holds the key back for a delay that doubles
 * with each further failure up to a ceiling. Two counters: the failures themselves, and the hold
 * (a blocked key) that expires by itself.
 */
export class FailureBackoff {
  readonly #policy: BackoffPolicy;
  readonly #failures: RateLimiterAbstract;
  readonly #hold: RateLimiterAbstract;

  constructor(store: Store, policy: BackoffPolicy) {
    this.#policy = policy;
    this.#failures = createLimiter(store, {
      name: `${policy.name}:failures`,
      points: Number.MAX_SAFE_INTEGER,
      durationSeconds: policy.memorySeconds,
    });
    this.#hold = createLimiter(store, { name: `${policy.name}:hold`, points: 1, durationSeconds: 1 });
  }

  /** Seconds until the key may try again; 0 when it may try now. */
  async retryAfter(key: string): Promise<number> {
    const hold = await this.#hold.get(key);
    if (!hold || hold.consumedPoints <= 1 || hold.msBeforeNext <= 0) return 0;
    return Math.max(1, Math.ceil(hold.msBeforeNext / 1000));
  }

  /** Records a failure; returns the delay now imposed, in seconds (0 while failures are free). */
  async fail(key: string): Promise<number> {
    const { consumedPoints } = await this.#failures.penalty(key, 1);
    const delay = backoffDelay(this.#policy, consumedPoints);
    if (delay > 0) await this.#hold.block(key, delay);
    return delay;
  }

  async reset(key: string): Promise<void> {
    await Promise.all([this.#failures.delete(key), this.#hold.delete(key)]);
  }
}

/** The delay after the nth failure: none for the free ones, then first, 2×first, 4×first... capped. */
export function backoffDelay(policy: BackoffPolicy, failures: number): number {
  const over = failures - policy.freeFailures;
  if (over <= 0) return 0;
  return Math.min(policy.maxDelaySeconds, policy.firstDelaySeconds * 2 ** Math.min(over - 1, 30));
}
