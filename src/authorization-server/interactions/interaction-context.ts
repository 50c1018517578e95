import type { Next, ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import type { Interaction } from 'oidc-provider';
import type { ProviderHost } from '../provider/provider-host.ts';
import type { ReservedLogin } from '../rate-limit/login-throttle.ts';
import type { User } from '../storage/user-store.ts';
import type { FormState } from './form-body.ts';
import { PageError } from './page-errors.ts';

export interface InteractionState extends Partial<FormState> {
  provider: Provider;
  interaction: Interaction;
  client: { id: string; name: string; redirectUri: string | undefined };
  user?: User;
  /** The password check the login throttle allowed for this request. */
  loginReservation?: ReservedLogin;
  grantId?: string;
}

export type InteractionContext = ParameterizedContext<InteractionState> & { params: Record<string, string> };

/**
 * Loads the interaction the cookie points at (the provider binds it to this browser) and checks
 * it is the one in the URL, at the expected prompt. The provider is fetched per request: it is
 * rebuilt when keys or resources change.
 */
export function loadInteraction(host: ProviderHost, expected?: 'login' | 'consent') {
  return async function loadInteraction(ctx: InteractionContext, next: Next): Promise<void> {
    const provider = host.provider;
    const interaction = await provider.interactionDetails(ctx.req, ctx.res);
    if (interaction.uid !== ctx.params.uid) {
      throw new PageError(
        400,
        'interaction_mismatch',
        'This page belongs to an older sign-in. Go back to the app and start again.',
      );
    }
    if (expected && interaction.prompt.name !== expected) {
      throw new PageError(
        400,
        'unexpected_step',
        'This step of the sign-in is already done. Go back to the app and start again.',
      );
    }
    const clientId = String(interaction.params.client_id ?? '');
    const client = await provider.Client.find(clientId);
    if (!client)
      throw new PageError(
        400,
        'unknown_client',
        'The application that sent you here is no longer registered.',
      );
    const redirectUri = interaction.params.redirect_uri;
    ctx.state.provider = provider;
    ctx.state.interaction = interaction;
    ctx.state.client = {
      id: client.clientId,
      name: client.clientName ?? client.clientId,
      redirectUri: typeof redirectUri === 'string' ? redirectUri : undefined,
    };
    await next();
  };
}

/** Hands the result to oidc-provider and follows it back to the authorization endpoint. */
export async function finishInteraction(
  ctx: InteractionContext,
  result: Parameters<Provider['interactionResult']>[2],
  mergeWithLastSubmission: boolean,
): Promise<void> {
  const returnTo = await ctx.state.provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission,
  });
  ctx.set('Cache-Control', 'no-store');
  ctx.status = 303;
  ctx.redirect(returnTo);
}
