import { decodeJwt } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';

/**
 * RFC 6749 §5.1: the token response's `scope` is the scope of the access token issued.
 * oidc-provider reports the grant's scopes; with one audience per token (an API token carries only
 * that API's scopes, a userinfo token only OpenID scopes) that can name scopes the token does not
 * carry, so the response is corrected from the token itself.
 */
export async function tokenResponseScope(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  if (ctx.path !== '/token' || ctx.method !== 'POST' || ctx.status !== 200) return;
  const body = ctx.body as { access_token?: unknown; scope?: unknown } | undefined;
  if (!body || typeof body.access_token !== 'string') return;
  const scope = await actualScope(ctx, body.access_token);
  if (scope) body.scope = scope;
  else delete body.scope;
}

async function actualScope(ctx: KoaContextWithOIDC, token: string): Promise<string | undefined> {
  if (token.split('.').length === 3) {
    const { scope } = decodeJwt(token);
    return typeof scope === 'string' ? scope : undefined;
  }
  const stored = await ctx.oidc.provider.AccessToken.find(token);
  return stored?.scope;
}
