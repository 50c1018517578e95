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

export type Reservation =
  | { allowed: true /** the hold this attempt leaves if it fails (0: none) */; waitIfFailedSeconds: number }
  | { allowed: false; retryAfterSeconds: number };

/**
 * Failure counters with backoff: past a policy's free failures, each further failure holds its key
 * back for a delay that doubles up to a ceiling. Time comes from the caller (`now`, in ms), so
 * tests move a clock instead of sleeping; Redis expiry only cleans up.
 *
 * An attempt is *reserved* before the work it guards (a password hash): one atomic step refuses it
 * while any of its counters holds, and otherwise counts it as a failure on all of them at once,
 * hold included. Parallel attempts therefore cannot slip past a check-then-act gap; a success or
 * an attempt that never ran is refunded afterwards.
 */
export interface FailureCounters {
  /** Counters of one reservation must share a Redis Cluster slot (one hash tag). */
  reserve(rules: CounterRule[], now: number): Promise<Reservation>;
  /** Seconds until every counter lets an attempt through; 0: now. Reserves nothing. */
  holdSeconds(rules: CounterRule[], now: number): Promise<number>;
  /** Takes back one reserved failure (a success, or a check that never ran); never extends a hold. */
  refund(rules: CounterRule[], now: number): Promise<void>;
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
function secondsUntil(holdUntil: number, now: number): number {
  return holdUntil > now ? Math.max(1, Math.ceil((holdUntil - now) / 1000)) : 0;
}

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
local longest = 0
for i = 1, #KEYS do
  local st = states[i]
  st.f = st.f + 1
  local d = delay(st, st.f)
  st.h = d > 0 and now + d or 0
  save(i, st)
  longest = math.max(longest, d)
end
return { 1, longest }`;

const REFUND = `${LOAD}
for i = 1, #KEYS do
  local st = load(i)
  if st.exists and st.f > 0 then
    st.f = st.f - 1
    if delay(st, st.f) == 0 then st.h = 0 end
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

  async #run(script: string, rules: CounterRule[], now: number): Promise<unknown> {
    return this.#client.eval(
      script,
      rules.length,
      ...rules.map((r) => r.key),
      String(now),
      ...rules.flatMap(policyArgs).map(String),
    );
  }

  async reserve(rules: CounterRule[], now: number): Promise<Reservation> {
    const [allowed, ms] = (await this.#run(RESERVE, rules, now)) as [number, number];
    return allowed === 1
      ? { allowed: true, waitIfFailedSeconds: Math.ceil(ms / 1000) }
      : { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(ms / 1000)) };
  }

  async holdSeconds(rules: CounterRule[], now: number): Promise<number> {
    const holds = await Promise.all(rules.map((r) => this.#client.hget(r.key, 'h')));
    return secondsUntil(Math.max(0, ...holds.map(Number)), now);
  }

  async refund(rules: CounterRule[], now: number): Promise<void> {
    await this.#run(REFUND, rules, now);
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
    loaded.forEach(({ st, policy }, i) => {
      st.f += 1;
      const delay = backoffDelay(policy, st.f) * 1000;
      st.h = delay > 0 ? now + delay : 0;
      this.#save(rules[i] as CounterRule, st, now);
      longest = Math.max(longest, delay);
    });
    return { allowed: true, waitIfFailedSeconds: Math.ceil(longest / 1000) };
  }

  async holdSeconds(rules: CounterRule[], now: number): Promise<number> {
    return secondsUntil(Math.max(0, ...rules.map((rule) => this.#load(rule, now).st.h)), now);
  }

  async refund(rules: CounterRule[], now: number): Promise<void> {
    for (const rule of rules) {
      const { st, policy, exists } = this.#load(rule, now);
      if (!exists || st.f === 0) continue;
      st.f -= 1;
      if (backoffDelay(policy, st.f) === 0) st.h = 0;
      this.#save(rule, st, now);
    }
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
