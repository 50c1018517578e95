/**
 * Authentication context classes (OIDC Core §2 `acr`) and methods (RFC 8176 `amr`). A client asks
 * for a second factor with `acr_values` (or an essential `acr` claim) naming MULTI_FACTOR_ACR.
 */
export const ACR = {
  /** A password alone. */
  password: 'urn:insurance-idp:acr:password',
  /** Two factors: the PAPE multi-factor policy URI, the value many relying parties already send. */
  multiFactor: 'http://schemas.openid.net/pape/policies/2007/06/multi-factor',
} as const;

/** RFC 8176 methods that are a second factor on top of a password. */
const SECOND_FACTOR_METHODS = new Set(['otp', 'hwk', 'swk']);

export function isMultiFactor(amr: readonly string[]): boolean {
  return amr.some((method) => SECOND_FACTOR_METHODS.has(method));
}

export function acrFor(amr: readonly string[]): string {
  return isMultiFactor(amr) ? ACR.multiFactor : ACR.password;
}

/** The login result handed to oidc-provider: it keeps amr and acr on the session and ID tokens. */
export function signInResult(accountId: string, amr: string[]) {
  return { login: { accountId, amr, acr: acrFor(amr), remember: true } };
}

/**
 * Whether the authorization request asks for a second factor: `acr_values` naming the multi-factor
 * class, or the `claims` parameter asking for it as the ID token's `acr` (OIDC Core §5.5.1.1).
 */
export function requestAsksForMfa(params: { acr_values?: unknown; claims?: unknown }): boolean {
  if (typeof params.acr_values === 'string' && params.acr_values.split(' ').includes(ACR.multiFactor))
    return true;
  if (typeof params.claims !== 'string') return false;
  try {
    const acr = (JSON.parse(params.claims) as { id_token?: { acr?: { value?: unknown; values?: unknown } } })
      ?.id_token?.acr;
    return (
      acr?.value === ACR.multiFactor || (Array.isArray(acr?.values) && acr.values.includes(ACR.multiFactor))
    );
  } catch {
    return false;
  }
}

/** Clients registered with `--require-mfa` (client metadata `require_mfa`). */
export function clientRequiresMfa(client: unknown): boolean {
  return (client as { require_mfa?: unknown } | undefined)?.require_mfa === true;
}
