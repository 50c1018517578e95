import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../shared/errors.ts';
import type { TlsFiles } from '../shared/listen.ts';
import { PROJECT_ROOT } from './config.ts';
import {
  type Env,
  field,
  MAX_CLOCK_TOLERANCE_SECONDS,
  MAX_TOKEN_LIFETIME_SECONDS,
  ownScheme,
  type RedisTarget,
  readEnv,
  requireRedisForWorkers,
  resolveIssuer,
  resolveRedis,
  resolveTls,
  sharedShape,
} from './fields.ts';
import type { KeySource } from './secrets.ts';

/**
 * The sample resource server's configuration: every environment variable it reads is read here, once,
 * at start. A bad value fails fast with a ConfigError naming the variable.
 */
export interface ResourceServerConfig {
  /** RS_PORT, default 4000. The port the resource server listens on (0 picks a free one). */
  readonly port: number;
  /**
   * ISSUER, default `http://localhost:${PORT ?? 3000}`. The authorization server's issuer identifier:
   * discovery is fetched from `${issuer}/.well-known/openid-configuration` and tokens must carry it as
   * `iss`. Production: the public https URL of the authorization server.
   */
  readonly issuer: string;
  /**
   * RS_AUDIENCE, default `http://localhost:${RS_PORT}`. This API's resource indicator (RFC 8707); tokens
   * must carry it in `aud`. Production: the public https URL the API is registered under at the AS.
   */
  readonly audience: string;
  /**
   * RS_INTROSPECTION_CLIENT_ID / RS_INTROSPECTION_CLIENT_SECRET, unset by default. When both are set,
   * routes flagged in the scope table ask the AS's introspection endpoint whether the token was revoked
   * (client_secret_basic). Unset: revocation checks are off and a token stays valid until it expires.
   */
  readonly introspection?: { readonly clientId: string; readonly clientSecret: string };
  /** RS_CLOCK_TOLERANCE_SECONDS, default 5. Leeway for exp, nbf and iat between this host and the AS. */
  readonly clockToleranceSeconds: number;
  /**
   * RS_JWKS_COOLDOWN_SECONDS, default 1. After fetching the JWKS, a token with an unknown `kid` does not
   * trigger another fetch for this long. Small, so a key the AS just started signing with is picked up
   * quickly, yet garbage `kid`s cannot make this server hammer the AS.
   */
  readonly jwksCooldownSeconds: number;
  /**
   * RS_JWKS_CACHE_MAX_AGE_SECONDS, default 60. The longest the JWKS is used before it must be fetched
   * again. The JWKS response's `Cache-Control: max-age` shortens it (at least 1 s): the authorization
   * server sends 5 s, so a key dropped by `keys rotate --now` stops verifying here within about 10 s
   * (the AS instances' own reload, up to 5 s, plus max-age). Past max-age the set is refreshed in the
   * background and still used meanwhile, up to this bound (so a brief AS outage costs no 503s).
   */
  readonly jwksCacheMaxAgeSeconds: number;
  /**
   * REDIS_URL / REDIS_PREFIX / REDIS_CLUSTER, as for the authorization server. Set: policies and
   * claims live in Redis (under `${prefix}rs:`), so they survive restarts and every instance sees
   * them. Unset: an in-process store (a demo: lost on restart, not shared), with a warning.
   *
   * RS_STORE_KEY (32 random bytes, base64url), else the file `${KEYS_DIR}/rs-store.key`, generated on
   * first start outside production; required when NODE_ENV=production. The resource server's own
   * key-encryption key: it wraps the data keys that seal every policy and claim in Redis (the AS's
   * STORE_KEY is never shared with it). RS_STORE_KEY_PREVIOUS: the old one while moving to a new key.
   */
  readonly redis?: RedisTarget & {
    readonly prefix: string;
    readonly storeKey: KeySource;
  };
  /**
   * RS_REQUEST_LOG_SAMPLE, default 100. One successful request in this many gets a request log line
   * (the first always does); errors and refusals (status >= 400) are always logged. 1 logs every request.
   */
  readonly requestLogSampleEvery: number;
  /**
   * RS_METRICS_PORT, unset by default: no metrics listener. Set: Prometheus `GET /metrics` on this
   * port, bound to loopback (RS_METRICS_HOST, default 127.0.0.1), never on the API's port.
   */
  readonly metrics?: { readonly port: number; readonly host: string };
  /** TLS_CERT_FILE / TLS_KEY_FILE, as for the authorization server: the RS serves HTTPS. */
  readonly tls: TlsFiles | undefined;
  /** LOG_LEVEL, default info. One of pino's levels; `silent` turns logging off. */
  readonly logLevel: string;
  /**
   * WORKERS, default 1; `auto`: one process per CPU. Processes serving requests, a Node cluster sharing
   * RS_PORT. More than one needs REDIS_URL (the in-process store would differ per worker).
   */
  readonly workers: number;
  /** Loud warnings about unsafe settings, for main.ts to log at start. */
  readonly warnings: readonly string[];
}

export { ConfigError };

/**
 * The variables only the resource server reads (see ResourceServerConfig for each one's meaning);
 * PORT, ISSUER, REDIS_*, LOG_LEVEL and NODE_ENV come from `sharedShape`, as for the AS.
 */
const shape = {
  ...sharedShape,
  RS_PORT: field.portOrZero.default(4000),
  RS_AUDIENCE: field.httpUrl.optional(),
  RS_INTROSPECTION_CLIENT_ID: z.string().optional(),
  RS_INTROSPECTION_CLIENT_SECRET: z.string().optional(),
  RS_CLOCK_TOLERANCE_SECONDS: field.seconds
    .max(MAX_CLOCK_TOLERANCE_SECONDS, `must be at most ${MAX_CLOCK_TOLERANCE_SECONDS} seconds`)
    .default(5),
  RS_JWKS_COOLDOWN_SECONDS: field.seconds
    .max(MAX_TOKEN_LIFETIME_SECONDS, `must be at most ${MAX_TOKEN_LIFETIME_SECONDS} seconds`)
    .default(1),
  RS_JWKS_CACHE_MAX_AGE_SECONDS: field.seconds
    .min(1, 'must be at least 1 second')
    .max(MAX_TOKEN_LIFETIME_SECONDS, `must be at most ${MAX_TOKEN_LIFETIME_SECONDS} seconds`)
    .default(60),
  RS_REQUEST_LOG_SAMPLE: z.coerce
    .number({ error: 'must be a whole number (1: log every request)' })
    .int('must be a whole number (1: log every request)')
    .min(1, 'must be at least 1 (1: log every request)')
    .max(1_000_000, 'must be at most 1000000')
    .default(100),
  RS_METRICS_PORT: field.portOrZero.optional(),
  RS_METRICS_HOST: z.string().min(1, 'must name an interface').default('127.0.0.1'),
  RS_STORE_KEY: z.string().optional(),
  RS_STORE_KEY_PREVIOUS: z.string().optional(),
  KEYS_DIR: z.string().optional(),
};
type Parsed = z.infer<z.ZodObject<typeof shape>>;

function readStoreKey(e: Parsed, production: boolean): KeySource {
  if (production && e.RS_STORE_KEY === undefined) {
    throw new ConfigError(
      'RS_STORE_KEY: required when NODE_ENV=production and REDIS_URL is set (no generated secrets)',
    );
  }
  return {
    variable: 'RS_STORE_KEY',
    value: e.RS_STORE_KEY,
    previousValue: e.RS_STORE_KEY_PREVIOUS,
    file: join(e.KEYS_DIR ?? join(PROJECT_ROOT, 'keys'), 'rs-store.key'),
    production,
  };
}

function readIntrospection(e: Parsed): ResourceServerConfig['introspection'] {
  const clientId = e.RS_INTROSPECTION_CLIENT_ID;
  const clientSecret = e.RS_INTROSPECTION_CLIENT_SECRET;
  if (clientId === undefined && clientSecret === undefined) return undefined;
  if (clientId === undefined) throw new ConfigError('RS_INTROSPECTION_CLIENT_ID: required with a secret');
  if (clientSecret === undefined)
    throw new ConfigError('RS_INTROSPECTION_CLIENT_SECRET: required with a client id');
  return { clientId, clientSecret };
}

export function loadResourceServerConfig(source: Env = process.env): ResourceServerConfig {
  const e = readEnv(source, shape);
  const production = e.NODE_ENV === 'production';
  const warnings: string[] = [];
  const issuer = resolveIssuer(e, production, warnings);
  const audience = e.RS_AUDIENCE ?? `${ownScheme(e)}://localhost:${e.RS_PORT}`;
  const redis = resolveRedis(e);
  if (production && !audience.startsWith('https:')) warnings.push('RS_AUDIENCE is not https');
  if (e.REDIS_URL === undefined) {
    warnings.push(
      'REDIS_URL unset: policies and claims live in this process only (lost on restart, not shared)',
    );
  }
  requireRedisForWorkers(e);
  const introspection = readIntrospection(e);
  if (introspection === undefined) {
    warnings.push('RS_INTROSPECTION_CLIENT_ID/SECRET unset: revoked tokens stay accepted until they expire');
  }
  return {
    port: e.RS_PORT,
    issuer,
    audience,
    introspection,
    clockToleranceSeconds: e.RS_CLOCK_TOLERANCE_SECONDS,
    jwksCooldownSeconds: e.RS_JWKS_COOLDOWN_SECONDS,
    jwksCacheMaxAgeSeconds: e.RS_JWKS_CACHE_MAX_AGE_SECONDS,
    ...(redis ? { redis: { ...redis, prefix: e.REDIS_PREFIX, storeKey: readStoreKey(e, production) } } : {}),
    tls: resolveTls(e),
    requestLogSampleEvery: e.RS_REQUEST_LOG_SAMPLE,
    ...(e.RS_METRICS_PORT !== undefined
      ? { metrics: { port: e.RS_METRICS_PORT, host: e.RS_METRICS_HOST } }
      : {}),
    logLevel: e.LOG_LEVEL,
    workers: e.WORKERS,
    warnings,
  };
}
