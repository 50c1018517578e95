import cluster from 'node:cluster';
import client from 'prom-client';

/**
 * Prometheus metrics for every server process, in prom-client's global registry (the one its
 * cluster support aggregates). Label values come from small fixed sets (route patterns, command
 * names, grant types), never from request data, so a stranger cannot grow the series count.
 */
export const registry = client.register;

const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const REDIS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export const httpRequestDuration = new client.Histogram({
  name: 'http_request_duration_seconds',
  help: 'HTTP requests by server, method, route pattern and status, with their duration',
  labelNames: ['server', 'method', 'route', 'status'] as const,
  buckets: SECONDS_BUCKETS,
});

export const tokensIssued = new client.Counter({
  name: 'oauth_tokens_issued_total',
  help: 'Access tokens issued, by the grant type of the token request',
  labelNames: ['grant_type'] as const,
});

export const logins = new client.Counter({
  name: 'oauth_logins_total',
  help: 'Sign-in attempts on the login pages, by outcome (success, failure, throttled)',
  labelNames: ['outcome'] as const,
});

export const rateLimitRefusals = new client.Counter({
  name: 'rate_limit_refusals_total',
  help: 'Requests refused by a rate limit, by limit',
  labelNames: ['limit'] as const,
});

export const refreshTokenReuse = new client.Counter({
  name: 'oauth_refresh_token_reuse_total',
  help: 'Spent refresh tokens presented again (the grant is revoked each time)',
});

export const codeReplay = new client.Counter({
  name: 'oauth_authorization_code_replay_total',
  help: 'Authorization codes presented a second time (what the first use issued is revoked)',
});

export const redisCommandDuration = new client.Histogram({
  name: 'redis_command_duration_seconds',
  help: 'Redis commands by name, with their duration',
  labelNames: ['command'] as const,
  buckets: REDIS_BUCKETS,
});

export const redisCommandErrors = new client.Counter({
  name: 'redis_command_errors_total',
  help: 'Redis commands that failed (error reply, timeout, connection lost), by name',
  labelNames: ['command'] as const,
});

/** A signing key as far as metrics care: the key ring's summary shape. */
export interface KeyAgeSource {
  alg: string;
  status: string;
  created_at: string;
}

let readKeys: () => readonly KeyAgeSource[] | undefined = () => undefined;

/** The key ring this process serves; the gauge reads it at scrape time. */
export function observeSigningKeys(read: () => readonly KeyAgeSource[] | undefined): void {
  readKeys = read;
}

new client.Gauge({
  name: 'signing_key_age_seconds',
  help: 'Age of the oldest signing key of each algorithm family and state (next, current, retired)',
  labelNames: ['alg', 'status'] as const,
  // Every worker serves the same ring: the group's figure is the oldest, not the sum.
  aggregator: 'max',
  collect() {
    this.reset();
    const now = Date.now();
    const oldest = new Map<string, { alg: string; status: string; age: number }>();
    for (const key of readKeys() ?? []) {
      const age = Math.max(0, (now - Date.parse(key.created_at)) / 1000);
      const id = `${key.alg}\0${key.status}`;
      if (!((oldest.get(id)?.age ?? -1) >= age)) oldest.set(id, { alg: key.alg, status: key.status, age });
    }
    for (const { alg, status, age } of oldest.values()) this.set({ alg, status }, Math.round(age));
  },
});

let readPasswordHashQueue: () => number = () => 0;

/** Where the password-hash queue depth is read from (the argon2 concurrency cap's waiting line). */
export function observePasswordHashQueue(read: () => number): void {
  readPasswordHashQueue = read;
}

new client.Gauge({
  name: 'password_hash_queue_depth',
  help: 'Password hashes (argon2) waiting for a free slot',
  collect() {
    this.set(readPasswordHashQueue());
  },
});

let processMetrics = false;
/** Node.js process figures (CPU, memory, event loop lag), once per process that serves metrics. */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  client.collectDefaultMetrics();
}

/** The grant type a token request named; oidc-provider's `gty` lists a refresh chain's grants. */
export function grantTypeLabel(gty: string | undefined, fallback: string): string {
  return gty?.split(' ').at(-1) ?? fallback;
}

interface TimedCommand {
  name: string;
  promise: Promise<unknown>;
}
const timedCommands = new WeakSet<object>();

/** Each command's labelled histogram, looked up once rather than on every command. */
const commandTimers = new Map<string, ReturnType<typeof redisCommandDuration.labels>>();
function commandTimer(name: string): ReturnType<typeof redisCommandDuration.labels> {
  let timer = commandTimers.get(name);
  if (!timer) {
    timer = redisCommandDuration.labels({ command: name });
    commandTimers.set(name, timer);
  }
  return timer;
}

/** Times every command sent on an ioredis connection (Redis or Cluster), and counts failures. */
export function instrumentRedis<T extends { sendCommand: (...args: never[]) => unknown }>(connection: T): T {
  const send = connection.sendCommand.bind(connection) as (
    command: TimedCommand,
    ...rest: unknown[]
  ) => unknown;
  (connection as { sendCommand: unknown }).sendCommand = (command: TimedCommand, ...rest: unknown[]) => {
    // A Cluster redirection sends the same command again; it is timed once, end to end.
    if (command && typeof command === 'object' && !timedCommands.has(command)) {
      timedCommands.add(command);
      const stop = commandTimer(command.name).startTimer();
      command.promise?.then(
        () => stop(),
        () => {
          stop();
          redisCommandErrors.inc({ command: command.name });
        },
      );
    }
    return send(command, ...rest);
  };
  return connection;
}

// With several workers (node:cluster), a scrape reaching any worker answers for the whole group:
// the worker asks the primary, which gathers every worker's registry (prom-client's
// AggregatorRegistry). A worker whose primary does not serve cluster metrics answers for itself.
const REQUEST = 'insurance-idp:metrics-request';
const RESPONSE = 'insurance-idp:metrics-response';
const CLUSTER_TIMEOUT_MS = 3000;

// Workers must answer the primary's prom-client requests; constructing one registry sets that up.
if (cluster.isWorker) new client.AggregatorRegistry();

let clusterServed = false;

/**
 * Call once in the primary of a node:cluster group (WORKERS > 1), before or after forking:
 * it answers workers' scrapes with the metrics of every worker, summed (gauges: as each declares).
 */
export function serveClusterMetrics(): void {
  if (!cluster.isPrimary || clusterServed) return;
  clusterServed = true;
  const aggregator = new client.AggregatorRegistry();
  cluster.on('message', (worker, message: { type?: string; id?: number }) => {
    if (message?.type !== REQUEST) return;
    aggregator.clusterMetrics().then(
      (body) => worker.send({ type: RESPONSE, id: message.id, body }),
      (error: Error) => worker.send({ type: RESPONSE, id: message.id, error: error.message }),
    );
  });
}

let nextRequest = 0;
function askPrimary(): Promise<string | undefined> {
  const id = nextRequest++;
  return new Promise((resolve) => {
    const done = (body: string | undefined) => {
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(body);
    };
    const onMessage = (message: { type?: string; id?: number; body?: string; error?: string }) => {
      if (message?.type === RESPONSE && message.id === id) done(message.error ? undefined : message.body);
    };
    const timer = setTimeout(() => done(undefined), CLUSTER_TIMEOUT_MS);
    process.on('message', onMessage);
    process.send?.({ type: REQUEST, id });
  });
}

/** The Prometheus text of this process, or of the whole group when it is a cluster worker. */
export async function scrape(): Promise<string> {
  collectProcessMetrics();
  if (cluster.isWorker && process.send) {
    const group = await askPrimary();
    if (group !== undefined) return group;
  }
  return registry.metrics();
}
