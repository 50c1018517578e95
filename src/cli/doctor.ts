import argon2 from 'argon2';
import type { Store } from '../authorization-server/storage/store.ts';
import { PASSWORD_HASH_OPTIONS } from '../authorization-server/storage/user-store.ts';
import type { Config } from '../config/config.ts';
import { MAX_TOKEN_LIFETIME_SECONDS } from '../config/fields.ts';

export type CheckStatus = 'pass' | 'warn' | 'fail';

/** One finding: a stable id, its verdict, and what it means with the fix. */
export interface Check {
  id: string;
  status: CheckStatus;
  message: string;
}

export interface DoctorInput {
  config: Config;
  /** The shared store; undefined when REDIS_URL is unset (the in-process demo store). */
  store?: Store;
  now?: Date;
  nodeVersion?: string;
}

const DAY = 86_400_000;
/** Without KEY_ROTATION_INTERVAL, a current key older than this fails (NIST SP 800-57's cryptoperiod advice, in practice). */
const MANUAL_ROTATION_DAYS = 90;
/** A client younger than this has not had the time to use what it holds. */
const USAGE_GRACE_DAYS = 30;
/** End of life of the Node.js lines the project runs on (nodejs.org release schedule). */
const NODE_END_OF_LIFE: Record<number, string> = { 22: '2027-04-30', 24: '2028-04-30', 26: '2029-04-30' };
/** OWASP Password Storage Cheat Sheet: argon2id profiles of equal strength (memory KiB, iterations). */
const OWASP_ARGON2ID = [
  { m: 47_104, t: 1 },
  { m: 19_456, t: 2 },
  { m: 12_288, t: 3 },
  { m: 9_216, t: 4 },
  { m: 7_168, t: 5 },
];
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

const check = (id: string, status: CheckStatus, message: string): Check => ({ id, status, message });
const days = (ms: number) => Math.floor(ms / DAY);

function issuerHttps({ issuer }: Config): Check {
  const url = new URL(issuer);
  if (url.protocol === 'https:') return check('issuer-https', 'pass', `ISSUER ${issuer} is https`);
  if (LOOPBACK.has(url.hostname))
    return check(
      'issuer-https',
      'warn',
      `ISSUER ${issuer} is http on this machine only: fine for development; in production set ISSUER to the public https URL`,
    );
  return check(
    'issuer-https',
    'fail',
    `ISSUER ${issuer} is http: tokens, codes and cookies travel in clear. Set ISSUER to an https URL (TLS at the server or a proxy)`,
  );
}

function nodeEnv({ env }: Config): Check {
  return env === 'production'
    ? check('node-env', 'pass', 'NODE_ENV=production')
    : check(
        'node-env',
        'warn',
        `NODE_ENV=${env}: set NODE_ENV=production, which refuses the in-process store, generated secrets and http issuers`,
      );
}

function storeKeySource(store: Store | undefined, config: Config): Check {
  if (config.storeKey)
    return check('store-key', 'pass', 'the store key comes from STORE_KEY (the environment)');
  const source = store?.secrets.source ?? 'file';
  return check(
    'store-key',
    'warn',
    `the store key comes from ${config.keysDir}/store.key${source === 'generated' ? ' (generated just now)' : ''}, a file beside the code: set STORE_KEY from your secret manager (see "Moving the store key")`,
  );
}

function redisChecks({ redisUrl }: Config): Check[] {
  if (!redisUrl)
    return [
      check(
        'redis-url',
        'fail',
        'REDIS_URL is unset: the server runs on an in-process demo store (nothing shared or kept, demo credentials). Set REDIS_URL',
      ),
    ];
  const url = new URL(redisUrl);
  const local = LOOPBACK.has(url.hostname);
  const where = `Redis at ${url.hostname}:${url.port || 6379}`;
  const password = url.password
    ? check('redis-password', 'pass', `${where} is reached with a password`)
    : check(
        'redis-password',
        local ? 'warn' : 'fail',
        `${where} answers without a password: set requirepass (or an ACL user) and put it in REDIS_URL (redis://user:password@host)`,
      );
  const tls =
    url.protocol === 'rediss:'
      ? check('redis-tls', 'pass', `${where} is reached over TLS (rediss://)`)
      : check(
          'redis-tls',
          local ? 'warn' : 'fail',
          `${where} is reached in clear (redis://)${local ? ' on this machine' : ''}: use rediss:// with TLS on Redis`,
        );
  return [password, tls];
}

function adminBinding({ adminPort, adminHost }: Config): Check {
  if (!adminPort) return check('admin-bind', 'pass', 'no admin API (ADMIN_PORT unset)');
  return LOOPBACK.has(adminHost)
    ? check('admin-bind', 'pass', `the admin API (and /metrics) listens on ${adminHost}:${adminPort} only`)
    : check(
        'admin-bind',
        'warn',
        `the admin API and its unauthenticated /metrics listen on ${adminHost}:${adminPort}: bind ADMIN_HOST to 127.0.0.1 and reach it through a tunnel or a private network`,
      );
}

function trustProxy({ trustProxy: trusted, proxyHops, issuer }: Config): Check {
  if (!trusted) {
    return check(
      'trust-proxy',
      'pass',
      'X-Forwarded-* headers are ignored; behind a proxy, set TRUST_PROXY or every client shares the proxy address in rate limits and the audit trail',
    );
  }
  return check(
    'trust-proxy',
    issuer.startsWith('https:') ? 'pass' : 'warn',
    `TRUST_PROXY=${proxyHops}: a client's address is the X-Forwarded-For entry ${proxyHops} from the right (what your outermost proxy saw). Only right when exactly ${proxyHops} proxies you run append to that header and nothing reaches the server around them`,
  );
}

async function keyChecks(config: Config, store: Store, now: Date): Promise<Check[]> {
  const ring = await store.keyRing.read();
  if (!ring) return [check('key-age', 'warn', 'no signing keys yet: start the server once (it makes them)')];
  const current = ring.keys.filter((k) => k.status === 'current');
  const ages = current.map((k) => now.getTime() - Date.parse(k.activated_at ?? k.created_at));
  const oldest = Math.max(0, ...ages);
  const interval = config.keyRotationInterval;
  let age: Check;
  if (interval) {
    // One check period late (at most a minute, or a tenth of the interval) is still on time.
    const due = interval * 1000 + 2 * Math.min(60_000, (interval * 1000) / 10);
    age =
      oldest <= due
        ? check(
            'key-age',
            'pass',
            `current keys are ${days(oldest)} days old; KEY_ROTATION_INTERVAL is ${interval} s`,
          )
        : check(
            'key-age',
            'fail',
            `current keys are ${days(oldest)} days old, past KEY_ROTATION_INTERVAL (${interval} s): scheduled rotation is not running; run keys rotate and check the servers' logs`,
          );
  } else {
    age =
      oldest > MANUAL_ROTATION_DAYS * DAY
        ? check(
            'key-age',
            'fail',
            `current keys are ${days(oldest)} days old and nothing rotates them: run keys rotate, and set KEY_ROTATION_INTERVAL (e.g. 7776000 for 90 days)`,
          )
        : check(
            'key-age',
            'warn',
            `current keys are ${days(oldest)} days old; KEY_ROTATION_INTERVAL is unset, so only keys rotate rotates them: set it (e.g. 7776000 for 90 days)`,
          );
  }
  const stale = ring.keys.filter(
    (k) =>
      k.status === 'retired' &&
      k.retired_at &&
      Date.parse(k.retired_at) + MAX_TOKEN_LIFETIME_SECONDS * 1000 < now.getTime(),
  );
  const retired = stale.length
    ? check(
        'retired-keys',
        'warn',
        `retired keys past their removal time are still published: ${stale.map((k) => k.kid).join(', ')}. Run keys retire KID for each (no token they signed is still valid)`,
      )
    : check('retired-keys', 'pass', 'no retired key is kept past the longest token lifetime');
  return [age, retired];
}

/** The fields of a listed client the checks read. */
interface ListedClient {
  client_id: string;
  grant_types: string[];
  scope: string;
  token_endpoint_auth_method: string;
  created_at: string;
}

async function clientChecks(config: Config, store: Store, now: Date): Promise<Check[]> {
  const [clients, trail, usage] = await Promise.all([
    store.clients.list() as Promise<unknown> as Promise<ListedClient[]>,
    store.audit.recent(10_000),
    store.usage.all(),
  ]);
  // A secret's date: its last rotation in the audit trail, else the client's registration.
  const rotated = new Map<string, string>();
  for (const entry of trail) {
    if (
      entry.action === 'clients.rotate-secret' &&
      entry.outcome === 'ok' &&
      entry.target &&
      !rotated.has(entry.target)
    )
      rotated.set(entry.target, entry.at);
  }
  const maxAge = config.clientSecretMaxAgeDays * DAY;
  const oldSecrets = clients
    .filter((c) => c.token_endpoint_auth_method.startsWith('client_secret'))
    .filter((c) => now.getTime() - Date.parse(rotated.get(c.client_id) ?? c.created_at) > maxAge)
    .map((c) => c.client_id);
  const secrets = oldSecrets.length
    ? check(
        'client-secret-age',
        'warn',
        `client secrets older than ${config.clientSecretMaxAgeDays} days (CLIENT_SECRET_MAX_AGE_DAYS): ${oldSecrets.join(', ')}. Run clients rotate-secret ID and hand over the new secret`,
      )
    : check(
        'client-secret-age',
        'pass',
        `no client secret is older than ${config.clientSecretMaxAgeDays} days`,
      );

  const unused: string[] = [];
  for (const client of clients) {
    if (now.getTime() - Date.parse(client.created_at) < USAGE_GRACE_DAYS * DAY) continue;
    const used = usage.get(client.client_id) ?? {};
    const apiScopes = client.scope
      .split(' ')
      .filter((s) => s && !['openid', 'profile', 'email', 'offline_access'].includes(s));
    const idle = [
      ...client.grant_types.filter((g) => !used[`grant:${g}`]).map((g) => `grant ${g}`),
      ...apiScopes.filter((s) => !used[`scope:${s}`]).map((s) => `scope ${s}`),
    ];
    if (idle.length) unused.push(`${client.client_id} (${idle.join(', ')})`);
  }
  const leastPrivilege = unused.length
    ? check(
        'unused-grants-scopes',
        'warn',
        `clients hold grants or API scopes they have never used: ${unused.join('; ')}. Register them again without those (least privilege)`,
      )
    : check(
        'unused-grants-scopes',
        'pass',
        `every client older than ${USAGE_GRACE_DAYS} days uses all its grants and API scopes`,
      );
  return [secrets, leastPrivilege];
}

function argon2Parameters(): Check {
  const { memoryCost: m, timeCost: t, parallelism: p, type } = PASSWORD_HASH_OPTIONS;
  const id = (type as number) === argon2.argon2id;
  const strong = id && p >= 1 && OWASP_ARGON2ID.some((profile) => m >= profile.m && t >= profile.t);
  const params = `argon2${id ? 'id' : ` type ${type}`} m=${m} KiB, t=${t}, p=${p}`;
  return strong
    ? check(
        'argon2',
        'pass',
        `${params} meets OWASP's argon2id minimum (m=19456 KiB, t=2, p=1 or equivalent)`,
      )
    : check(
        'argon2',
        'fail',
        `${params} is below OWASP's argon2id minimum (m=19456 KiB, t=2, p=1): raise PASSWORD_HASH_OPTIONS`,
      );
}

function nodeVersion(version: string, now: Date): Check {
  const major = Number(version.split('.')[0]);
  const endOfLife = NODE_END_OF_LIFE[major];
  if (!endOfLife)
    return check(
      'node-version',
      major % 2 === 1 ? 'warn' : 'fail',
      `Node.js ${version} is ${major % 2 === 1 ? 'not a long-term-support line' : 'not supported'}: run on Node.js 24 (npm ci brings it)`,
    );
  const left = Date.parse(endOfLife) - now.getTime();
  if (left <= 0)
    return check(
      'node-version',
      'fail',
      `Node.js ${version} reached end of life on ${endOfLife}: run on Node.js 24`,
    );
  return left < 180 * DAY
    ? check(
        'node-version',
        'warn',
        `Node.js ${version} reaches end of life on ${endOfLife}: plan the move to Node.js 24`,
      )
    : check('node-version', 'pass', `Node.js ${version} is supported until ${endOfLife}`);
}

/**
 * The deployment's security posture against this project's own production advice: the running
 * configuration (the same environment the servers read) and what the shared store holds.
 */
export async function runDoctor({
  config,
  store,
  now = new Date(),
  nodeVersion: version = process.versions.node,
}: DoctorInput): Promise<Check[]> {
  const checks = [
    issuerHttps(config),
    nodeEnv(config),
    storeKeySource(store, config),
    ...redisChecks(config),
    adminBinding(config),
    trustProxy(config),
  ];
  if (store)
    checks.push(...(await keyChecks(config, store, now)), ...(await clientChecks(config, store, now)));
  else
    checks.push(
      check(
        'store',
        'warn',
        'keys and clients not checked: the in-process demo store lives inside the server process. Set REDIS_URL',
      ),
    );
  checks.push(argon2Parameters(), nodeVersion(version, now));
  return checks;
}
