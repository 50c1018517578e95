import { type AdapterPayload, type Configuration, errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../../config/config.ts';
import { currentKid, type KeyRing } from '../keys/signing-key-ring.ts';
import { ACR } from '../second-factor/authentication-context.ts';
import { clientResources } from '../storage/client-store.ts';
import { createAdapterClass } from '../storage/oidc-adapter.ts';
import { OPENID_SCOPES } from '../storage/resource-store.ts';
import type { Store } from '../storage/store.ts';
import { findAccount, loadExistingGrant } from './accounts.ts';
import { recordJwtAccessTokens } from './jwt-token-registry.ts';
import { interactionPolicyWithMfa } from './mfa-policy.ts';
import { checkRefreshTarget, resourceIndicators } from './resource-indicators.ts';
import { providerSigningKeys } from './signing-keys.ts';

/** Pages oidc-provider renders itself (errors, logout); the interactions module supplies them. */
export interface ProviderPages {
  renderError: NonNullable<Configuration['renderError']>;
  logoutSource: (ctx: KoaContextWithOIDC, form: string) => Promise<void> | void;
  postLogoutSuccessSource: (ctx: KoaContextWithOIDC) => Promise<void> | void;
}

/** What a Provider is built from and fixed to: the signing keys. Everything else is read live. */
export interface ProviderSnapshot {
  ring: KeyRing;
}

export const TOKEN_TTL = {
  AuthorizationCode: 60,
  IdToken: 3600,
  Interaction: 600,
  Session: 14 * 24 * 3600,
  Grant: 14 * 24 * 3600,
  RefreshToken: 14 * 24 * 3600,
} as const;

function audiences(token: { aud?: unknown }): string[] {
  return Array.isArray(token.aud)
    ? (token.aud as string[])
    : typeof token.aud === 'string'
      ? [token.aud]
      : [];
}

/**
 * The whole oidc-provider configuration. Everything not set here is oidc-provider's secure default;
 * see its configuration reference for each key.
 */
export function providerConfiguration(
  config: Config,
  store: Store,
  snapshot: ProviderSnapshot,
  pages: ProviderPages,
): Configuration {
  const secureCookies = config.issuer.startsWith('https:');
  const cookie = { httpOnly: true, sameSite: 'lax', secure: secureCookies, signed: true } as const;

  return {
    adapter: createAdapterClass({
      kv: store.kv,
      keys: store.keys,
      box: store.box,
      findClient: (id) => store.clients.get(id) as Promise<AdapterPayload | undefined>,
    }),
    // Clients come from the store (the Client model), never from static configuration.
    clients: [],
    findAccount: findAccount(store.users),
    // Consent is remembered per account and client; first-party clients skip it (accounts.ts).
    loadExistingGrant: loadExistingGrant(store.consents),
    // Signed with node:crypto KeyObjects imported once per provider (signing-keys.ts).
    jwks: { keys: providerSigningKeys(snapshot.ring) },
    cookies: { keys: store.box.cookieKeys(), long: cookie, short: cookie },
    // OpenID scopes only: oidc-provider treats every scope listed here as an OpenID scope (userinfo
    // tokens would carry API scopes). API scopes come from the resources (resource-indicators.ts).
    scopes: [...OPENID_SCOPES],
    claims: {
      // Every ID token says how the person signed in (RFC 8176 amr), at which level (OIDC Core §2
      // acr) and when (auth_time). Userinfo has none of them: the account's claims() does not.
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      profile: ['name', 'updated_at'],
      email: ['email', 'email_verified'],
    },
    // Advertised in discovery (acr_values_supported); a client asks for two factors with
    // acr_values=<ACR.multiFactor> (mfa-policy.ts).
    acrValues: [ACR.password, ACR.multiFactor],
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      // OpenID Connect Core §15.1: RS256 is the mandatory ID token algorithm.
      id_token_signed_response_alg: 'RS256',
    },
    extraClientMetadata: {
      properties: ['resources', 'resource_scopes', 'first_party', 'require_mfa', 'created_at'],
    },
    enabledJWA: {
      // ID tokens are RS256 only (discovery says so); access tokens use their API's family, which
      // oidc-provider signs with from the same keystore whatever this list holds.
      idTokenSigningAlgValues: ['RS256'],
      clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    },
    // SPEC: logout revokes the grant, offline_access included (oidc-provider's default lets
    // offline_access grants outlive the session).
    expiresWithSession: () => true,
    features: {
      devInteractions: { enabled: false },
      // ExternalSigningKey (signing-keys.ts): synchronous node:crypto signatures with cached keys.
      externalSigningSupport: { enabled: true, ack: 'experimental-01' },
      // The resource servers here take bearer tokens only; a DPoP-bound token that they would
      // accept as a plain bearer token would be a false promise (RFC 9449 §7).
      dPoP: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // RFC 7662 §4: a client learns about its own tokens, and about tokens for the APIs
        // (resources) it is registered for, e.g. a resource server checking revocation.
        async allowedPolicy(ctx, client, token) {
          const entitled =
            client.clientId === token.clientId ||
            (client.clientAuthMethod !== 'none' &&
              clientResources(client).some((r) => audiences(token as { aud?: unknown }).includes(r)));
          if (!entitled) return false;
          // A token does not outlive its client or its user: once either is removed it reads inactive.
          const { clientId, accountId } = token as { clientId?: string; accountId?: string };
          const [issuedTo, user] = await Promise.all([
            clientId === client.clientId ? client : clientId && ctx.oidc.provider.Client.find(clientId),
            accountId ? store.users.findBySub(accountId) : true,
          ]);
          return Boolean(issuedTo && user);
        },
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: only the client a token was issued to may revoke it; anyone else is refused.
        allowedPolicy: (_ctx, client, token) => {
          if (client.clientId !== token.clientId) {
            throw new errors.UnauthorizedClient('the token was not issued to this client');
          }
          return true;
        },
      },
      userinfo: { enabled: true },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: pages.logoutSource,
        postLogoutSuccessSource: pages.postLogoutSuccessSource,
      },
      resourceIndicators: resourceIndicators({
        resources: store.resources,
        accessTokenTtl: config.accessTokenTtl,
        signingKid: (alg) => currentKid(snapshot.ring, alg),
      }),
    },
    // OAuth 2.1 §4.1.1: redirect_uri is always sent (and matched exactly), even by a client with a
    // single registered URI; so the token request must send it too.
    allowOmittingSingleRegisteredRedirectUri: false,
    // PKCE (RFC 7636) for every authorization code request; oidc-provider only knows S256.
    pkce: { required: () => true },
    formats: { customizers: { jwt: recordJwtAccessTokens(store.jwtTokens) as never } },
    // Refresh tokens always rotate. oidc-provider calls this after validating the refresh token and
    // before spending it: a refused target is checked here, so a mistaken request does not spend the
    // token (a later retry with it would otherwise read as reuse and revoke the grant).
    rotateRefreshToken(ctx) {
      checkRefreshTarget(ctx);
      return true;
    },
    // Registering a client for the refresh_token grant is the admin's consent to refresh tokens
    // (OIDC Core §11's "other conditions"): they are issued in the code flow whether or not the
    // request carried offline_access with prompt=consent. They rotate on every use and end with
    // the session (expiresWithSession), so logout still ends them.
    async issueRefreshToken(_ctx, client, code) {
      return client.grantTypeAllowed('refresh_token') && code.kind === 'AuthorizationCode';
    },
    ttl: {
      ...TOKEN_TTL,
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.accessTokenTtl,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.accessTokenTtl,
    },
    interactions: {
      policy: interactionPolicyWithMfa(),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    renderError: pages.renderError,
    responseTypes: ['code'],
    clockTolerance: 5,
  };
}
