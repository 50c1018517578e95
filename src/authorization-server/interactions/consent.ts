import type { Next } from 'koa';
import type { Grant } from 'oidc-provider';
import { approvalOf } from '../provider/accounts.ts';
import type { ConsentStore } from '../storage/consent-store.ts';
import type { UserStore } from '../storage/user-store.ts';
import { finishInteraction, type InteractionContext } from './interaction-context.ts';
import { PageError } from './page-errors.ts';
import { describeClaim, describeScope, type Permission } from './scope-descriptions.ts';
import { setPageHeaders } from './security-headers.ts';
import type { Views } from './views.ts';

export interface ConsentDeps {
  views: Views;
  users: UserStore;
  consents: ConsentStore;
}

/** What oidc-provider's consent prompt says is missing from the grant. */
interface MissingConsent {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

function missing(ctx: InteractionContext): MissingConsent {
  return ctx.state.interaction.prompt.details as MissingConsent;
}

/**
 * The permissions the page lists: scopes and claims never approved for this client; when the
 * client asked for the page itself (prompt=consent, as offline_access requires), all it asks for.
 */
function permissionsAsked(details: MissingConsent, requestedScope: unknown): Permission[] {
  const scopes = new Set([
    ...(details.missingOIDCScope ?? []),
    ...Object.values(details.missingResourceScopes ?? {}).flat(),
  ]);
  const claims = details.missingOIDCClaims ?? [];
  if (scopes.size === 0 && claims.length === 0 && typeof requestedScope === 'string') {
    for (const scope of requestedScope.split(' ').filter(Boolean)) scopes.add(scope);
  }
  return [...[...scopes].map(describeScope), ...claims.map(describeClaim)];
}

export async function renderConsent(ctx: InteractionContext, { views, users }: ConsentDeps): Promise<void> {
  const { interaction, client } = ctx.state;
  const details = missing(ctx);
  const account = interaction.session?.accountId
    ? await users.findBySub(interaction.session.accountId)
    : undefined;
  setPageHeaders(ctx, [client.redirectUri]);
  ctx.type = 'html';
  ctx.body = views.render('consent', {
    title: `Allow ${client.name}?`,
    uid: interaction.uid,
    clientName: client.name,
    accountEmail: account?.email ?? 'your account',
    permissions: permissionsAsked(details, interaction.params.scope),
    apis: Object.keys(details.missingResourceScopes ?? {}),
  });
}

/** POST /interaction/:uid/confirm, after loadInteraction('consent') and parseForm. */
export function consentSteps({ consents }: ConsentDeps) {
  async function grantConsent(ctx: InteractionContext, next: Next): Promise<void> {
    const { interaction, provider, client } = ctx.state;
    const accountId = interaction.session?.accountId;
    if (!accountId)
      throw new PageError(
        400,
        'not_signed_in',
        'You are not signed in any more. Go back to the app and start again.',
      );
    const grant: Grant | undefined = interaction.grantId
      ? await provider.Grant.find(interaction.grantId)
      : new provider.Grant({ accountId, clientId: client.id });
    if (!grant)
      throw new PageError(
        400,
        'grant_expired',
        'This approval has expired. Go back to the app and start again.',
      );
    const details = missing(ctx);
    if (details.missingOIDCScope?.length) grant.addOIDCScope(details.missingOIDCScope);
    if (details.missingOIDCClaims?.length) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes);
    }
    await grant.save();
    await consents.add(accountId, client.id, approvalOf(grant));
    ctx.state.grantId = grant.jti;
    await next();
  }

  async function finishConsent(ctx: InteractionContext): Promise<void> {
    await finishInteraction(ctx, { consent: { grantId: ctx.state.grantId } }, true);
  }

  return [grantConsent, finishConsent];
}

/** POST /interaction/:uid/abort: the person said no (or cancelled sign-in). */
export async function denyRequest(ctx: InteractionContext): Promise<void> {
  await finishInteraction(
    ctx,
    { error: 'access_denied', error_description: 'the user did not allow the request' },
    false,
  );
}
