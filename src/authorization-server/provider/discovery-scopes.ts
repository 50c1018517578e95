import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ResourceStore } from '../storage/resource-store.ts';

/**
 * oidc-provider lists only the OpenID scopes it is configured with (API scopes are kept out of its
 * configuration on purpose, see configuration.ts). Discovery should still name every scope a
 * client can ask for (RFC 8414 §2 scopes_supported), so the registered APIs' scopes are added,
 * read live like every other use of the resources.
 */
export function discoveryScopes(resources: ResourceStore) {
  return async function addResourceScopes(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
    await next();
    if (ctx.path !== '/.well-known/openid-configuration' || ctx.status !== 200) return;
    const body = ctx.body as { scopes_supported?: string[] } | undefined;
    if (!body || !Array.isArray(body.scopes_supported)) return;
    try {
      const apiScopes = (await resources.list()).flatMap((r) => r.scopes);
      body.scopes_supported = [...new Set([...body.scopes_supported, ...apiScopes])];
    } catch {
      // The store is away: the document stays valid with the OpenID scopes alone.
    }
  };
}
