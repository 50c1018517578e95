import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { type Clock, systemClock } from '../../shared/clock.ts';
import type { ProviderHost } from '../provider/provider-host.ts';
import type { LoginThrottle } from '../rate-limit/login-throttle.ts';
import { isMultiFactor } from '../second-factor/authentication-context.ts';
import type { PasskeyFactor } from '../second-factor/passkey-factor.ts';
import type { TotpFactor } from '../second-factor/totp-factor.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/user-store.ts';
import { parseForm } from './form-body.ts';
import { jsonErrors } from './json-body.ts';
import { PageError } from './page-errors.ts';
import { passkeyRegistration, setScriptPageHeaders } from './passkeys.ts';
import { checkFailed, type ReservedCheckState, reserveCheck } from './reserved-check.ts';
import { ALREADY_ENROLLED, enrolmentPage } from './second-factor.ts';
import { setPageHeaders } from './security-headers.ts';
import type { Views } from './views.ts';

export const ACCOUNT_SECURITY_PATH = '/account/security';

/** A secret on the enrolment page waits this long for its confirming code. */
const DRAFT_TTL_SECONDS = 600;

/**
 * Changing sign-in security (adding an authenticator app or a passkey) needs a session whose last
 * sign-in (`auth_time`) is at most this old: a session cookie left open, or stolen, cannot add a
 * factor of its own an hour later.
 */
export const RECENT_SIGN_IN_SECONDS = 10 * 60;

interface AccountState extends ReservedCheckState {
  user: User;
  amr: string[];
  form?: Record<string, string>;
}

type AccountContext = Context & { state: AccountState };

export interface AccountSecurityDeps {
  views: Views;
  store: Store;
  host: ProviderHost;
  issuer: string;
  throttle: LoginThrottle;
  totp: TotpFactor;
  passkeys: PasskeyFactor;
  renderFailures: (ctx: Context, next: Next) => Promise<void>;
  /** The clock of the throttle, TOTP checks and the recent sign-in rule (epoch ms). */
  clock?: Clock;
}

/**
 * The signed-in person's own security page: turn on an authenticator app (QR code and key, confirmed
 * with one code, recovery codes shown once). Signed in means oidc-provider's session cookie; to
 * change anything, the sign-in must be recent and, when the account already has a second factor,
 * must have used it.
 */
export function accountSecurity({
  views,
  store,
  host,
  issuer,
  throttle,
  totp,
  passkeys,
  renderFailures,
  clock = systemClock,
}: AccountSecurityDeps) {
  /**
   * Looking needs a session; changing needs a recent sign-in (RECENT_SIGN_IN_SECONDS), one that
   * used the second factor when the account has one, so a password alone cannot add factors to an
   * account protected by another, and an old session cannot add any.
   */
  const requireSession = (purpose: 'view' | 'change') =>
    async function requireSession(ctx: AccountContext, next: Next): Promise<void> {
      const session = await host.provider.Session.get(ctx as never);
      const user = session.accountId ? await store.users.findBySub(session.accountId) : undefined;
      if (!user)
        throw new PageError(
          401,
          'not_signed_in',
          'Sign in through one of your apps first, then come back to this page.',
        );
      const amr = (session.amr as string[] | undefined) ?? [];
      const hasSecondFactor = user.totp !== undefined || (await store.passkeys.listFor(user.sub)).length > 0;
      if (purpose === 'change' && hasSecondFactor && !isMultiFactor(amr))
        throw new PageError(
          403,
          'second_factor_needed',
          'Sign in again with your second factor to change these settings.',
        );
      if (purpose === 'change' && !signedInRecently(session.authTime()))
        throw new PageError(
          403,
          'recent_sign_in_needed',
          `For your security, sign in again to change these settings: your last sign-in was more than ${RECENT_SIGN_IN_SECONDS / 60} minutes ago.`,
        );
      ctx.state.user = user;
      ctx.state.amr = amr;
      await next();
    };

  /** `auth_time` (epoch seconds) is within RECENT_SIGN_IN_SECONDS of now. */
  function signedInRecently(authTime: number | undefined): boolean {
    return authTime !== undefined && clock() / 1000 - authTime <= RECENT_SIGN_IN_SECONDS;
  }

  /** Form posts come from our own pages: a browser names the page's origin (CSRF defence beside SameSite). */
  async function sameOrigin(ctx: AccountContext, next: Next): Promise<void> {
    const origin = ctx.get('origin');
    if (origin && origin !== new URL(issuer).origin)
      throw new PageError(403, 'cross_site', 'This form must be sent from this site.');
    await next();
  }

  async function draftSecret(user: User): Promise<string> {
    const key = store.keys.totpEnrolment(user.sub);
    const record = await store.kv.getRecord(key);
    if (record) return store.box.openJson<{ secret: string }>(record.sealed, key).secret;
    const { secret } = totp.draft(user.email);
    await store.kv.putRecord(key, store.box.sealJson({ secret }, key), DRAFT_TTL_SECONDS);
    return secret;
  }

  /** The overview: the authenticator app's state and the passkeys, with a button to add one. */
  async function overview(ctx: AccountContext): Promise<void> {
    const { user } = ctx.state;
    const registered = await store.passkeys.listFor(user.sub);
    setScriptPageHeaders(ctx);
    ctx.type = 'html';
    ctx.body = views.render('account-security', {
      title: 'Sign-in security',
      email: user.email,
      totpEnabled: user.totp !== undefined,
      recoveryCodesLeft: user.totp ? await totp.recoveryCodesLeft(user) : 0,
      passkeys: registered.map((p) => ({
        created: p.created_at.slice(0, 10),
        lastUsed: p.last_used_at?.slice(0, 10),
        synced: p.device_type === 'multiDevice',
      })),
    });
  }

  async function render(ctx: AccountContext, page: { error?: string; status?: number } = {}): Promise<void> {
    const { user } = ctx.state;
    if (user.totp) return overview(ctx);
    setPageHeaders(ctx);
    ctx.status = page.status ?? 200;
    ctx.type = 'html';
    ctx.body = views.render('totp-enrol', {
      title: 'Set up your authenticator app',
      action: `${ACCOUNT_SECURITY_PATH}/totp`,
      ...(await enrolmentPage(totp, user.email, await draftSecret(user))),
      error: page.error,
    });
  }

  /**
   * A confirming code is a guess at a 6-digit code, so it is reserved in the login backoff before
   * it is checked (the one reserveCheck, as sign-in codes are): parallel posts get no more checks
   * than the backoff allows.
   */
  const reserveConfirmCheck = reserveCheck(
    (ctx: AccountContext) => throttle.reserve({ email: ctx.state.user.email, ip: ctx.ip }),
    (ctx: AccountContext, seconds: number) => tooManyCodes(ctx, seconds),
  );

  async function tooManyCodes(ctx: AccountContext, seconds: number): Promise<void> {
    ctx.set('Retry-After', String(seconds));
    await render(ctx, { status: 429, error: 'Too many wrong codes. Try again later.' });
  }

  async function confirm(ctx: AccountContext): Promise<void> {
    const { user } = ctx.state;
    if (user.totp) throw new PageError(409, 'already_enrolled', ALREADY_ENROLLED);
    const code = (ctx.state.form?.code ?? '').replace(/\s/g, '').slice(0, 64);
    // Checks nothing, so charges nothing (reserveCheck gives the reservation back).
    if (!code) return render(ctx, { error: 'Enter the code your app shows now.' });
    const key = store.keys.totpEnrolment(user.sub);
    const record = await store.kv.getRecord(key);
    if (!record) return render(ctx, { error: 'That key expired. Scan the new code and enter its code.' });
    const { secret } = store.box.openJson<{ secret: string }>(record.sealed, key);
    const candidate = { ...user, totp: { secret, enrolled_at: '' } };
    if ((await totp.checkCode(candidate, code)) !== 'accepted') {
      const wait = await checkFailed(ctx);
      if (wait > 0) return tooManyCodes(ctx, wait);
      return render(ctx, { error: 'That code did not work. Enter the code your app shows now.' });
    }
    // Only while the account has no app: of parallel confirmations exactly one enrols.
    const enrolled = await totp.enrolFirst(user, secret);
    if (!enrolled) throw new PageError(409, 'already_enrolled', ALREADY_ENROLLED);
    await store.kv.del(key);
    setPageHeaders(ctx);
    ctx.type = 'html';
    ctx.body = views.render('recovery-codes', {
      title: 'Save your recovery codes',
      codes: enrolled.recovery_codes,
      continueHref: ACCOUNT_SECURITY_PATH,
    });
  }

  const router = new Router();
  router.get(ACCOUNT_SECURITY_PATH, renderFailures, requireSession('view'), (ctx) =>
    overview(ctx as AccountContext),
  );
  router.get(`${ACCOUNT_SECURITY_PATH}/totp`, renderFailures, requireSession('change'), (ctx) =>
    render(ctx as AccountContext),
  );
  const registration = passkeyRegistration(passkeys, issuer);
  router.post(
    `${ACCOUNT_SECURITY_PATH}/passkeys/options`,
    jsonErrors,
    requireSession('change'),
    ...registration.options,
  );
  router.post(
    `${ACCOUNT_SECURITY_PATH}/passkeys`,
    jsonErrors,
    requireSession('change'),
    ...registration.register,
  );
  router.post(
    `${ACCOUNT_SECURITY_PATH}/totp`,
    renderFailures,
    sameOrigin,
    requireSession('change'),
    parseForm,
    reserveConfirmCheck,
    confirm,
  );
  return router;
}
