import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { StoreUnavailableError } from '../../shared/errors.ts';
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
    return storeFailuresUnavailable(
      new RateLimiterRedis({
        ...options,
        storeClient: client,
        // Fail fast with an error (a 503 upstream) rather than wait on a dead connection, and never
        // fall back to a per-process budget that would multiply the limit by the instance count.
        rejectIfRedisNotReady: true,
        insuranceLimiter: undefined,
      }),
    );
  }
  return new RateLimiterMemory(options);
}

/**
 * The limiter with its store failures as StoreUnavailableError (503 with Retry-After on every
 * surface). A spent budget still rejects with the limiter's own result, which is not an Error.
 */
function storeFailuresUnavailable<T extends object>(limiter: T): T {
  return new Proxy(limiter, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        return result instanceof Promise
          ? result.catch((error: unknown) => {
              throw error instanceof Error ? new StoreUnavailableError(error) : error;
            })
          : result;
      };
    },
  });
}
