import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { ConfigError } from '../shared/errors.ts';
import type { TlsFiles } from '../shared/listen.ts';

/**
 * The shared field readers of every configuration (authorization server, CLI, resource server):
 * one schema per kind of value, the variables both servers read, and one constant per limit.
 * Each config module declares its variables as a zod shape built from these and reads them with
 * `readEnv`, which names the variable at fault and never echoes its value (it may be a secret).
 */

/** The longest a signed token (access or ID token) may live; a retired key stays in the JWKS this long. */
export const MAX_TOKEN_LIFETIME_SECONDS = 86_400;
/** The most clock skew a resource server may forgive when checking exp, nbf and iat. */
export const MAX_CLOCK_TOLERANCE_SECONDS = 300;

export type Env = Readonly<Record<string, string | undefined>>;

export const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

export const field = {
  /** A TCP port to listen on. */
  port: z.coerce
    .number({ error: 'must be a port number' })
    .int('must be a port number')
    .min(1, 'must be a port number (1-65535)')
    .max(65535, 'must be a port number (1-65535)'),
  /** A TCP port, or 0 for any free one (tests). */
  portOrZero: z.coerce
    .number({ error: 'must be a port number' })
    .int('must be a port number')
    .min(0, 'must be a port number (0-65535)')
    .max(65535, 'must be a port number (0-65535)'),
  /** Whole seconds, zero or more. */
  seconds: z.coerce
    .number({ error: 'must be a whole number of seconds' })
    .int('must be a whole number of seconds')
    .min(0, 'must not be negative'),
  httpUrl: z.url({ protocol: /^https?$/, error: 'must be an absolute http:// or https:// URL' }),
  redisUrl: z.url({
    protocol: /^rediss?$/,
    error: 'must be a redis:// URL, or rediss:// for TLS (for example redis://127.0.0.1:6379)',
  }),
  redisPrefix: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'letters, digits and : _ . - only, at most 64 characters'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    error: 'must be one of fatal, error, warn, info, debug, trace, silent',
  }),
  bool: z.stringbool({ error: 'must be true or false' }),
  /** A process count from 1 to 256, or `auto` for one per CPU. */
  workers: z
    .string()
    .regex(/^(auto|[1-9][0-9]{0,2})$/, 'must be a number from 1 to 256, or auto')
    .transform((value) => (value === 'auto' ? availableParallelism() : Number(value)))
    .refine((count) => count <= 256, 'must be a number from 1 to 256, or auto'),
  nodeEnv: z.enum(['development', 'production', 'test'], {
    error: 'must be development, production or test',
  }),
};

/**
 * Variables both servers read, with the same defaults and rules. Their README rows are in the
 * authorization server's table; the resource server's table refers to them.
 */
export const sharedShape = {
  /** `production` turns unsafe development defaults into refusals. */
  NODE_ENV: field.nodeEnv.default('development'),
  /** The authorization server's port; also the default issuer's port. */
  PORT: field.port.default(3000),
  /** The authorization server's issuer identifier; default http://localhost:$PORT. */
  ISSUER: field.httpUrl.optional(),
  /** redis:// or rediss:// (TLS). Unset: in-process state (refused by the AS in production). */
  REDIS_URL: field.redisUrl.optional(),
  /** REDIS_URL is a seed node of a Redis Cluster. */
  REDIS_CLUSTER: field.bool.default(false),
  /** Key prefix, so several deployments or test runs share one Redis. */
  REDIS_PREFIX: field.redisPrefix.default('idp:'),
  /** pino level. */
  LOG_LEVEL: field.logLevel.default('info'),
  /** Processes serving requests, a Node cluster sharing the port; `auto`: one per CPU. */
  WORKERS: field.workers.default(1),
  /** PEM certificate (leaf first, then its chain): every listener of the process serves HTTPS. */
  TLS_CERT_FILE: z.string().optional(),
  /** PEM private key of TLS_CERT_FILE. */
  TLS_KEY_FILE: z.string().optional(),
  /** Sentinels (host:port, comma-separated) that name the Redis primary; REDIS_URL then gives only credentials, TLS and db. */
  REDIS_SENTINELS: z
    .string()
    .transform((list) => list.split(',').map((entry) => entry.trim()))
    .pipe(
      z.array(
        z
          .string()
          .regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, 'must be host:port pairs separated by commas')
          .transform((entry) => {
            const at = entry.lastIndexOf(':');
            return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)) };
          }),
      ),
    )
    .optional(),
  /** The primary's name in the sentinels' configuration (`sentinel monitor NAME ...`). */
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits and . _ - only')
    .default('mymaster'),
};

/** Workers share state through Redis only: the in-process store would differ per worker. */
export function requireRedisForWorkers(env: { WORKERS: number; REDIS_URL?: string | undefined }): void {
  if (env.WORKERS > 1 && !env.REDIS_URL)
    throw new ConfigError(
      'WORKERS: more than one worker needs REDIS_URL (workers share state through Redis only)',
    );
}

type Shared = z.infer<z.ZodObject<typeof sharedShape>>;

/** Where Redis is: one server, a Cluster (seed node in REDIS_URL) or a primary named by Sentinels. */
export interface RedisTarget {
  readonly url: string;
  readonly cluster: boolean;
  readonly sentinel?: { readonly sentinels: { host: string; port: number }[]; readonly name: string };
}

/** The Redis the variables describe, or undefined without REDIS_URL. */
export function resolveRedis(e: Shared): RedisTarget | undefined {
  if (e.REDIS_SENTINELS && !e.REDIS_URL)
    throw new ConfigError('REDIS_URL: required with REDIS_SENTINELS (it gives the password, TLS and db)');
  if (e.REDIS_SENTINELS && e.REDIS_CLUSTER)
    throw new ConfigError('REDIS_SENTINELS: not with REDIS_CLUSTER (a Cluster fails over by itself)');
  if (!e.REDIS_URL) return undefined;
  return {
    url: e.REDIS_URL,
    cluster: e.REDIS_CLUSTER,
    ...(e.REDIS_SENTINELS ? { sentinel: { sentinels: e.REDIS_SENTINELS, name: e.REDIS_SENTINEL_NAME } } : {}),
  };
}

/** TLS_CERT_FILE and TLS_KEY_FILE, both or neither. */
export function resolveTls(e: Shared): TlsFiles | undefined {
  if (!e.TLS_CERT_FILE && !e.TLS_KEY_FILE) return undefined;
  if (!e.TLS_CERT_FILE) throw new ConfigError('TLS_CERT_FILE: required with TLS_KEY_FILE');
  if (!e.TLS_KEY_FILE) throw new ConfigError('TLS_KEY_FILE: required with TLS_CERT_FILE');
  return { certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE };
}

/** The scheme of this process's own URLs: https when it serves TLS itself. */
export const ownScheme = (e: Shared) => (e.TLS_CERT_FILE ? 'https' : 'http');

/**
 * Parses the variables of `shape` out of `source` (empty values count as unset). Throws a
 * ConfigError naming the first variable at fault.
 */
export function readEnv<Shape extends z.ZodRawShape>(source: Env, shape: Shape): z.infer<z.ZodObject<Shape>> {
  const present = Object.fromEntries(
    Object.keys(shape).flatMap((name) => {
      const value = source[name]?.trim();
      return value ? [[name, value]] : [];
    }),
  );
  const parsed = z.object(shape).safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? 'environment');
    throw new ConfigError(`${variable}: ${issue?.message ?? 'is invalid'}`, variable);
  }
  return parsed.data;
}

/**
 * The issuer both servers agree on: ISSUER or http(s)://localhost:$PORT, without a trailing slash
 * (discovery's form), never with a query or fragment (RFC 8414 §2). In production it must be
 * https, localhost aside (a TLS-terminating proxy on the same host); that exception is warned about.
 */
export function resolveIssuer(env: Shared, production: boolean, warnings: string[]): string {
  const issuer = (env.ISSUER ?? `${ownScheme(env)}://localhost:${env.PORT}`).replace(/\/$/, '');
  const url = new URL(issuer);
  if (url.search || url.hash)
    throw new ConfigError('ISSUER: must not carry a query or fragment (RFC 8414 §2)');
  if (production && url.protocol !== 'https:') {
    if (!LOOPBACK_HOSTS.includes(url.hostname))
      throw new ConfigError('ISSUER: must be https when NODE_ENV=production');
    warnings.push('ISSUER is plain http on localhost: tokens and discovery travel in clear off this host');
  }
  return issuer;
}
