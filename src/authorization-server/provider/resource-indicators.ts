import type { Client, KoaContextWithOIDC, ResourceServer } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { SigningAlg } from '../keys/signing-key-ring.ts';
import { clientResources, registeredScopes } from '../storage/client-store.ts';
import { OPENID_SCOPES, type ResourceStore } from '../storage/resource-store.ts';

export interface ResourcePolicyOptions {
  resources: ResourceStore;
  accessTokenTtl: number;
  /** The kid of the current key of an algorithm family in the provider's key snapshot. */
  signingKid: (alg: SigningAlg) => string | undefined;
}

/**
 * An API named an algorithm whose key family this instance has not loaded yet (the ring is
 * completed before the API is saved, so this lasts until the change feed reloads the provider).
 */
function keysLoading(alg: SigningAlg): Error {
  return Object.assign(new errors.TemporarilyUnavailable(`the ${alg} signing keys are loading; try again`), {
    status: 503,
    statusCode: 503,
    expose: true,
  });
}

function requestedScopes(ctx: KoaContextWithOIDC): Set<string> {
  const scope = (ctx.oidc.params?.scope as string | undefined) ?? '';
  return new Set(scope.split(' ').filter(Boolean));
}

/**
 * oidc-provider ignores scopes it has never heard of (OIDC Core §3.1.2.1) and strips them before
 * the request goes on; SPEC wants anything the client is not registered for refused with
 * invalid_scope. Both resource hooks run before that stripping, so the check lives here.
 */
function refuseUnregisteredScopes(ctx: KoaContextWithOIDC, client: Client): ReadonlySet<string> {
  const registered = registeredScopes(client);
  for (const scope of requestedScopes(ctx)) {
    if (!registered.has(scope)) throw new errors.InvalidScope('requested scope is not allowed', scope);
  }
  return registered;
}

const isOpenIdScope = (scope: string) => (OPENID_SCOPES as readonly string[]).includes(scope);

/** A refresh whose `scope` names OpenID scopes only asks for a userinfo token, not an API token. */
function asksForUserinfo(ctx: KoaContextWithOIDC): boolean {
  const scopes = requestedScopes(ctx);
  return scopes.size > 0 && [...scopes].every(isOpenIdScope);
}

/**
 * What a refresh may ask for, checked before the refresh token is spent: a `resource` the grant
 * holds (RFC 8707 §2.2), and a userinfo token only with `openid`.
 */
export function checkRefreshTarget(ctx: KoaContextWithOIDC): void {
  if (ctx.oidc.params?.grant_type !== 'refresh_token') return;
  const refreshToken = ctx.oidc.entities.RefreshToken as { resourceIndicators?: Set<string> } | undefined;
  const resource = ctx.oidc.params.resource;
  if (typeof resource === 'string' && !refreshToken?.resourceIndicators?.has(resource)) {
    throw new errors.InvalidTarget('the grant does not hold this resource');
  }
  if (resource === undefined && asksForUserinfo(ctx) && !requestedScopes(ctx).has('openid')) {
    throw new errors.InvalidScope('a token for userinfo needs the openid scope', 'openid');
  }
}

/**
 * RFC 8707 resource indicators as SPEC states them: a client may only target the resources it is
 * registered for; each token is for one audience; without `resource`, the client's default
 * (first) resource applies to client credentials, and to the authorization code flow when the
 * requested scopes include that resource's scopes. Anything else is `invalid_target`.
 */
export function resourceIndicators({ resources, accessTokenTtl, signingKid }: ResourcePolicyOptions) {
  return {
    enabled: true,

    async defaultResource(ctx: KoaContextWithOIDC, client: Client, oneOf?: readonly string[]) {
      refuseUnregisteredScopes(ctx, client);
      const [fallback] = clientResources(client);
      if (oneOf) return fallback && oneOf.includes(fallback) ? fallback : undefined;
      if (!fallback) return undefined;
      if (ctx.oidc.route === 'token' && ctx.oidc.params?.grant_type === 'client_credentials') return fallback;
      if (ctx.oidc.route === 'token' && ctx.oidc.params?.grant_type === 'refresh_token') return undefined;
      const resource = await resources.get(fallback);
      const wanted = requestedScopes(ctx);
      return resource?.scopes.some((s) => wanted.has(s)) ? fallback : undefined;
    },

    // The code exchange keeps the resource chosen at authorization. A refresh keeps the API it was
    // granted for (RFC 8707 §2.2: every common RP library refreshes without `resource`), unless its
    // `scope` names OpenID scopes only: that asks for a userinfo token. oidc-provider checks that
    // the scopes only narrow, and that a `resource` given is one the grant holds (invalid_target).
    useGrantedResource(ctx: KoaContextWithOIDC, model: { kind: string }) {
      return model.kind === 'AuthorizationCode' || !asksForUserinfo(ctx);
    },

    async getResourceServerInfo(
      ctx: KoaContextWithOIDC,
      indicator: string,
      client: Client,
    ): Promise<ResourceServer> {
      const registered = refuseUnregisteredScopes(ctx, client);
      const requested = requestedScopes(ctx);
      if (!clientResources(client).includes(indicator)) {
        throw new errors.InvalidTarget('the client is not allowed to request this resource');
      }
      const resource = await resources.get(indicator);
      if (!resource) throw new errors.InvalidTarget('unknown resource');
      const granted = resource.scopes.filter((s) => registered.has(s));
      if (granted.length === 0) {
        // An API token without an API scope would be refused by every resource server.
        throw new errors.InvalidScope(
          'the client holds no scope at this resource',
          resource.scopes.join(' '),
        );
      }
      if (requested.size === 0 && ctx.oidc.params?.grant_type === 'client_credentials') {
        // RFC 6749 §3.3: no scope requested, so the pre-defined default applies: everything the
        // client is registered for at this API. oidc-provider reads the scope after this call.
        (ctx.oidc.params as { scope?: string }).scope = granted.join(' ');
      } else if (requested.size > 0 && !granted.some((s) => requested.has(s))) {
        // An API token without an API scope would be refused by every resource server.
        throw new errors.InvalidScope('none of the requested scopes is for this resource', granted.join(' '));
      }
      const kid = signingKid(resource.alg);
      if (!kid) throw keysLoading(resource.alg);
      return {
        scope: granted.join(' '),
        audience: resource.uri,
        accessTokenTTL: resource.token_ttl ?? accessTokenTtl,
        accessTokenFormat: 'jwt',
        // The API's algorithm (RS256 unless it names another: RFC 9068 §2.1), its family's current key.
        jwt: { sign: { alg: resource.alg, kid } },
      } as ResourceServer;
    },
  };
}
