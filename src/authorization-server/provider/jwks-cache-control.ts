import type { KoaContextWithOIDC } from 'oidc-provider';
import { JWKS_MAX_AGE_SECONDS } from '../keys/signing-key-ring.ts';

/** Sets `Cache-Control: max-age` on the JWKS, whichever path variant oidc-provider's router matched. */
export async function jwksCacheControl(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  if (ctx.oidc?.route === 'jwks' && ctx.status === 200) {
    ctx.set('Cache-Control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`);
  }
}
