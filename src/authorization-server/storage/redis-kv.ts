import type { RedisOptions } from 'ioredis';
import { StoreUnavailableError } from '../../shared/errors.ts';
import {
  type ConnectOptions,
  compareAndSet,
  connectRedis,
  delay,
  type RedisConnection,
} from '../../shared/redis.ts';
import {
  type Kv,
  type KvWrite,
  type LogEntry,
  putRecordInOpenSetStepwise,
  type ReplaceResult,
  type StoredRecord,
} from './kv.ts';

/** The member that marks a set closed; no key name starts with '!'. */
const CLOSED = '!closed';

/**
 * The writes `writeTogether` can combine, as Lua functions: each single-write script calls its
 * function once, the combined script calls them in turn.
 */
const WRITE_FUNCTIONS = `
-- A record written afresh (no field of an earlier one left), with its lifetime.
local function put_record(key, sealed, ttl)
  redis.call('DEL', key)
  redis.call('HSET', key, 'p', sealed)
  if tonumber(ttl) > 0 then redis.call('EXPIRE', key, ttl) end
end
-- One step of a fixed-window counter: the window starts with the first count.
local function count_up(key, window_ms)
  local count = redis.call('INCR', key)
  if count == 1 or redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, window_ms) end
  return count
end
-- Adds a member and extends, never shortens, the set's life.
local function add_to_set(key, member, ttl)
  redis.call('SADD', key, member)
  ttl = tonumber(ttl)
  if ttl > 0 and redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
-- Trims expired members, adds one, and keeps the index alive as long as its newest member.
local function index_by_expiry(key, member, expires_at, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, expires_at, member)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if tonumber(newest[2]) - tonumber(now) > 0 then redis.call('EXPIREAT', key, newest[2]) end
end
`;

const PUT_RECORD = `${WRITE_FUNCTIONS}
put_record(KEYS[1], ARGV[1], ARGV[2])
return 1`;

const COUNT_UP = `${WRITE_FUNCTIONS}
return count_up(KEYS[1], ARGV[1])`;

const INDEX_BY_EXPIRY = `${WRITE_FUNCTIONS}
index_by_expiry(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
return 1`;

/**
 * KEYS[i] gets the write named by the i-th letter of ARGV[1] (p, i, c, t); their arguments follow
 * in order. Every `t` (take below a limit) is checked first: one at its limit stops the call before
 * anything is written (0).
 */
const WRITE_TOGETHER = `${WRITE_FUNCTIONS}
local widths = { p = 2, i = 3, c = 1, t = 2 }
local a = 2
local steps = {}
for i = 1, #KEYS do
  local op = string.sub(ARGV[1], i, i)
  if not widths[op] then return redis.error_reply('unknown write ' .. op) end
  steps[i] = { op = op, at = a }
  if op == 't' and tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[a]) then return 0 end
  a = a + widths[op]
end
for i = 1, #KEYS do
  local op, at = steps[i].op, steps[i].at
  if op == 'p' then put_record(KEYS[i], ARGV[at], ARGV[at + 1])
  elseif op == 'i' then index_by_expiry(KEYS[i], ARGV[at], ARGV[at + 1], ARGV[at + 2])
  elseif op == 'c' then count_up(KEYS[i], ARGV[at])
  else count_up(KEYS[i], ARGV[at + 1]) end
end
return 1`;

/** Each write's letter in WRITE_TOGETHER. */
const WRITE_LETTERS: Record<KvWrite['op'], string> = {
  putRecord: 'p',
  indexByExpiry: 'i',
  countUp: 'c',
  takeBelow: 't',
};

/** One counter counted up only while below its limit: 1 if counted (Cluster: one key per script). */
const TAKE_BELOW = `${WRITE_FUNCTIONS}
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 0 end
count_up(KEYS[1], ARGV[2])
return 1`;

/** Swaps a record's sealed value only while it is the expected one (one key: Cluster-safe). */
const REPLACE_RECORD = `
local current = redis.call('HGET', KEYS[1], 'p')
if current == false then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'p', ARGV[2])
return 1`;

const ADD_TO_OPEN_SET = `${WRITE_FUNCTIONS}
if redis.call('SISMEMBER', KEYS[1], '${CLOSED}') == 1 then return 0 end
add_to_set(KEYS[1], ARGV[1], ARGV[2])
return 1`;

/** KEYS[1] the set, KEYS[2] the record: both written, or neither when the set is closed. */
const PUT_RECORD_IN_OPEN_SET = `${WRITE_FUNCTIONS}
if redis.call('SISMEMBER', KEYS[1], '${CLOSED}') == 1 then return 0 end
add_to_set(KEYS[1], KEYS[2], ARGV[3])
put_record(KEYS[2], ARGV[1], ARGV[2])
return 1`;

const CLOSE_SET = `
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SADD', KEYS[1], '${CLOSED}')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return members`;

const ADD_TO_SET = `${WRITE_FUNCTIONS}
add_to_set(KEYS[1], ARGV[1], ARGV[2])
return 1`;

const HASH_COMPARE_AND_SET = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current == false and ARGV[2] == '') or current == ARGV[3] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  return 1
end
return 0`;

/** Appends to a stream only while its head key holds the expected value (keys share a hash slot). */
const APPEND_TO_LOG = `
local current = redis.call('GET', KEYS[2])
if not ((current == false and ARGV[1] == '') or current == ARGV[2]) then return false end
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'v', ARGV[i]) end
redis.call('SET', KEYS[2], ARGV[3])
return ids`;

/** Writes a checkpoint and trims the stream below an id, only while the checkpoint is the expected one. */
const TRIM_LOG = `
local current = redis.call('GET', KEYS[2])
if not ((current == false and ARGV[1] == '') or current == ARGV[2]) then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[4])
return 1`;

/** The smallest stream id after `id` (ms-seq), for XTRIM MINID, which keeps ids from it on. */
function idAfter(id: string): string {
  const [ms, seq] = id.split('-');
  return `${ms}-${BigInt(seq ?? '0') + 1n}`;
}

type Script = (...args: string[]) => Promise<unknown>;

/**
 * A Lua script called by EVALSHA (ioredis `defineCommand`): its source crosses the wire only when
 * Redis does not know it yet, and the call joins the auto-pipeline like any other command.
 */
function defineScript(
  client: RedisConnection,
  name: string,
  lua: string,
  /** Undefined: the call's first argument says how many keys follow. */
  numberOfKeys: number | undefined,
): Script {
  client.defineCommand(name, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys });
  const command = (client as unknown as Record<string, Script>)[name];
  if (!command) throw new Error(`ioredis did not define ${name}`);
  return (...args) => command.apply(client, args);
}

const logEntries = (raw: [string, string[]][]): LogEntry[] =>
  raw.map(([id, fields]) => ({ id, value: fields[fields.indexOf('v') + 1] ?? '' }));

export class RedisKv implements Kv {
  readonly kind = 'redis' as const;
  readonly client: RedisConnection;
  readonly #connect: (options?: RedisOptions) => RedisConnection;
  #subscriber: RedisConnection | undefined;
  readonly #cluster: boolean;
  readonly #scripts: Record<
    | 'putRecord'
    | 'replaceRecord'
    | 'addToOpenSet'
    | 'closeSet'
    | 'addToSet'
    | 'countUp'
    | 'indexByExpiry'
    | 'appendToLog'
    | 'trimLog'
    | 'writeTogether'
    | 'putRecordInOpenSet'
    | 'takeBelow',
    Script
  >;

  constructor(url: string, { cluster = false, sentinel }: Pick<ConnectOptions, 'cluster' | 'sentinel'> = {}) {
    this.#cluster = cluster;
    this.#connect = (options = {}) => connectRedis(url, { ...options, cluster, sentinel });
    // Commands issued in the same tick travel together (one write per node): the hot path's
    // independent single-key reads and writes cost one round trip, on Redis and on Cluster.
    this.client = this.#connect({ enableAutoPipelining: true });
    const script = (name: string, lua: string, keys = 1) =>
      defineScript(this.client, `idp_${name}`, lua, keys);
    this.#scripts = {
      putRecord: script('putRecord', PUT_RECORD),
      replaceRecord: script('replaceRecord', REPLACE_RECORD),
      addToOpenSet: script('addToOpenSet', ADD_TO_OPEN_SET),
      closeSet: script('closeSet', CLOSE_SET),
      addToSet: script('addToSet', ADD_TO_SET),
      countUp: script('countUp', COUNT_UP),
      indexByExpiry: script('indexByExpiry', INDEX_BY_EXPIRY),
      appendToLog: script('appendToLog', APPEND_TO_LOG, 2),
      trimLog: script('trimLog', TRIM_LOG, 2),
      writeTogether: defineScript(this.client, 'idp_writeTogether', WRITE_TOGETHER, undefined),
      putRecordInOpenSet: script('putRecordInOpenSet', PUT_RECORD_IN_OPEN_SET, 2),
      takeBelow: script('takeBelow', TAKE_BELOW),
    };
  }

  async writeTogether(writes: readonly KvWrite[]): Promise<boolean> {
    const now = String(Math.floor(Date.now() / 1000));
    if (this.#cluster) {
      // Different slots: the takes first (each atomic on its own key), then the rest.
      const takes = writes.filter((w) => w.op === 'takeBelow');
      const taken = await Promise.all(
        takes.map(
          async (w) =>
            Number(await this.#scripts.takeBelow(w.key, String(w.limit), String(w.windowMs))) === 1,
        ),
      );
      if (taken.includes(false)) {
        await Promise.all(takes.filter((_, i) => taken[i]).map((w) => this.client.decr(w.key)));
        return false;
      }
      await Promise.all(
        writes.map((w) =>
          w.op === 'putRecord'
            ? this.#scripts.putRecord(w.key, w.sealed, String(w.ttlSeconds ?? 0))
            : w.op === 'indexByExpiry'
              ? this.#scripts.indexByExpiry(w.key, w.member, String(w.expiresAt), now)
              : w.op === 'countUp'
                ? this.#scripts.countUp(w.key, String(w.windowMs))
                : undefined,
        ),
      );
      return true;
    }
    const keys = writes.map((w) => w.key);
    const ops = writes.map((w) => WRITE_LETTERS[w.op]).join('');
    const args = writes.flatMap((w) =>
      w.op === 'putRecord'
        ? [w.sealed, String(w.ttlSeconds ?? 0)]
        : w.op === 'indexByExpiry'
          ? [w.member, String(w.expiresAt), now]
          : w.op === 'countUp'
            ? [String(w.windowMs)]
            : [String(w.limit), String(w.windowMs)],
    );
    return Number(await this.#scripts.writeTogether(String(keys.length), ...keys, ops, ...args)) === 1;
  }

  async putRecord(key: string, sealed: string, ttlSeconds?: number): Promise<void> {
    await this.#scripts.putRecord(key, sealed, String(ttlSeconds ?? 0));
  }

  async putRecordInOpenSet(
    setKey: string,
    recordKey: string,
    sealed: string,
    ttlSeconds?: number,
    setTtlSeconds?: number,
  ): Promise<boolean> {
    if (!this.#cluster) {
      const done = await this.#scripts.putRecordInOpenSet(
        setKey,
        recordKey,
        sealed,
        String(ttlSeconds ?? 0),
        String(setTtlSeconds ?? 0),
      );
      return Number(done) === 1;
    }
    return putRecordInOpenSetStepwise(this, setKey, recordKey, sealed, ttlSeconds, setTtlSeconds);
  }

  async getRecord(key: string): Promise<StoredRecord | undefined> {
    const hash = await this.client.hgetall(key);
    if (!hash.p) return undefined;
    return { sealed: hash.p, legacyConsumed: hash.c === undefined ? undefined : Number(hash.c) };
  }

  async replaceRecord(key: string, expected: string, next: string): Promise<ReplaceResult> {
    const result = Number(await this.#scripts.replaceRecord(key, expected, next));
    return result === 1 ? 'replaced' : result === 0 ? 'changed' : 'missing';
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.client.get(key)) ?? undefined;
  }

  async set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    if (ttlSeconds) await this.client.set(key, value, 'EX', ttlSeconds);
    else await this.client.set(key, value);
  }

  async del(key: string): Promise<void> {
    await this.client.del(key);
  }

  async compareAndSet(key: string, expected: string | undefined, value: string): Promise<boolean> {
    return compareAndSet(this.client, key, expected, value);
  }

  async incr(key: string): Promise<number> {
    return this.client.incr(key);
  }

  async addToSet(key: string, member: string, ttlSeconds?: number): Promise<void> {
    await this.#scripts.addToSet(key, member, String(ttlSeconds ?? 0));
  }

  async removeFromSet(key: string, member: string): Promise<void> {
    await this.client.srem(key, member);
  }

  async setMembers(key: string): Promise<string[]> {
    return (await this.client.smembers(key)).filter((member) => member !== CLOSED);
  }

  async addToOpenSet(key: string, member: string, ttlSeconds?: number): Promise<boolean> {
    return Number(await this.#scripts.addToOpenSet(key, member, String(ttlSeconds ?? 0))) === 1;
  }

  async closeSet(key: string, ttlSeconds: number): Promise<string[]> {
    const members = (await this.#scripts.closeSet(key, String(ttlSeconds))) as string[];
    return members.filter((member) => member !== CLOSED);
  }

  async isSetClosed(key: string): Promise<boolean> {
    return (await this.client.sismember(key, CLOSED)) === 1;
  }

  async readCounters(keys: string[]): Promise<number[]> {
    if (!this.ready) throw new Error('Redis is not ready');
    // The counters live in different Cluster slots: one GET each there, auto-pipelined.
    const replies = this.#cluster
      ? await Promise.all(keys.map((key) => this.client.get(key)))
      : await this.client.mget(keys);
    return replies.map((reply) => Number(reply ?? 0));
  }

  async counterMsLeft(key: string): Promise<number> {
    return Math.max(0, await this.client.pttl(key));
  }

  async countUp(key: string, windowMs: number): Promise<void> {
    await this.#scripts.countUp(key, String(windowMs));
  }

  async indexByExpiry(key: string, member: string, expiresAt: number): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    await this.#scripts.indexByExpiry(key, member, String(expiresAt), String(now));
  }

  async popFromExpiryIndex(key: string, count: number): Promise<string[]> {
    const popped = await this.client.zpopmin(key, count);
    // [member, score, member, score, ...]
    return popped.filter((_, i) => i % 2 === 0);
  }

  async expiryIndexSize(key: string): Promise<number> {
    return this.client.zcard(key);
  }

  async hashGet(key: string, field: string): Promise<string | undefined> {
    return (await this.client.hget(key, field)) ?? undefined;
  }

  async hashSet(key: string, field: string, value: string): Promise<void> {
    await this.client.hset(key, field, value);
  }

  async hashSetIfAbsent(key: string, field: string, value: string): Promise<boolean> {
    return (await this.client.hsetnx(key, field, value)) === 1;
  }

  async hashCompareAndSet(
    key: string,
    field: string,
    expected: string | undefined,
    value: string,
  ): Promise<boolean> {
    const flag = expected === undefined ? '' : '1';
    return (
      Number(await this.client.eval(HASH_COMPARE_AND_SET, 1, key, field, flag, expected ?? '', value)) === 1
    );
  }

  async hashDelete(key: string, field: string): Promise<boolean> {
    return (await this.client.hdel(key, field)) === 1;
  }

  async hashGetAll(key: string): Promise<Record<string, string>> {
    return this.client.hgetall(key);
  }

  async appendToLog(
    logKey: string,
    headKey: string,
    expectedHead: string | undefined,
    newHead: string,
    values: string[],
  ): Promise<string[] | undefined> {
    const ids = await this.#scripts.appendToLog(
      logKey,
      headKey,
      expectedHead === undefined ? '' : '1',
      expectedHead ?? '',
      newHead,
      ...values,
    );
    return Array.isArray(ids) ? ids.map(String) : undefined;
  }

  async readLog(logKey: string, afterId: string | undefined, count: number): Promise<LogEntry[]> {
    return logEntries(await this.client.xrange(logKey, afterId ? `(${afterId}` : '-', '+', 'COUNT', count));
  }

  async readLogNewest(logKey: string, count: number): Promise<LogEntry[]> {
    return logEntries(await this.client.xrevrange(logKey, '+', '-', 'COUNT', count));
  }

  async trimLog(
    logKey: string,
    checkpointKey: string,
    expected: string | undefined,
    checkpoint: string,
    throughId: string,
  ): Promise<boolean> {
    const done = await this.#scripts.trimLog(
      logKey,
      checkpointKey,
      expected === undefined ? '' : '1',
      expected ?? '',
      checkpoint,
      idAfter(throughId),
    );
    return Number(done) === 1;
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.client.publish(channel, message);
  }

  async subscribe(
    channel: string,
    onMessage: (message: string) => void,
    onReconnect?: () => void,
  ): Promise<() => Promise<void>> {
    if (!this.#subscriber) {
      // A subscribed connection can do nothing else, so it gets its own; it waits for Redis
      // without a command timeout.
      this.#subscriber = this.#connect({ commandTimeout: undefined, maxRetriesPerRequest: null });
    }
    const subscriber = this.#subscriber;
    const listener = (from: string, message: string) => {
      if (from === channel) onMessage(message);
    };
    subscriber.on('message', listener);
    // ioredis resubscribes by itself when the connection comes back; what was published while it
    // was away is lost, which the subscriber must hear about.
    let connected = subscriber.status === 'ready';
    const onReady = () => {
      if (!connected) onReconnect?.();
      connected = true;
    };
    const onClose = () => {
      connected = false;
    };
    subscriber.on('ready', onReady);
    subscriber.on('close', onClose);
    await subscriber.subscribe(channel).catch(() => {
      // Redis is away: the periodic check covers until ioredis resubscribes on reconnect.
    });
    connected = subscriber.status === 'ready';
    return async () => {
      subscriber.off('message', listener);
      subscriber.off('ready', onReady);
      subscriber.off('close', onClose);
      // The subscriber waits for Redis without a timeout; leaving must not.
      await Promise.race([subscriber.unsubscribe(channel).catch(() => {}), delay(1000)]);
    };
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  get ready(): boolean {
    return this.client.status === 'ready';
  }

  get limiterClient(): RedisConnection {
    return this.client;
  }

  /** Quits politely, but never waits more than a second: with Redis away, QUIT would wait forever. */
  async close(): Promise<void> {
    const connections = [this.client, this.#subscriber].filter((c): c is RedisConnection => c !== undefined);
    const quit = Promise.allSettled(connections.map((c) => c.quit()));
    await Promise.race([quit, delay(1000)]);
    for (const connection of connections) connection.disconnect();
  }
}

/**
 * Every failed command (connection closed, MaxRetriesPerRequestError, a command timeout, a Redis
 * that is loading or read-only) becomes a StoreUnavailableError here, in one place: every caller,
 * oidc-provider's own error handler included, then answers 503 with Retry-After, never a 500.
 */
for (const name of Object.getOwnPropertyNames(RedisKv.prototype)) {
  const descriptor = Object.getOwnPropertyDescriptor(RedisKv.prototype, name);
  const command = descriptor?.value;
  if (name === 'constructor' || name === 'close' || typeof command !== 'function') continue;
  Object.defineProperty(RedisKv.prototype, name, {
    ...descriptor,
    async value(this: RedisKv, ...args: unknown[]) {
      try {
        return await command.apply(this, args);
      } catch (error) {
        throw error instanceof StoreUnavailableError ? error : new StoreUnavailableError(error);
      }
    },
  });
}
