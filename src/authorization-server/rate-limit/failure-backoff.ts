import type { RedisConnection } from '../../shared/redis.ts';
import type { Kv } from '../storage/kv.ts';
import type { BackoffPolicy } from './limits.ts';

/** One counter an attempt is charged to. */
export interface CounterRule {
  key: string;
  policy: BackoffPolicy;
  /** The stricter policy for a key not marked known (no success from it lately); default: `policy`. */
  strangerPolicy?: BackoffPolicy;
}

/**
 * What a reservation did to one counter's hold (epoch ms; 0: none): the hold it found, no longer in
 * force, and the one it left. A refund puts back `replaced` while the counter still holds `set`.
 */
export interface HoldChange {
  replaced: number;
  set: number;
}

export interface Granted {
  allowed: true;
  /** The hold this attempt leaves if it fails (0: none). */
  waitIfFailedSeconds: number;
  /** One per counter, in the order of the rules. */
  holds: HoldChange[];
}

export type Reservation = Granted | { allowed: false; retryAfterSeconds: number };

/**
 * Failure counters with backoff: past a policy's free failures, each further failure holds its key
 * back for a delay that doubles up to a ceiling. Time comes from the caller (`now`, in ms), so
 * tests move a clock instead of sleeping; Redis expiry only cleans up.
 *
 * An attempt is *reserved* before the work it guards (a password hash): one atomic step refuses it
 * while any of its counters holds, and otherwise counts it as a failure on all of them at once,
 * hold included. Parallel attempts therefore cannot slip past a check-then-act gap; a success or
 * an attempt that never ran is refunded afterwards, and the refund undoes exactly what its own
 * reservation did: one failure less, and the hold it replaced back, so a right password never keeps
 * a hold that only its own reservation set (while a hold another attempt set since stays).
 */
export interface FailureCounters {
  /** Counters of one reservation must share a Redis Cluster slot (one hash tag). */
  reserve(rules: CounterRule[], now: number): Promise<Reservation>;
  /**
   * Takes back one granted reservation (a success, or a check that never ran), atomically: one
   * failure less on each counter, and the hold it replaced put back where the counter still holds
   * the one it set. Never extends a hold, never lifts one another attempt set.
   */
  refund(rules: CounterRule[], granted: Pick<Granted, 'holds'>, now: number): Promise<void>;
  /** A success from this key: its failures are cleared and it is known for `knownSeconds`. */
  markKnown(key: string, knownSeconds: number, now: number): Promise<void>;
  /** Counts one failure without any hold; returns the failures inside the policy's memory. */
  count(rule: CounterRule, now: number): Promise<number>;
  failures(rule: CounterRule, now: number): Promise<number>;
}

/** The delay after the nth failure: none for the free ones, then first, 2×first, 4×first... capped. */
export function backoffDelay(policy: BackoffPolicy, failures: number): number {
  const over = failures - policy.freeFailures;
  if (over <= 0) return 0;
  return Math.min(policy.maxDelaySeconds, policy.firstDelaySeconds * 2 ** Math.min(over - 1, 30));
}

/** Counters on the store's backend: Redis (shared by every instance), or this process's memory. */
export function createFailureCounters(kv: Kv): FailureCounters {
  const client = kv.limiterClient;
  return client ? new RedisFailureCounters(client) : new MemoryFailureCounters();
}

/** Hash fields: f failures, t first failure (ms), h hold until (ms), k known until (ms). */
const POLICY_ARGS = 7;

function policyArgs({ policy, strangerPolicy = policy }: CounterRule): number[] {
  return [
    policy.freeFailures,
    policy.firstDelaySeconds * 1000,
    policy.maxDelaySeconds * 1000,
    policy.memorySeconds * 1000,
    strangerPolicy.freeFailures,
    strangerPolicy.firstDelaySeconds * 1000,
    strangerPolicy.maxDelaySeconds * 1000,
  ];
}

// Shared by the scripts: the state of KEYS[i] and the policy that applies to it.
const LOAD = `
local now = tonumber(ARGV[1])
local function load(i)
  local s = redis.call('HMGET', KEYS[i], 'f', 't', 'h', 'k')
  local o = 1 + (i - 1) * ${POLICY_ARGS}
  local st = { f = tonumber(s[1]) or 0, t = tonumber(s[2]) or now, h = tonumber(s[3]) or 0,
    k = tonumber(s[4]) or 0, memory = tonumber(ARGV[o + 4]) }
  if now - st.t >= st.memory then st.f = 0; st.t = now end
  if st.k > now then
    st.free, st.first, st.max = tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
  else
    st.free, st.first, st.max = tonumber(ARGV[o + 5]), tonumber(ARGV[o + 6]), tonumber(ARGV[o + 7])
  end
  st.exists = s[1] ~= false
  return st
end
local function delay(st, f)
  if f <= st.free then return 0 end
  return math.min(st.max, st.first * 2 ^ math.min(f - st.free - 1, 30))
end
local function save(i, st)
  redis.call('HSET', KEYS[i], 'f', st.f, 't', st.t, 'h', st.h, 'k', st.k)
  redis.call('PEXPIRE', KEYS[i], math.max(st.t + st.memory, st.h, st.k, now + 1000) - now)
end
`;

const RESERVE = `${LOAD}
local states, wait = {}, 0
for i = 1, #KEYS do
  states[i] = load(i)
  if states[i].h > now then wait = math.max(wait, states[i].h - now) end
end
if wait > 0 then return { 0, wait } end
local result = { 1, 0 }
for i = 1, #KEYS do
  local st = states[i]
  local replaced = st.h
  st.f = st.f + 1
  local d = delay(st, st.f)
  st.h = d > 0 and now + d or 0
  save(i, st)
  result[2] = math.max(result[2], d)
  result[#result + 1] = replaced
  result[#result + 1] = st.h
end
return result`;

// After the policies: each key's hold before and after its reservation (HoldChange).
const REFUND = `${LOAD}
local changes = 1 + #KEYS * ${POLICY_ARGS}
for i = 1, #KEYS do
  local st = load(i)
  if st.exists and st.f > 0 then
    st.f = st.f - 1
    local replaced, set = tonumber(ARGV[changes + 2 * i - 1]), tonumber(ARGV[changes + 2 * i])
    if st.h == set then st.h = replaced end
    save(i, st)
  end
end
return 1`;

const MARK_KNOWN = `
local now, known = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'f', 0, 't', now, 'h', 0, 'k', now + known)
redis.call('PEXPIRE', KEYS[1], known)
return 1`;

const COUNT = `${LOAD}
local st = load(1)
st.f = st.f + 1
st.h = 0
save(1, st)
return st.f`;

class RedisFailureCounters implements FailureCounters {
  readonly #client: RedisConnection;

  constructor(client: RedisConnection) {
    this.#client = client;
  }

  async #run(script: string, rules: CounterRule[], now: number, extra: number[] = []): Promise<unknown> {
    return this.#client.eval(
      script,
      rules.length,
      ...rules.map((r) => r.key),
      String(now),
      ...rules.flatMap(policyArgs).map(String),
      ...extra.map(String),
    );
  }

  async reserve(rules: CounterRule[], now: number): Promise<Reservation> {
    const [allowed, ms, ...changes] = (await this.#run(RESERVE, rules, now)) as number[];
    if (allowed !== 1)
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(Number(ms) / 1000)) };
    const holds = rules.map((_, i) => ({
      replaced: Number(changes[2 * i]),
      set: Number(changes[2 * i + 1]),
    }));
    return { allowed: true, waitIfFailedSeconds: Math.ceil(Number(ms) / 1000), holds };
  }

  async refund(rules: CounterRule[], { holds }: Pick<Granted, 'holds'>, now: number): Promise<void> {
    const changes = rules.flatMap((_, i) => [holds[i]?.replaced ?? 0, holds[i]?.set ?? 0]);
    await this.#run(REFUND, rules, now, changes);
  }

  async markKnown(key: string, knownSeconds: number, now: number): Promise<void> {
    await this.#client.eval(MARK_KNOWN, 1, key, String(now), String(knownSeconds * 1000));
  }

  async count(rule: CounterRule, now: number): Promise<number> {
    return Number(await this.#run(COUNT, [rule], now));
  }

  async failures(rule: CounterRule, now: number): Promise<number> {
    const [f, t] = await this.#client.hmget(rule.key, 'f', 't');
    return f !== null && now - Number(t) < rule.policy.memorySeconds * 1000 ? Number(f) : 0;
  }
}

interface CounterState {
  f: number;
  t: number;
  h: number;
  k: number;
  expiresAt: number;
}

/** The same rules for the in-process development store (one process, so plain code is atomic). */
class MemoryFailureCounters implements FailureCounters {
  readonly #states = new Map<string, CounterState>();

  #load(rule: CounterRule, now: number) {
    const stored = this.#states.get(rule.key);
    const st = stored && stored.expiresAt > now ? { ...stored } : { f: 0, t: now, h: 0, k: 0, expiresAt: 0 };
    if (now - st.t >= rule.policy.memorySeconds * 1000) {
      st.f = 0;
      st.t = now;
    }
    const policy = st.k > now ? rule.policy : (rule.strangerPolicy ?? rule.policy);
    return { st, policy, exists: stored !== undefined && stored.expiresAt > now };
  }

  #save(rule: CounterRule, st: CounterState, now: number): void {
    st.expiresAt = Math.max(st.t + rule.policy.memorySeconds * 1000, st.h, st.k, now + 1000);
    this.#states.set(rule.key, st);
    if (this.#states.size > 100_000) {
      for (const [key, state] of this.#states) if (state.expiresAt <= now) this.#states.delete(key);
    }
  }

  async reserve(rules: CounterRule[], now: number): Promise<Reservation> {
    const loaded = rules.map((rule) => this.#load(rule, now));
    const wait = Math.max(0, ...loaded.map(({ st }) => st.h - now));
    if (wait > 0) return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(wait / 1000)) };
    let longest = 0;
    const holds = loaded.map(({ st, policy }, i) => {
      const replaced = st.h;
      st.f += 1;
      const delay = backoffDelay(policy, st.f) * 1000;
      st.h = delay > 0 ? now + delay : 0;
      this.#save(rules[i] as CounterRule, st, now);
      longest = Math.max(longest, delay);
      return { replaced, set: st.h };
    });
    return { allowed: true, waitIfFailedSeconds: Math.ceil(longest / 1000), holds };
  }

  async refund(rules: CounterRule[], { holds }: Pick<Granted, 'holds'>, now: number): Promise<void> {
    rules.forEach((rule, i) => {
      const { st, exists } = this.#load(rule, now);
      if (!exists || st.f === 0) return;
      st.f -= 1;
      const change = holds[i];
      if (change && st.h === change.set) st.h = change.replaced;
      this.#save(rule, st, now);
    });
  }

  async markKnown(key: string, knownSeconds: number, now: number): Promise<void> {
    const k = now + knownSeconds * 1000;
    this.#states.set(key, { f: 0, t: now, h: 0, k, expiresAt: k });
  }

  async count(rule: CounterRule, now: number): Promise<number> {
    const { st } = this.#load(rule, now);
    st.f += 1;
    st.h = 0;
    this.#save(rule, st, now);
    return st.f;
  }

  async failures(rule: CounterRule, now: number): Promise<number> {
    return this.#load(rule, now).st.f;
  }
}
