import type { Next } from 'koa';
import { recordSignIn } from '../observability/security-events.ts';
import type { LoginAttempt, LoginThrottle } from '../rate-limit/login-throttle.ts';
import { signInResult } from '../second-factor/authentication-context.ts';
import type { AuditLog } from '../storage/audit-log.ts';
import { PasswordHashingBusyError } from '../storage/password-hasher.ts';
import type { User, UserStore } from '../storage/user-store.ts';
import { finishInteraction, type InteractionContext } from './interaction-context.ts';
import { checkFailed, reserveCheck } from './reserved-check.ts';
import type { SecondFactor } from './second-factor.ts';
import { setPageHeaders } from './security-headers.ts';
import type { Views } from './views.ts';

/** One message for an unknown email and a wrong password: the page never says which. */
export const INVALID_CREDENTIALS = 'The email address or password is incorrect.';
const MISSING_FIELDS = 'Enter your email address and your password.';
const BUSY = 'Many people are signing in right now. Try again in a moment.';

export interface LoginDeps {
  views: Views;
  users: UserStore;
  throttle: LoginThrottle;
  secondFactor: SecondFactor;
  audit: AuditLog;
}

interface LoginPage {
  /**
   * 200 when the form comes back with a message for the person (a 4xx on a page is a console
   * error in browsers); 429 when sign-in is throttled and 503 when too many passwords are being
   * checked, both with Retry-After.
   */
  status?: number;
  error?: string;
  email?: string;
}

export function renderLogin(ctx: InteractionContext, views: Views, page: LoginPage = {}): void {
  const { interaction, client } = ctx.state;
  setPageHeaders(ctx, [client.redirectUri]);
  ctx.status = page.status ?? 200;
  ctx.type = 'html';
  ctx.body = views.render('login', {
    title: 'Sign in',
    uid: interaction.uid,
    clientName: client.name,
    email:
      page.email ?? (typeof interaction.params.login_hint === 'string' ? interaction.params.login_hint : ''),
    error: page.error,
  });
}

/** Seconds as a person reads them: "45 seconds", "2 minutes". */
export function waitText(seconds: number): string {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

/** POST /interaction/:uid/login, after loadInteraction('login') and parseForm. */
export function loginSteps({ views, users, throttle, secondFactor, audit }: LoginDeps) {
  function attemptOf(ctx: InteractionContext): LoginAttempt {
    return { email: ctx.state.form?.email ?? '', ip: ctx.ip };
  }

  function tooManyAttempts(ctx: InteractionContext, seconds: number): void {
    ctx.set('Retry-After', String(seconds));
    renderLogin(ctx, views, {
      status: 429,
      email: ctx.state.form?.email,
      error: `Too many unsuccessful sign-in attempts. For your security, try again in ${waitText(seconds)}.`,
    });
  }

  async function readCredentials(ctx: InteractionContext, next: Next): Promise<void> {
    const { email = '', password = '' } = ctx.state.form ?? {};
    if (!email.trim() || !password || email.length > 254 || password.length > 1024) {
      renderLogin(ctx, views, { email: email.slice(0, 254), error: MISSING_FIELDS });
      return;
    }
    await next();
  }

  /**
   * Reserves the password check before any hashing, atomically across instances (issue 9 #4); a
   * right password, or a check that never ran, is given back when the request ends.
   */
  const reserveAttempt = reserveCheck(
    (ctx: InteractionContext) => throttle.reserve(attemptOf(ctx)),
    tooManyAttempts,
  );

  async function verifyPassword(ctx: InteractionContext, next: Next): Promise<void> {
    const { email = '', password = '' } = ctx.state.form ?? {};
    let user: Awaited<ReturnType<UserStore['verifyPassword']>>;
    try {
      user = await users.verifyPassword(email, password);
    } catch (error) {
      // No check ran: reserveAttempt gives the reservation back.
      if (!(error instanceof PasswordHashingBusyError)) throw error;
      ctx.set('Retry-After', String(error.retryAfterSeconds));
      renderLogin(ctx, views, { status: 503, email, error: BUSY });
      return;
    }
    if (!user) {
      const wait = await checkFailed(ctx);
      recordSignIn(audit, { outcome: 'failure', account: email, ip: ctx.ip, method: 'pwd' });
      if (wait > 0) recordSignIn(audit, { outcome: 'throttled', account: email, ip: ctx.ip, method: 'pwd' });
      if (wait > 0) tooManyAttempts(ctx, wait);
      else renderLogin(ctx, views, { email, error: INVALID_CREDENTIALS });
      return;
    }
    // A right password is no failure (reserveAttempt gives it back); the counters are cleared only
    // once every factor passed.
    ctx.state.user = user;
    await next();
  }

  async function finishLogin(ctx: InteractionContext): Promise<void> {
    const user = ctx.state.user as User;
    // Failures are cleared only once every factor passed: a known password must not reset the
    // backoff that wrong second-factor codes build up.
    if (await secondFactor.required(ctx, user)) return secondFactor.begin(ctx, user, ['pwd']);
    await throttle.succeeded(attemptOf(ctx));
    recordSignIn(audit, { outcome: 'success', account: user.sub, ip: ctx.ip, method: 'pwd' });
    await finishInteraction(ctx, signInResult(user.sub, ['pwd']), false);
  }

  return [readCredentials, reserveAttempt, verifyPassword, finishLogin];
}
