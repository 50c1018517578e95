import type { KoaContextWithOIDC } from 'oidc-provider';

/**
 * How long a resource server may keep the JWKS before asking again. Short, so a key dropped by an
 * emergency rotation (`keys rotate --now`) stops verifying at resource servers that honour
 * Cache-Control within seconds, not minutes; a JWKS fetch is cheap.
 */
export const JWKS_MAX_AGE_SECONDS = 5;

/** Sets `Cache-Control: max-age` on the JWKS, whichever path variant oidc-provider's router matched. */
export async function jwksCacheControl(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  if (ctx.oidc?.route === 'jwks' && ctx.status === 200) {
    ctx.set('Cache-Control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`);
  }
}
