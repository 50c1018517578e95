import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigError } from '../shared/errors.ts';

/** The repository root, so `keys/` resolves the same whatever the working directory. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const port = z.coerce.number().int().min(1).max(65535);
const seconds = z.coerce.number().int().positive();

/**
 * Every environment variable the authorization server and the admin CLI read, with its default.
 * Production advice is in the README's configuration table.
 */
const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  /** Auth server port. */
  PORT: port.default(3000),
  /** Issuer identifier; defaults to http://localhost:$PORT. Must be https in production (localhost aside). */
  ISSUER: z.url({ protocol: /^https?$/ }).optional(),
  /** redis:// or rediss://. Unset: in-process store with demo data (refused in production). */
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  /** REDIS_URL is a seed node of a Redis Cluster. */
  REDIS_CLUSTER: z.stringbool().default(false),
  /** Key prefix so several deployments or test runs can share one Redis. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'letters, digits and : _ . - only, at most 64')
    .default('idp:'),
  /** 32 random bytes, base64url: the key-encryption key wrapping the data keys kept in the store. */
  STORE_KEY: z.string().optional(),
  /** The previous STORE_KEY, only while moving to a new one: the data keys are re-wrapped under STORE_KEY. */
  STORE_KEY_PREVIOUS: z.string().optional(),
  /** Folder for secret files (store.key). */
  KEYS_DIR: z.string().default(`${PROJECT_ROOT}keys`),
  /** Access token lifetime when the resource sets none. */
  ACCESS_TOKEN_TTL: seconds.max(86_400).default(600),
  /** JWS algorithm of access tokens; ID tokens are always RS256 (OpenID Connect Core §15.1). */
  ACCESS_TOKEN_ALG: z.enum(['EdDSA', 'ES256', 'RS256', 'PS256']).default('EdDSA'),
  /** How often each instance checks the store for key ring changes (pub/sub tells it sooner). */
  RELOAD_INTERVAL_MS: z.coerce.number().int().min(100).max(5000).default(2000),
  /** Admin API port; unset: no admin API. */
  ADMIN_PORT: port.optional(),
  /** Interface the admin API listens on: loopback unless an operator opens it deliberately. */
  ADMIN_HOST: z.string().default('127.0.0.1'),
  /** Resource indicator (aud) of admin API tokens; defaults to http://localhost:$ADMIN_PORT. */
  ADMIN_AUDIENCE: z.url({ protocol: /^https?$/ }).optional(),
  /** Rotate signing keys on this schedule (seconds); unset: only by hand. */
  KEY_ROTATION_INTERVAL: seconds.min(60).optional(),
  /** `/token` requests allowed per client per minute, across all instances; 0 turns the limit off. */
  TOKEN_RATE_LIMIT: z.coerce.number().int().min(0).max(1_000_000).default(30_000),
  /** Trust X-Forwarded-* headers (behind a reverse proxy). */
  TRUST_PROXY: z.stringbool().default(false),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.infer<typeof schema>;

export interface Config {
  env: Env['NODE_ENV'];
  production: boolean;
  port: number;
  issuer: string;
  redisUrl: string | undefined;
  redisCluster: boolean;
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
  trustProxy: boolean;
  logLevel: Env['LOG_LEVEL'];
}

/** Reads and validates the environment once; throws ConfigError naming the variable at fault. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`${String(issue?.path[0] ?? 'environment')}: ${issue?.message ?? 'invalid'}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  const issuer = (e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/$/, '');
  const issuerUrl = new URL(issuer);
  if (issuerUrl.search || issuerUrl.hash) {
    throw new ConfigError('ISSUER: must not carry a query or fragment (RFC 8414 §2)');
  }
  if (production) {
    if (!e.REDIS_URL)
      throw new ConfigError('REDIS_URL: required when NODE_ENV=production (no in-process store)');
    if (!e.STORE_KEY)
      throw new ConfigError('STORE_KEY: required when NODE_ENV=production (no generated secrets)');
    const localhost = ['localhost', '127.0.0.1', '[::1]'].includes(issuerUrl.hostname);
    if (issuerUrl.protocol !== 'https:' && !localhost) {
      throw new ConfigError('ISSUER: must be https when NODE_ENV=production');
    }
  }
  return {
    env: e.NODE_ENV,
    production,
    port: e.PORT,
    issuer,
    redisUrl: e.REDIS_URL,
    redisCluster: e.REDIS_CLUSTER,
    redisPrefix: e.REDIS_PREFIX,
    storeKey: e.STORE_KEY,
    storeKeyPrevious: e.STORE_KEY_PREVIOUS,
    keysDir: e.KEYS_DIR,
    accessTokenTtl: e.ACCESS_TOKEN_TTL,
    accessTokenAlg: e.ACCESS_TOKEN_ALG,
    reloadIntervalMs: e.RELOAD_INTERVAL_MS,
    adminPort: e.ADMIN_PORT,
    adminHost: e.ADMIN_HOST,
    adminAudience: e.ADMIN_AUDIENCE ?? (e.ADMIN_PORT ? `http://localhost:${e.ADMIN_PORT}` : undefined),
    keyRotationInterval: e.KEY_ROTATION_INTERVAL,
    tokenRateLimit: e.TOKEN_RATE_LIMIT,
    trustProxy: e.TRUST_PROXY,
    logLevel: e.LOG_LEVEL,
  };
}
