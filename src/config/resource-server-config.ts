import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../shared/errors.ts';
import { PROJECT_ROOT } from './config.ts';
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
  /** RS_JWKS_CACHE_MAX_AGE_SECONDS, default 60. The JWKS is refetched after this long even without a miss, so a key dropped by an emergency rotation stops verifying within a minute. */
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
  readonly redis?: {
    readonly url: string;
    readonly prefix: string;
    readonly cluster: boolean;
    readonly storeKey: KeySource;
  };
  /** LOG_LEVEL, default info. One of pino's levels; `silent` turns logging off. */
  readonly logLevel: string;
  /** Loud warnings about unsafe settings, for main.ts to log at start. */
  readonly warnings: readonly string[];
}

export { ConfigError };

function invalid(variable: string, reason: string): ConfigError {
  return new ConfigError(`${variable}: ${reason}`, variable);
}

type Env = Record<string, string | undefined>;

const port = z.coerce.number().int().min(0).max(65535);
const seconds = z.coerce.number().int().min(0).max(86_400);
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL' });
const redisUrlSchema = z.url({ protocol: /^rediss?$/ });
const redisPrefix = z
  .string()
  .regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'letters, digits and : _ . - only, at most 64');
const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function read<T>(env: Env, variable: string, schema: z.ZodType<T>, fallback: string): T {
  const raw = env[variable];
  const value = raw === undefined || raw.trim() === '' ? fallback : raw.trim();
  const result = schema.safeParse(value);
  if (!result.success) {
    throw invalid(variable, `${JSON.stringify(value)} ${result.error.issues[0]?.message ?? 'is invalid'}`);
  }
  return result.data;
}

/** REDIS_URL may carry a password: a bad value is refused without ever being echoed. */
function readRedisUrl(env: Env): string | undefined {
  const raw = env.REDIS_URL?.trim();
  if (!raw) return undefined;
  if (!redisUrlSchema.safeParse(raw).success) {
    throw invalid(
      'REDIS_URL',
      'must be a redis:// or rediss:// URL (the value is not shown: it may hold a password)',
    );
  }
  return raw;
}

function readStoreKey(env: Env): KeySource {
  const keysDir = env.KEYS_DIR?.trim() || join(PROJECT_ROOT, 'keys');
  const production = env.NODE_ENV === 'production';
  const value = env.RS_STORE_KEY?.trim() || undefined;
  if (production && value === undefined) {
    throw invalid(
      'RS_STORE_KEY',
      'required when NODE_ENV=production and REDIS_URL is set (no generated secrets)',
    );
  }
  return {
    variable: 'RS_STORE_KEY',
    value,
    previousValue: env.RS_STORE_KEY_PREVIOUS?.trim() || undefined,
    file: join(keysDir, 'rs-store.key'),
    production,
  };
}

function readIssuer(env: Env): string {
  const authServerPort = read(env, 'PORT', port, '3000');
  const issuer = read(env, 'ISSUER', httpUrl, `http://localhost:${authServerPort}`);
  // OpenID Connect Discovery 1.0 §3: the issuer has no query or fragment.
  const url = new URL(issuer);
  if (url.search || url.hash) throw invalid('ISSUER', 'must not contain a query or fragment');
  // The same normalisation as the authorization server's: discovery's issuer has no trailing slash.
  return issuer.replace(/\/$/, '');
}

function readIntrospection(env: Env): ResourceServerConfig['introspection'] {
  const clientId = env.RS_INTROSPECTION_CLIENT_ID?.trim() || undefined;
  const clientSecret = env.RS_INTROSPECTION_CLIENT_SECRET || undefined;
  if (clientId === undefined && clientSecret === undefined) return undefined;
  if (clientId === undefined) throw invalid('RS_INTROSPECTION_CLIENT_ID', 'required with a secret');
  if (clientSecret === undefined)
    throw invalid('RS_INTROSPECTION_CLIENT_SECRET', 'required with a client id');
  return { clientId, clientSecret };
}

export function loadResourceServerConfig(env: Env = process.env): ResourceServerConfig {
  const rsPort = read(env, 'RS_PORT', port, '4000');
  const issuer = readIssuer(env);
  const audience = read(env, 'RS_AUDIENCE', httpUrl, `http://localhost:${rsPort}`);
  const warnings: string[] = [];
  if (env.NODE_ENV === 'production') {
    if (!issuer.startsWith('https:'))
      warnings.push('ISSUER is not https: tokens and discovery travel in clear');
    if (!audience.startsWith('https:')) warnings.push('RS_AUDIENCE is not https');
  }
  const redisUrl = readRedisUrl(env);
  if (redisUrl === undefined) {
    warnings.push(
      'REDIS_URL unset: policies and claims live in this process only (lost on restart, not shared)',
    );
  }
  const introspection = readIntrospection(env);
  if (introspection === undefined) {
    warnings.push('RS_INTROSPECTION_CLIENT_ID/SECRET unset: revoked tokens stay accepted until they expire');
  }
  return {
    port: rsPort,
    issuer,
    audience,
    introspection,
    clockToleranceSeconds: read(env, 'RS_CLOCK_TOLERANCE_SECONDS', seconds.max(300), '5'),
    jwksCooldownSeconds: read(env, 'RS_JWKS_COOLDOWN_SECONDS', seconds, '1'),
    jwksCacheMaxAgeSeconds: read(env, 'RS_JWKS_CACHE_MAX_AGE_SECONDS', seconds, '60'),
    ...(redisUrl
      ? {
          redis: {
            url: redisUrl,
            prefix: read(env, 'REDIS_PREFIX', redisPrefix, 'idp:'),
            cluster: read(env, 'REDIS_CLUSTER', z.stringbool(), 'false'),
            storeKey: readStoreKey(env),
          },
        }
      : {}),
    logLevel: read(env, 'LOG_LEVEL', logLevel, 'info'),
    warnings,
  };
}
