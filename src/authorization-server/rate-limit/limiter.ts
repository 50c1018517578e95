import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import type { Store } from '../storage/store.ts';

export interface LimiterOptions {
  /** Key namespace under the store's `rate-limit:` prefix. */
  name: string;
  points: number;
  durationSeconds: number;
}

/**
 * A rate-limiter-flexible limiter on the store's backend: Redis when the store is Redis (one
 * budget shared by every instance), process memory for the in-process development store.
 */
export function createLimiter(
  store: Store,
  { name, points, durationSeconds }: LimiterOptions,
): RateLimiterAbstract {
  const options = { keyPrefix: store.keys.rateLimit(name), points, duration: durationSeconds };
  const client = store.kv.limiterClient;
  if (client) {
    return new RateLimiterRedis({
      ...options,
      storeClient: client,
      // Fail fast with an error (a 503 upstream) rather than wait on a dead connection, and never
      // fall back to a per-process budget that would multiply the limit by the instance count.
      rejectIfRedisNotReady: true,
      insuranceLimiter: undefined,
    });
  }
  return new RateLimiterMemory(options);
}
