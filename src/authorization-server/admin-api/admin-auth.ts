import { createLocalJWKSet, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import type { Context, Next } from 'koa';
import type { Config } from '../../config/config.ts';
import { NO_CREDENTIALS, respondWithBearerError } from '../../shared/bearer-error.ts';
import { publicJwk } from '../keys/signing-key-ring.ts';
import type { ProviderHost } from '../provider/provider-host.ts';
import type { Store } from '../storage/store.ts';

export const ADMIN_SCOPES = ['admin:keys', 'admin:clients', 'admin:users', 'admin:audit'] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

export interface AdminCaller {
  sub: string;
  clientId: string;
  scopes: Set<string>;
}

/** Refuses the request in RFC 6750's format (the one shared formatter); no code: no credentials sent. */
function challenge(
  ctx: Context,
  status: 400 | 401 | 403,
  error?: string,
  description?: string,
  scope?: string,
) {
  respondWithBearerError(
    ctx,
    { realm: 'admin' },
    {
      code: error ?? NO_CREDENTIALS,
      status,
      description: description ?? 'a bearer token is required',
      challenge: true,
      ...(scope === undefined ? {} : { scope }),
    },
  );
}

/**
 * The admin API accepts only this server's own JWT access tokens for the admin audience, verified
 * in-process against the live key ring (RFC 9068 §4), issued by the client-credentials grant (the
 * client acting for itself, never a signed-in person: SPEC, issue 9 #1, RFC 9700 §4.15), and only
 * while their registry record exists: a revoked admin token stops working at once.
 */
export function adminAuthentication(config: Config, store: Store, host: ProviderHost, audience: string) {
  let cached: { ring: unknown; keySet: ReturnType<typeof createLocalJWKSet> } | undefined;
  const keySet = () => {
    const ring = host.snapshot?.ring;
    if (!ring) throw new Error('keys not loaded');
    if (cached?.ring !== ring)
      cached = { ring, keySet: createLocalJWKSet({ keys: ring.keys.map((k) => publicJwk(k.jwk)) }) };
    return cached.keySet;
  };

  /** A valid token that is not an admin token: refused like an invalid one, and audited. */
  async function refuseEndUserToken(ctx: Context, payload: JWTPayload): Promise<void> {
    await store.audit.record({
      actor: `${String(payload.sub)} via ${String(payload.client_id)}`,
      action: 'admin-api.authenticate',
      target: 'end-user token',
      source: ctx.ip,
      outcome: 'refused',
    });
    challenge(ctx, 401, 'invalid_token', 'admin tokens come from the client_credentials grant only');
  }

  return async function authenticateAdmin(ctx: Context, next: Next) {
    const header = ctx.get('authorization');
    if (!header) return challenge(ctx, 401);
    const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
    if (!match?.[1]) return challenge(ctx, 400, 'invalid_request', 'malformed Authorization header');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(match[1], keySet(), {
        issuer: config.issuer,
        audience,
        typ: 'at+jwt',
        algorithms: [config.accessTokenAlg],
        requiredClaims: ['jti', 'exp', 'iat', 'sub', 'client_id'],
        clockTolerance: 5,
      }));
    } catch (error) {
      if (error instanceof joseErrors.JOSEError)
        return challenge(ctx, 401, 'invalid_token', 'the access token is invalid');
      throw error;
    }
    const model = await store.jwtTokens.liveModel(String(payload.jti));
    const clientCredentials = model === 'ClientCredentials';
    const endUser = model === 'AccessToken';
    // Both checks: the registry says which grant issued it, and `sub` must be the client itself.
    if (endUser || (clientCredentials && payload.sub !== payload.client_id))
      return refuseEndUserToken(ctx, payload);
    if (!clientCredentials) return challenge(ctx, 401, 'invalid_token', 'the token was revoked');
    ctx.state.admin = {
      sub: String(payload.sub),
      clientId: String(payload.client_id),
      scopes: new Set(
        String(payload.scope ?? '')
          .split(' ')
          .filter(Boolean),
      ),
    } satisfies AdminCaller;
    await next();
  };
}

/** Least privilege per route: each route names the one scope it needs. */
export function requireScope(scope: AdminScope) {
  return async function checkScope(ctx: Context, next: Next) {
    const caller = ctx.state.admin as AdminCaller | undefined;
    if (!caller?.scopes.has(scope)) {
      return challenge(ctx, 403, 'insufficient_scope', `this route needs ${scope}`, scope);
    }
    await next();
  };
}
