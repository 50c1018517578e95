import type { Account, Client, Grant, KoaContextWithOIDC } from 'oidc-provider';
import type { Approval, ConsentRecord, ConsentStore } from '../storage/consent-store.ts';
import type { UserStore } from '../storage/user-store.ts';

/** oidc-provider's account lookup: standard claims for openid, profile and email. */
export function findAccount(users: UserStore) {
  return async (_ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined> => {
    const user = await users.findBySub(sub);
    if (!user) return undefined;
    return {
      accountId: user.sub,
      async claims() {
        return {
          sub: user.sub,
          email: user.email,
          email_verified: user.email_verified,
          ...(user.name ? { name: user.name } : {}),
          updated_at: Math.floor(Date.parse(user.updated_at) / 1000),
        };
      },
    };
  };
}

/** Claims every ID token carries whatever the grant says. */
const NON_REJECTABLE_CLAIMS = new Set(['sub', 'sid', 'auth_time', 'acr', 'amr', 'iss']);

/** What a grant holds, as an approval to remember. */
export function approvalOf(grant: Grant): Approval {
  const resources: Record<string, string[]> = {};
  for (const indicator of Object.keys(grant.resources ?? {})) {
    resources[indicator] = grant.getResourceScope(indicator).split(' ').filter(Boolean);
  }
  return {
    openid: grant.getOIDCScope().split(' ').filter(Boolean),
    claims: grant.getOIDCClaims(),
    resources,
  };
}

export function isFirstParty(client: Client): boolean {
  return (client as unknown as { first_party?: unknown }).first_party === true;
}

/**
 * oidc-provider's loadExistingGrant: the session's grant for the client as usual; first-party
 * clients get everything they asked for (they skip consent); other clients start from what the
 * user approved for them before, so only new scopes reach the consent page.
 */
export function loadExistingGrant(consents: ConsentStore) {
  return async (ctx: KoaContextWithOIDC): Promise<Grant | undefined> => {
    const { oidc } = ctx;
    const client = oidc.client as Client;
    const accountId = oidc.account?.accountId ?? oidc.session?.accountId;
    if (!accountId) return undefined;
    const grantId = oidc.result?.consent?.grantId || oidc.session?.grantIdFor(client.clientId);
    const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined;

    if (isFirstParty(client)) {
      const grant = existing ?? new oidc.provider.Grant({ accountId, clientId: client.clientId });
      grantEverythingRequested(ctx, grant);
      await grant.save();
      return grant;
    }
    if (existing) return existing;

    const remembered = await consents.get(accountId, client.clientId);
    if (!remembered) return undefined;
    const grant = new oidc.provider.Grant({ accountId, clientId: client.clientId });
    grantRemembered(ctx, grant, remembered);
    await grant.save();
    return grant;
  };
}

function requestedClaims(ctx: KoaContextWithOIDC): string[] {
  return [...ctx.oidc.requestParamClaims].filter((c) => !NON_REJECTABLE_CLAIMS.has(c));
}

function grantEverythingRequested(ctx: KoaContextWithOIDC, grant: Grant): void {
  const { oidc } = ctx;
  grant.addOIDCScope(oidc.requestParamOIDCScopes);
  const claims = requestedClaims(ctx);
  if (claims.length) grant.addOIDCClaims(claims);
  for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
    const scopes = [...oidc.requestParamScopes].filter((s) => server.scopes.has(s));
    if (scopes.length) grant.addResourceScope(indicator, scopes);
  }
}

/** Only what is both requested now and approved before: the grant never widens a request. */
function grantRemembered(ctx: KoaContextWithOIDC, grant: Grant, remembered: ConsentRecord): void {
  const { oidc } = ctx;
  const openid = new Set(remembered.openid);
  const scopes = [...oidc.requestParamOIDCScopes].filter((s) => openid.has(s));
  if (scopes.length) grant.addOIDCScope(scopes);
  const approvedClaims = new Set(remembered.claims);
  const claims = requestedClaims(ctx).filter((c) => approvedClaims.has(c));
  if (claims.length) grant.addOIDCClaims(claims);
  for (const indicator of Object.keys(oidc.resourceServers ?? {})) {
    const approved = new Set(remembered.resources[indicator] ?? []);
    const wanted = [...oidc.requestParamScopes].filter((s) => approved.has(s));
    if (wanted.length) grant.addResourceScope(indicator, wanted);
  }
}
