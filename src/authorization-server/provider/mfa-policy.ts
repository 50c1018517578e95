import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import {
  ACR,
  clientRequiresMfa,
  isMultiFactor,
  requestAsksForMfa,
} from '../second-factor/authentication-context.ts';

const { base, Check } = interactionPolicy;

/**
 * oidc-provider's default interaction policy plus one login check: a request that demands two
 * factors (acr_values naming the multi-factor class, or a client registered with --require-mfa)
 * goes to the login prompt unless the session's sign-in used two. max_age and prompt=login keep
 * their default checks, so they re-ask every factor (OIDC Core §3.1.2.1).
 */
export function interactionPolicyWithMfa() {
  const policy = base();
  const login = policy.get('login');
  if (!login) throw new Error('oidc-provider has no login prompt');
  login.checks.add(
    // prompt=none gets login_required (OIDC Core §3.1.2.6), as for any missing sign-in.
    new Check(
      'mfa_required',
      'multi-factor authentication is required',
      'login_required',
      (ctx: KoaContextWithOIDC) => {
        const { oidc } = ctx;
        if (!oidc.session?.accountId) return Check.NO_NEED_TO_PROMPT;
        const demanded = requestAsksForMfa(oidc.params ?? {}) || clientRequiresMfa(oidc.client);
        if (!demanded) return Check.NO_NEED_TO_PROMPT;
        const amr = (oidc.session.amr as string[] | undefined) ?? [];
        return oidc.session.acr === ACR.multiFactor && isMultiFactor(amr)
          ? Check.NO_NEED_TO_PROMPT
          : Check.REQUEST_PROMPT;
      },
    ),
  );
  return policy;
}
