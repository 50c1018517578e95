import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { instrumentRedis } from './metrics.ts';

/**
 * Redis connections for every process (auth server, CLI, resource server): bounded waits, endless
 * reconnection, one Redis or a Redis Cluster.
 */

/** A timer that never keeps the process alive, for bounding waits on a connection that may be dead. */
export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Bounded waits: with Redis down, callers get an error within this time instead of hanging. */
export const REDIS_COMMAND_TIMEOUT_MS = 1500;

export function redisOptions(extra: RedisOptions = {}): RedisOptions {
  return {
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    // Keep reconnecting forever, at most once a second: service resumes by itself when Redis is back.
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    lazyConnect: false,
    ...extra,
  };
}

export type RedisConnection = Redis | Cluster;

/** Connects to one Redis, or with `cluster` to a Redis Cluster that `url` is a seed node of. */
export function connectRedis(
  url: string,
  { cluster = false, ...options }: RedisOptions & { cluster?: boolean } = {},
): RedisConnection {
  const connection = cluster
    ? (() => {
        const seed = new URL(url);
        return new Cluster([{ host: seed.hostname, port: Number(seed.port || 6379) }], {
          redisOptions: {
            ...redisOptions(options),
            username: decodeURIComponent(seed.username) || undefined,
            password: decodeURIComponent(seed.password) || undefined,
            ...(seed.protocol === 'rediss:' ? { tls: {} } : {}),
          },
          clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 1000),
        });
      })()
    : new Redis(url, redisOptions(options));
  // Errors surface on the commands that fail; the connection's own error events are expected
  // while Redis is away and would otherwise crash the process as unhandled.
  connection.on('error', () => {});
  return instrumentRedis(connection);
}

const COMPARE_AND_SET = `
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0`;

/** Sets `key` to `value` only while it holds `expected` (undefined: absent), atomically; true when it did. */
export async function compareAndSet(
  redis: RedisConnection,
  key: string,
  expected: string | undefined,
  value: string,
): Promise<boolean> {
  const done = await redis.eval(
    COMPARE_AND_SET,
    1,
    key,
    expected === undefined ? '' : '1',
    expected ?? '',
    value,
  );
  return Number(done) === 1;
}
