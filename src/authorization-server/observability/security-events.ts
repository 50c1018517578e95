import { logins, rateLimitRefusals } from '../../shared/metrics.ts';
import type { AuditLog } from '../storage/audit-log.ts';

export type SignInOutcome = 'success' | 'failure' | 'throttled';

export interface SignIn {
  outcome: SignInOutcome;
  /**
   * The account's subject when known; else the email as typed (kept sealed, like every entry), or
   * `unknown` for a passkey no account registered.
   */
  account: string;
  /** The caller's address. */
  ip: string;
  /** What was checked: `pwd`, `otp`, `webauthn`... (RFC 8176 amr values). */
  method: string;
}

/**
 * A sign-in step's outcome: counted (oauth_logins_total) and appended to the audit trail without
 * holding up the page. Throttling is recorded when it starts (the failure that triggers it), not for
 * every refused attempt after, so a stranger cannot flood the trail.
 */
export function recordSignIn(audit: AuditLog, { outcome, account, ip, method }: SignIn): void {
  logins.inc({ outcome });
  if (outcome === 'throttled') rateLimitRefusals.inc({ limit: 'login' });
  audit.notify({
    actor: account,
    action: `signin.${outcome}`,
    target: account,
    source: ip,
    outcome: outcome === 'success' ? 'ok' : 'refused',
    details: { method },
  });
}

/** A sign-in refused by a throttle already in force: counted, not appended (see recordSignIn). */
export function countThrottledSignIn(): void {
  logins.inc({ outcome: 'throttled' });
  rateLimitRefusals.inc({ limit: 'login' });
}
