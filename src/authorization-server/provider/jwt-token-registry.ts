import { stringify as stringifyQuery } from 'node:querystring';
import { compactVerify, createLocalJWKSet, decodeProtectedHeader, type JWK } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { takeTokenBudget } from '../rate-limit/token-rate-limit.ts';
import { replaceBody, requestForm } from '../request-body.ts';
import type { JwtAccessTokenModel, JwtTokenStore } from '../storage/jwt-token-store.ts';
import type { KvWrite } from '../storage/kv.ts';
import type { KeyNames } from '../storage/redis-keys.ts';

/**
 * oidc-provider does not store JWT access tokens, so it can neither introspect nor revoke them
 * (it answers unsupported_token_type). SPEC needs both. Each JWT access token therefore gets a
 * registry record: the opaque-format payload stored under a reference only this server can compute
 * (a keyed hash of the jti). The introspection and revocation endpoints swap a JWT that verifies
 * against our keys for its reference before oidc-provider sees it; from there on the provider's
 * own logic applies (client authentication, grant checks, revokeByGrantId), and a revoked or
 * expired token has no record left, so it reads as inactive.
 */

/** Fields of a token model that make up its stored payload, the jti aside. */
const SKIPPED = new Set(['jti', 'format']);

interface TokenModel {
  jti: string;
  exp?: number;
  iat?: number;
  kind: string;
  adapter: {
    upsertTogether(id: string, payload: object, expiresIn: number, also: KvWrite[]): Promise<boolean>;
  };
  constructor: { IN_PAYLOAD: string[] };
  [field: string]: unknown;
}

/**
 * formats.customizers.jwt: records the token as it is issued, and counts it against its client's
 * `/token` budget in the same round trip.
 */
export function recordJwtAccessTokens(tokens: JwtTokenStore) {
  return async (ctx: KoaContextWithOIDC, token: unknown, jwt: { payload: Record<string, unknown> }) => {
    const model = token as TokenModel;
    const payload: Record<string, unknown> = {};
    for (const field of model.constructor.IN_PAYLOAD) {
      if (!SKIPPED.has(field) && model[field] !== undefined) payload[field] = model[field];
    }
    const exp = Number(jwt.payload.exp);
    const reference = tokens.reference(String(jwt.payload.jti));
    payload.jti = reference;
    payload.exp = exp;
    payload.iat = Number(jwt.payload.iat);
    const ttl = Math.max(1, exp - Math.floor(Date.now() / 1000));
    const kid = (model.resourceServer as { jwt?: { sign?: { kid?: string } } } | undefined)?.jwt?.sign?.kid;
    // The budget, the record and its index entry: one script call where Redis allows.
    const budget = takeTokenBudget(ctx.res, { refusable: model.kind === 'ClientCredentials' });
    const also: KvWrite[] = budget ? [budget.write] : [];
    if (kid) also.push(tokens.signedByWrite(kid, model.kind as JwtAccessTokenModel, reference, exp));
    if (!(await model.adapter.upsertTogether(reference, payload, ttl, also))) {
      // Only a take refuses: the budget was spent by parallel requests since the limiter's check.
      if (budget) await budget.refuse(ctx as never);
      throw new Error('the token registry refused a write without a budget to take');
    }
  };
}

function looksLikeJws(value: unknown): value is string {
  if (typeof value !== 'string' || value.split('.').length !== 3) return false;
  try {
    return Boolean(decodeProtectedHeader(value));
  } catch {
    return false;
  }
}

/**
 * Provider middleware that lets introspection and revocation take our JWT access tokens. A form
 * whose `token` is a JWT gets, before the provider reads it, the token's registry reference in its
 * place; a JWT that does not verify against our published keys gets a value that matches nothing
 * (inactive, and for revocation the 200 that RFC 7009 §2.2 asks for). No other endpoint here reads
 * a `token` parameter (token exchange is off), so the swap looks at no path: whatever spelling of
 * the endpoint the provider's router accepts (any case, a trailing slash), the provider itself
 * routes the request, and its route name says when an introspection answer gets the token's own
 * identifiers back.
 */
export function jwtTokenRegistryBridge(keys: KeyNames, publicJwks: JWK[]) {
  const keySet = createLocalJWKSet({ keys: publicJwks });
  return async function swapJwtForReference(ctx: KoaContextWithOIDC, next: () => Promise<void>) {
    const form =
      ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded') ? requestForm(ctx) : undefined;
    if (!form || !looksLikeJws(form.token)) return next();

    let claims: { jti?: unknown; sub?: unknown } = {};
    let jti: string | undefined;
    try {
      const { payload } = await compactVerify(form.token, keySet);
      claims = JSON.parse(new TextDecoder().decode(payload));
      if (typeof claims.jti === 'string') jti = claims.jti;
    } catch {
      // Not ours, tampered or malformed: it stays unknown.
    }
    form.token = jti ? keys.jwtReference(jti) : 'unknown-structured-token';
    replaceBody(ctx.req, Buffer.from(stringifyQuery(form)));
    await next();
    const route = (ctx as { oidc?: { route?: string } }).oidc?.route;
    if (route === 'introspection' && jti && (ctx.body as { active?: boolean } | undefined)?.active) {
      // The stored record is keyed by the reference; report the token's own identifiers.
      Object.assign(ctx.body as Record<string, unknown>, { jti, sub: claims.sub });
    }
  };
}
