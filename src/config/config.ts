import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigError } from '../shared/errors.ts';
import type { TlsFiles } from '../shared/listen.ts';
import {
  field,
  MAX_TOKEN_LIFETIME_SECONDS,
  ownScheme,
  type RedisTarget,
  readEnv,
  requireRedisForWorkers,
  resolveIssuer,
  resolveRedis,
  resolveTls,
  type Env as Source,
  sharedShape,
} from './fields.ts';

/** The repository root, so `keys/` resolves the same whatever the working directory. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Every environment variable the authorization server and the admin CLI read: each with its
 * default and meaning here, and with its production advice in the README's configuration table.
 * The variables the resource server reads too (PORT, ISSUER, REDIS_*, LOG_LEVEL, NODE_ENV) come
 * from `sharedShape`.
 */
const shape = {
  ...sharedShape,
  /** 32 random bytes, base64url: the key-encryption key wrapping the data keys kept in the store. */
  STORE_KEY: z.string().optional(),
  /** The previous STORE_KEY, only while moving to a new one: the data keys are re-wrapped under STORE_KEY. */
  STORE_KEY_PREVIOUS: z.string().optional(),
  /** Folder for secret files (store.key). */
  KEYS_DIR: z.string().default(`${PROJECT_ROOT}keys`),
  /** Access token lifetime (s) when the resource sets none; default 600. */
  ACCESS_TOKEN_TTL: field.seconds
    .min(1, 'must be at least 1 second')
    .max(MAX_TOKEN_LIFETIME_SECONDS, `must be at most ${MAX_TOKEN_LIFETIME_SECONDS} seconds`)
    .default(600),
  /**
   * JWS algorithm of access tokens for APIs that name none (`resources add --alg`); default RS256,
   * the one algorithm RFC 9068 §2.1 requires every resource server to accept. ID tokens are always RS256.
   */
  ACCESS_TOKEN_ALG: z
    .enum(['RS256', 'PS256', 'ES256', 'EdDSA'], { error: 'must be RS256, PS256, ES256 or EdDSA' })
    .default('RS256'),
  /** How often each instance checks the store for key ring changes (pub/sub tells it sooner); default 2000. */
  RELOAD_INTERVAL_MS: z.coerce
    .number({ error: 'must be a number of milliseconds' })
    .int('must be a whole number of milliseconds')
    .min(100, 'must be at least 100')
    .max(5000, 'must be at most 5000')
    .default(2000),
  /** Admin API port; unset: no admin API. */
  ADMIN_PORT: field.port.optional(),
  /** Interface the admin API listens on: loopback unless an operator opens it deliberately. */
  ADMIN_HOST: z.string().default('127.0.0.1'),
  /** Resource indicator (aud) of admin API tokens; defaults to http://localhost:$ADMIN_PORT. */
  ADMIN_AUDIENCE: field.httpUrl.optional(),
  /** Rotate signing keys on this schedule (seconds, at least 60); unset: only by hand. */
  KEY_ROTATION_INTERVAL: field.seconds.min(60, 'must be at least 60 seconds').optional(),
  /** `/token` requests allowed per client per minute, across all instances; 0 turns the limit off. */
  TOKEN_RATE_LIMIT: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(0, 'must not be negative')
    .max(1_000_000, 'must be at most 1000000')
    .default(30_000),
  /**
   * Reverse proxies in front of the server whose X-Forwarded-* entries are trusted: `false` (none,
   * the default), `true` (one) or a number of hops. Only the last that many X-Forwarded-For
   * entries count, the ones our own proxies appended; whatever the client wrote before them is
   * ignored (issue 9 #5).
   */
  TRUST_PROXY: z
    .union([field.bool.transform((on) => (on ? 1 : 0)), z.coerce.number().int().min(0).max(10)], {
      error: 'true, false, or the number of trusted proxy hops (0-10)',
    })
    .default(0),
  /** Audit trail entries older than this are dropped, behind a sealed checkpoint (days); default 365. */
  AUDIT_RETENTION_DAYS: z.coerce
    .number({ error: 'must be a whole number of days' })
    .int('must be a whole number of days')
    .min(1, 'must be at least 1 day')
    .max(36_500, 'must be at most 36500 days')
    .default(365),
  /** `doctor` warns about client secrets older than this (days); default 365. */
  CLIENT_SECRET_MAX_AGE_DAYS: z.coerce
    .number({ error: 'must be a whole number of days' })
    .int('must be a whole number of days')
    .min(1, 'must be at least 1 day')
    .max(36_500, 'must be at most 36500 days')
    .default(365),
};

export type Env = z.infer<z.ZodObject<typeof shape>>;

export interface Config {
  env: Env['NODE_ENV'];
  production: boolean;
  port: number;
  issuer: string;
  redisUrl: string | undefined;
  redisCluster: boolean;
  /** Where Redis is (REDIS_URL, REDIS_CLUSTER, REDIS_SENTINELS); undefined without REDIS_URL. */
  redis: RedisTarget | undefined;
  /** TLS_CERT_FILE / TLS_KEY_FILE: the public and admin listeners serve HTTPS. */
  tls: TlsFiles | undefined;
  redisPrefix: string;
  storeKey: string | undefined;
  storeKeyPrevious: string | undefined;
  keysDir: string;
  accessTokenTtl: number;
  accessTokenAlg: Env['ACCESS_TOKEN_ALG'];
  reloadIntervalMs: number;
  adminPort: number | undefined;
  adminHost: string;
  adminAudience: string | undefined;
  keyRotationInterval: number | undefined;
  tokenRateLimit: number;
  /** X-Forwarded-* headers are read (at least one proxy hop is trusted). */
  trustProxy: boolean;
  auditRetentionDays: number;
  clientSecretMaxAgeDays: number;
  /** How many X-Forwarded-For entries, counted from the right, were written by trusted proxies. */
  proxyHops: number;
  logLevel: Env['LOG_LEVEL'];
  /** Loud warnings about unsafe settings that are allowed, for main.ts to log at start. */
  warnings: readonly string[];
  workers: number;
}

/** Reads and validates the environment once; throws ConfigError naming the variable at fault. */
export function loadConfig(source: Source = process.env): Config {
  const e = readEnv(source, shape);
  const production = e.NODE_ENV === 'production';
  const warnings: string[] = [];
  const issuer = resolveIssuer(e, production, warnings);
  if (production) {
    if (!e.REDIS_URL)
      throw new ConfigError('REDIS_URL: required when NODE_ENV=production (no in-process store)');
    if (!e.STORE_KEY)
      throw new ConfigError('STORE_KEY: required when NODE_ENV=production (no generated secrets)');
  }
  requireRedisForWorkers(e);
  return {
    env: e.NODE_ENV,
    production,
    port: e.PORT,
    issuer,
    redisUrl: e.REDIS_URL,
    redisCluster: e.REDIS_CLUSTER,
    redis: resolveRedis(e),
    tls: resolveTls(e),
    redisPrefix: e.REDIS_PREFIX,
    storeKey: e.STORE_KEY,
    storeKeyPrevious: e.STORE_KEY_PREVIOUS,
    keysDir: e.KEYS_DIR,
    accessTokenTtl: e.ACCESS_TOKEN_TTL,
    accessTokenAlg: e.ACCESS_TOKEN_ALG,
    reloadIntervalMs: e.RELOAD_INTERVAL_MS,
    adminPort: e.ADMIN_PORT,
    adminHost: e.ADMIN_HOST,
    adminAudience:
      e.ADMIN_AUDIENCE ?? (e.ADMIN_PORT ? `${ownScheme(e)}://localhost:${e.ADMIN_PORT}` : undefined),
    keyRotationInterval: e.KEY_ROTATION_INTERVAL,
    tokenRateLimit: e.TOKEN_RATE_LIMIT,
    trustProxy: e.TRUST_PROXY > 0,
    proxyHops: e.TRUST_PROXY,
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
    clientSecretMaxAgeDays: e.CLIENT_SECRET_MAX_AGE_DAYS,
    logLevel: e.LOG_LEVEL,
    warnings,
    workers: e.WORKERS,
  };
}
