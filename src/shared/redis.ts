import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { AppError } from './errors.ts';
import { instrumentRedis } from './metrics.ts';

/**
 * Redis connections for every process (auth server, CLI, resource server): bounded waits, endless
 * reconnection, one Redis, a Redis Cluster, or a primary found through Redis Sentinel.
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

/** Sentinels that name the primary (REDIS_SENTINELS, REDIS_SENTINEL_NAME). */
export interface SentinelTarget {
  readonly sentinels: readonly { host: string; port: number }[];
  readonly name: string;
}

export interface ConnectOptions extends RedisOptions {
  /** `url` is a seed node of a Redis Cluster. */
  cluster?: boolean;
  /** Find the primary through these sentinels; `url` then gives only credentials, TLS and db. */
  sentinel?: SentinelTarget | undefined;
}

/** After a failover the old primary may come back as a replica: a write there means "reconnect". */
const reconnectOnReadOnly = (error: Error) => (error.message.startsWith('READONLY') ? 2 : false);

/** Connects to one Redis, a Redis Cluster (`cluster`) or the primary the sentinels name (`sentinel`). */
export function connectRedis(
  url: string,
  { cluster = false, sentinel, ...options }: ConnectOptions = {},
): RedisConnection {
  const parsed = new URL(url);
  const credentials = {
    username: decodeURIComponent(parsed.username) || undefined,
    password: decodeURIComponent(parsed.password) || undefined,
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  let connection: RedisConnection;
  if (cluster) {
    // WHATWG URL keeps an IPv6 literal's brackets ("[::1]"); the socket needs the bare address.
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    connection = new Cluster([{ host, port: Number(parsed.port || 6379) }], {
      redisOptions: { ...redisOptions(options), ...credentials },
      clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    });
  } else if (sentinel) {
    connection = new Redis({
      ...redisOptions({ reconnectOnError: reconnectOnReadOnly, ...options }),
      ...credentials,
      ...(credentials.tls ? { enableTLSForSentinelMode: true } : {}),
      db: Number(parsed.pathname.slice(1) || 0),
      sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
      name: sentinel.name,
      // No failoverDetector: with ioredis 6 it can leave the connection closed for good after a
      // failover. A dead primary closes the connection anyway, and reconnecting asks the sentinels.
      sentinelRetryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    });
  } else {
    connection = new Redis(url, redisOptions({ reconnectOnError: reconnectOnReadOnly, ...options }));
  }
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

/** How long the admin CLI waits for Redis before saying it cannot reach it. */
export const REDIS_PROBE_TIMEOUT_MS = 3000;

/** Where a connection goes, without credentials, for messages. */
export function describeRedisTarget(url: string, sentinel?: SentinelTarget): string {
  const parsed = new URL(url);
  if (sentinel)
    return `primary "${sentinel.name}" of sentinels ${sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
  return `${parsed.protocol}//${parsed.host}`;
}

/**
 * Connects once, within `timeoutMs`, and answers PING; otherwise throws an AppError with one line
 * naming where it tried and why it failed (refused, TLS, authentication). For the CLI, where
 * reconnecting forever helps nobody. The servers keep reconnecting instead.
 */
export async function probeRedis(
  url: string,
  { sentinel, timeoutMs = REDIS_PROBE_TIMEOUT_MS }: { sentinel?: SentinelTarget; timeoutMs?: number } = {},
): Promise<void> {
  let lastError: Error | undefined;
  const connection = connectRedis(url, {
    sentinel,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    reconnectOnError: () => false,
  });
  connection.on('error', (error: Error) => {
    lastError = error;
  });
  const timeout = delay(timeoutMs).then(() => {
    throw new Error(`no answer in ${timeoutMs / 1000} s`);
  });
  try {
    await Promise.race([connection.connect().then(() => connection.ping()), timeout]);
  } catch (error) {
    const reason = (lastError ?? (error as Error)).message.replace(/\s+/g, ' ');
    throw new AppError(
      'store_unreachable',
      `cannot reach Redis at ${describeRedisTarget(url, sentinel)} (REDIS_URL${sentinel ? ', REDIS_SENTINELS' : ''}): ${reason}`,
      503,
    );
  } finally {
    connection.disconnect();
  }
}
