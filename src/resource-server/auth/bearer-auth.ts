import type { Context, Middleware, Next } from 'koa';
import { type ChallengeParameters, respondWithBearerError } from '../../shared/bearer-error.ts';
import { createDiscoveryLoader } from './discovery.ts';
import {
  AuthorizationServerUnavailable,
  BearerAuthError,
  EndUserRequired,
  InsufficientScope,
  InvalidToken,
} from './errors.ts';
import { extractBearerToken } from './extract-token.ts';
import { type IntrospectionCredentials, introspectActive } from './introspection.ts';
import { type AuthLogger, silentLogger } from './logger.ts';
import {
  type AccessTokenAuth,
  type AccessTokenVerifier,
  createAccessTokenVerifier,
  readHeader,
} from './verify-access-token.ts';

export interface BearerAuthOptions {
  /** The authorization server's issuer identifier; discovery is `${issuer}/.well-known/openid-configuration`. */
  readonly issuer: string;
  /** This API's resource identifier: tokens must carry it in `aud`. */
  readonly audience: string;
  /** Default: the protected resource metadata URL derived from `audience` (RFC 9728 §3.1). */
  readonly resourceMetadataUrl?: string;
  /** Default: the audience. */
  readonly realm?: string;
  /** Leeway for exp, nbf and iat. Default 5. */
  readonly clockToleranceSeconds?: number;
  /** Minimum time between two JWKS fetches caused by an unknown `kid`. Default 1. */
  readonly jwksCooldownSeconds?: number;
  /**
   * The longest the JWKS is used before it must be fetched again. The JWKS response's Cache-Control
   * max-age shortens it (the authorization server sends a few seconds, so a dropped key stops verifying
   * within seconds). Default 60.
   */
  readonly jwksCacheMaxAgeSeconds?: number;
  /**
   * Verified tokens kept in memory so a repeated token skips the signature check; entries expire with
   * their token and are dropped when their key leaves the JWKS. Never used on routes that check
   * revocation. Default 10,000; 0 turns it off.
   */
  readonly tokenCacheSize?: number;
  /** Timeout for each call to the authorization server (discovery, JWKS, introspection). Default 2. */
  readonly httpTimeoutSeconds?: number;
  /** After a failed discovery, answer 503 without calling the AS again for this long. Default 1. */
  readonly discoveryRetrySeconds?: number;
  /**
   * Restricts the accepted signing algorithms; by default every asymmetric one, each pinned by the
   * `alg` of the JWKS key the token names. Either way only asymmetric algorithms are kept.
   */
  readonly algorithms?: readonly string[];
  /** Credentials for the introspection endpoint; without them `checkRevocation()` does nothing. */
  readonly introspection?: IntrospectionCredentials;
  readonly fetch?: typeof fetch;
  readonly logger?: AuthLogger;
}

export interface ProtectOptions {
  /** The scope the route requires; omit for "any valid token". */
  readonly scope?: string;
  /** Refuse tokens without an end user (client credentials). */
  readonly endUser?: boolean;
  /** Ask the AS whether the token was revoked (when introspection is configured). */
  readonly revocation?: boolean;
}

export interface BearerAuth {
  /** Verifies the bearer token and puts the result on `ctx.state.auth`. */
  readonly authenticate: Middleware;
  /** 403 insufficient_scope unless the token carries `scope`. Runs after `authenticate`. */
  requireScope(scope: string): Middleware;
  /** 403 access_denied for tokens issued to a client on its own behalf. Runs after `authenticate`. */
  requireEndUser(): Middleware;
  /** 401 invalid_token when introspection says the token is no longer active. Runs after `authenticate`. */
  checkRevocation(): Middleware;
  /** `authenticate` plus the checks asked for, as one middleware. */
  protect(options?: ProtectOptions): Middleware;
  /** Fetches discovery now (e.g. at start) instead of on the first request; false when the AS is down. */
  warmUp(): Promise<boolean>;
  readonly resourceMetadataUrl: string;
}

/** RFC 9728 §3.1: the well-known segment goes between the host and the resource's path. */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
  return new URL(`/.well-known/oauth-protected-resource${path}`, url.origin).href;
}

// The raw token is kept off ctx.state so that nothing logging or serialising the state can leak it.
const rawTokens = new WeakMap<Context, string>();

function readAuth(ctx: Context): AccessTokenAuth {
  const auth = (ctx.state as { auth?: AccessTokenAuth }).auth;
  if (auth === undefined) throw new Error('bearer auth: authenticate must run before this middleware');
  return auth;
}

/** The verified token of this request; throws when `authenticate` did not run (a wiring bug). */
export function getAuth(ctx: Context): AccessTokenAuth {
  return readAuth(ctx);
}

function compose(middleware: Middleware[]): Middleware {
  return function protectedRoute(ctx, next) {
    const run = (index: number): Promise<unknown> =>
      index === middleware.length
        ? Promise.resolve(next())
        : Promise.resolve((middleware[index] as Middleware)(ctx, () => run(index + 1)));
    return run(0);
  };
}

export function createBearerAuth(options: BearerAuthOptions): BearerAuth {
  const logger = options.logger ?? silentLogger;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const timeoutMs = (options.httpTimeoutSeconds ?? 2) * 1000;
  const resourceMetadataUrl = options.resourceMetadataUrl ?? protectedResourceMetadataUrl(options.audience);
  const challenge: ChallengeParameters = { realm: options.realm ?? options.audience, resourceMetadataUrl };
  const loadMetadata = createDiscoveryLoader({
    issuer: options.issuer,
    fetch: fetchImpl,
    timeoutMs,
    retryAfterMs: (options.discoveryRetrySeconds ?? 1) * 1000,
    algorithms: options.algorithms,
    logger,
  });

  let verifier: { metadata: object; verify: AccessTokenVerifier } | undefined;
  async function loadVerifier(): Promise<AccessTokenVerifier> {
    const metadata = await loadMetadata();
    if (verifier?.metadata !== metadata) {
      verifier = {
        metadata,
        verify: createAccessTokenVerifier(metadata, {
          audience: options.audience,
          clockToleranceSeconds: options.clockToleranceSeconds ?? 5,
          jwksCooldownSeconds: options.jwksCooldownSeconds ?? 1,
          jwksCacheMaxAgeSeconds: options.jwksCacheMaxAgeSeconds ?? 60,
          timeoutMs,
          fetch: fetchImpl,
          tokenCacheSize: options.tokenCacheSize ?? 10_000,
        }),
      };
    }
    return verifier.verify;
  }

  async function guard(ctx: Context, step: () => Promise<void>, next: Next): Promise<void> {
    try {
      await step();
    } catch (error) {
      if (!(error instanceof BearerAuthError)) throw error;
      if (error instanceof AuthorizationServerUnavailable) {
        logger.warn(
          { reason: error.description },
          'token check impossible: authorization server unavailable',
        );
      }
      respondWithBearerError(ctx, challenge, error);
      return;
    }
    await next();
  }

  /** Verifies the token; `useCache: false` for routes that check revocation (they never read the cache). */
  function authenticateWith(useCache: boolean): Middleware {
    return function authenticate(ctx, next) {
      return guard(
        ctx,
        async () => {
          const token = extractBearerToken(ctx);
          // Garbage is refused without asking the authorization server anything.
          if (verifier === undefined) readHeader(token);
          const verify = await loadVerifier();
          ctx.state.auth = await verify(token, { useCache });
          rawTokens.set(ctx, token);
        },
        next,
      );
    };
  }
  const authenticate = authenticateWith(true);

  function requireScope(scope: string): Middleware {
    return function requireScopeStep(ctx, next) {
      return guard(
        ctx,
        async () => {
          if (!readAuth(ctx).scopes.has(scope)) throw new InsufficientScope(scope);
        },
        next,
      );
    };
  }

  function requireEndUser(): Middleware {
    return function requireEndUserStep(ctx, next) {
      return guard(
        ctx,
        async () => {
          if (!readAuth(ctx).endUser) throw new EndUserRequired();
        },
        next,
      );
    };
  }

  const credentials = options.introspection;
  if (credentials === undefined) {
    logger.info({}, 'revocation checks are off: no introspection credentials configured');
  }

  function checkRevocation(): Middleware {
    if (credentials === undefined) {
      return function revocationCheckOff(_ctx, next) {
        return next();
      };
    }
    return function checkRevocationStep(ctx, next) {
      return guard(
        ctx,
        async () => {
          readAuth(ctx);
          const token = rawTokens.get(ctx);
          if (token === undefined)
            throw new Error('bearer auth: authenticate must run before checkRevocation');
          const metadata = await loadMetadata();
          if (metadata.introspectionEndpoint === undefined) {
            throw new AuthorizationServerUnavailable('the authorization server advertises no introspection');
          }
          const active = await introspectActive(metadata.introspectionEndpoint, token, credentials, {
            fetch: fetchImpl,
            timeoutMs,
          });
          if (!active) throw new InvalidToken('the access token is no longer active');
        },
        next,
      );
    };
  }

  function protect(protectOptions: ProtectOptions = {}): Middleware {
    const steps = [protectOptions.revocation ? authenticateWith(false) : authenticate];
    if (protectOptions.scope !== undefined) steps.push(requireScope(protectOptions.scope));
    if (protectOptions.endUser) steps.push(requireEndUser());
    if (protectOptions.revocation) steps.push(checkRevocation());
    return compose(steps);
  }

  async function warmUp(): Promise<boolean> {
    try {
      await loadVerifier();
      return true;
    } catch {
      return false;
    }
  }

  return {
    authenticate,
    requireScope,
    requireEndUser,
    checkRevocation,
    protect,
    warmUp,
    resourceMetadataUrl,
  };
}
