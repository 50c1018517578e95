import type { Next } from 'koa';
import { recordSignIn } from '../observability/security-events.ts';
import type { LoginThrottle } from '../rate-limit/login-throttle.ts';
import {
  clientRequiresMfa,
  isMultiFactor,
  requestAsksForMfa,
  signInResult,
} from '../second-factor/authentication-context.ts';
import { TOTP_CODE } from '../second-factor/totp.ts';
import type { CodeCheck, TotpFactor } from '../second-factor/totp-factor.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/user-store.ts';
import { finishInteraction, type InteractionContext } from './interaction-context.ts';
import { waitText } from './login.ts';
import { PageError } from './page-errors.ts';
import { checkFailed, reserveCheck } from './reserved-check.ts';
import { setPageHeaders } from './security-headers.ts';
import type { Views } from './views.ts';

/** A sign-in between its password and its second factor, kept per interaction. */
export interface PendingSignIn {
  accountId: string;
  email: string;
  /** The methods already passed (RFC 8176), e.g. ["pwd"]. */
  amr: string[];
  /** Forced enrolment: the secret on the page, waiting for its first code. */
  enrolment?: { secret: string };
  /** The second factor passed; only "continue" is left (after the recovery codes were shown). */
  passed?: boolean;
}

/** Reasons of the login prompt that only a second factor answers (the session has the password). */
const STEP_UP_REASONS = new Set(['mfa_required', 'essential_acr', 'essential_acrs']);

const INVALID_CODE = 'That code did not work. Enter the code your app shows now; each code works once.';
const MISSING_CODE = 'Enter the code from your authenticator app.';
/** Of two confirmations of an enrolment, the second: the app enrolled first stays. */
export const ALREADY_ENROLLED =
  'An authenticator app is already turned on for this account, so this one was not added. Sign in with the app you set up first.';

export interface SecondFactorDeps {
  views: Views;
  store: Store;
  throttle: LoginThrottle;
  totp: TotpFactor;
}

/** Pending sign-ins in the store, sealed, living no longer than their interaction. */
export class PendingSignIns {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  async get(uid: string): Promise<PendingSignIn | undefined> {
    const key = this.#store.keys.pendingSignIn(uid);
    const record = await this.#store.kv.getRecord(key);
    return record ? this.#store.box.openJson<PendingSignIn>(record.sealed, key) : undefined;
  }

  async save(uid: string, state: PendingSignIn, expiresAt: number): Promise<void> {
    const key = this.#store.keys.pendingSignIn(uid);
    const ttl = Math.max(1, expiresAt - Math.floor(Date.now() / 1000));
    await this.#store.kv.putRecord(key, this.#store.box.sealJson(state, key), ttl);
  }

  async delete(uid: string): Promise<void> {
    await this.#store.kv.del(this.#store.keys.pendingSignIn(uid));
  }
}

/**
 * The second step of sign-in: after the password, a code from the authenticator app (or a
 * recovery code); or, when the request demands two factors and the account has none, enrolment
 * of an authenticator app first. Plain forms: it works with JavaScript off.
 */
export function secondFactor({ views, store, throttle, totp }: SecondFactorDeps) {
  const pending = new PendingSignIns(store);

  async function mfaDemanded(ctx: InteractionContext): Promise<boolean> {
    const { interaction, provider, client } = ctx.state;
    if (requestAsksForMfa(interaction.params)) return true;
    return clientRequiresMfa(await provider.Client.find(client.id));
  }

  /** Whether the user must pass a second factor before the sign-in completes. */
  async function required(ctx: InteractionContext, user: User): Promise<boolean> {
    return user.totp !== undefined || (await hasPasskeys(user)) || (await mfaDemanded(ctx));
  }

  async function hasPasskeys(user: User): Promise<boolean> {
    return (await store.passkeys.listFor(user.sub)).length > 0;
  }

  /** Records the first factor and sends the browser to the second-factor page. */
  async function begin(ctx: InteractionContext, user: User, amr: string[]): Promise<void> {
    const { interaction } = ctx.state;
    await pending.save(interaction.uid, { accountId: user.sub, email: user.email, amr }, interaction.exp);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(`/interaction/${interaction.uid}`);
  }

  async function render(
    ctx: InteractionContext,
    state: PendingSignIn,
    page: { error?: string; status?: number } = {},
  ): Promise<void> {
    const { interaction, client } = ctx.state;
    const user = await store.users.findBySub(state.accountId);
    if (!user) throw new PageError(400, 'account_gone', 'This account no longer exists.');
    const passkeyUrl = (await hasPasskeys(user)) ? `/interaction/${interaction.uid}/passkey` : undefined;
    if (!user.totp && passkeyUrl) {
      // Passkeys are this account's only second factor.
      ctx.status = 303;
      ctx.redirect(passkeyUrl);
      return;
    }
    setPageHeaders(ctx, [client.redirectUri]);
    ctx.status = page.status ?? 200;
    ctx.type = 'html';
    if (user.totp) {
      ctx.body = views.render('second-factor', {
        title: 'Enter your code',
        uid: interaction.uid,
        clientName: client.name,
        email: user.email,
        error: page.error,
        passkeyUrl,
      });
      return;
    }
    // Two factors are demanded and the account has none yet: enrol an authenticator app now.
    if (!state.enrolment) {
      state.enrolment = { secret: totp.draft(user.email).secret };
      await pending.save(interaction.uid, state, interaction.exp);
    }
    ctx.body = views.render('totp-enrol', {
      title: 'Set up your authenticator app',
      uid: interaction.uid,
      clientName: client.name,
      action: `/interaction/${interaction.uid}/totp-enrolment`,
      ...(await enrolmentPage(totp, user.email, state.enrolment.secret)),
      error: page.error,
    });
  }

  /**
   * GET /interaction/:uid at the login prompt: the second-factor page when the password is done;
   * straight to it when the session holds a password sign-in and only a second factor is missing
   * (step-up); else the login page.
   */
  async function showLoginStep(ctx: InteractionContext, renderLogin: () => void): Promise<void> {
    const { interaction } = ctx.state;
    const state = await pending.get(interaction.uid);
    if (state) return render(ctx, state);
    const session = interaction.session;
    const reasons = interaction.prompt.reasons;
    if (session?.accountId && reasons.length > 0 && reasons.every((r) => STEP_UP_REASONS.has(r))) {
      const user = await store.users.findBySub(session.accountId);
      const amr = (session as { amr?: string[] }).amr ?? [];
      if (user && amr.includes('pwd') && !isMultiFactor(amr)) {
        const stepUp: PendingSignIn = { accountId: user.sub, email: user.email, amr: ['pwd'] };
        await pending.save(interaction.uid, stepUp, interaction.exp);
        return render(ctx, stepUp);
      }
    }
    renderLogin();
  }

  async function loadPending(ctx: InteractionContext, next: Next): Promise<void> {
    const state = await pending.get(ctx.state.interaction.uid);
    if (!state)
      throw new PageError(
        400,
        'unexpected_step',
        'Sign in with your password first. Go back to the app and start again.',
      );
    (ctx.state as { pending?: PendingSignIn }).pending = state;
    await next();
  }

  function stateOf(ctx: InteractionContext): PendingSignIn {
    return (ctx.state as { pending?: PendingSignIn }).pending as PendingSignIn;
  }

  function attemptOf(ctx: InteractionContext) {
    return { email: stateOf(ctx).email, ip: ctx.ip };
  }

  /** The second step's outcome in the metrics and the audit trail (observability/security-events.ts). */
  function signInEvent(ctx: InteractionContext, outcome: 'success' | 'failure' | 'throttled'): void {
    const { accountId, amr } = stateOf(ctx);
    recordSignIn(store.audit, {
      outcome,
      account: accountId,
      ip: ctx.ip,
      method: [...amr, 'otp'].filter((m, i, all) => all.indexOf(m) === i).join(' '),
    });
  }

  async function refuse(ctx: InteractionContext, error: string, counts: boolean): Promise<void> {
    // A wrong code spends its reserved check as a failure; a missing one checked nothing.
    const wait = counts ? await checkFailed(ctx) : 0;
    if (counts) signInEvent(ctx, 'failure');
    if (wait > 0) signInEvent(ctx, 'throttled');
    if (wait > 0) return tooManyAttempts(ctx, wait);
    await render(ctx, stateOf(ctx), { error });
  }

  async function tooManyAttempts(ctx: InteractionContext, seconds: number): Promise<void> {
    ctx.set('Retry-After', String(seconds));
    await render(ctx, stateOf(ctx), {
      status: 429,
      error: `Too many unsuccessful sign-in attempts. For your security, try again in ${waitText(seconds)}.`,
    });
  }

  /**
   * Wrong codes count in the same backoff as wrong passwords (per account, per IP), and each check
   * is reserved atomically before the code is looked at, so parallel guesses get no more tries than
   * the backoff allows (issue 9 #4). A right code, a missing one or an error gives it back.
   */
  const reserveCodeCheck = reserveCheck(
    (ctx: InteractionContext) => throttle.reserve(attemptOf(ctx)),
    tooManyAttempts,
  );

  function codeOf(ctx: InteractionContext): string {
    return (ctx.state.form?.code ?? '').replace(/\s/g, '').slice(0, 64);
  }

  async function verifyCode(ctx: InteractionContext, next: Next): Promise<void> {
    const state = stateOf(ctx);
    const code = codeOf(ctx);
    if (!code) return refuse(ctx, MISSING_CODE, false);
    const user = await store.users.findBySub(state.accountId);
    if (!user?.totp)
      throw new PageError(400, 'unexpected_step', 'This step of the sign-in is not available.');
    const check: CodeCheck = TOTP_CODE.test(code)
      ? await totp.checkCode(user, code)
      : await totp.checkRecoveryCode(user, code);
    if (check !== 'accepted') return refuse(ctx, INVALID_CODE, true);
    state.amr = [...state.amr, 'otp'];
    await next();
  }

  /** Forced enrolment: the first code from the app proves it holds the secret. */
  async function confirmEnrolment(ctx: InteractionContext): Promise<void> {
    const state = stateOf(ctx);
    const { interaction } = ctx.state;
    if (!state.enrolment)
      throw new PageError(400, 'unexpected_step', 'This step of the sign-in is not available.');
    const code = codeOf(ctx);
    if (!code) return refuse(ctx, MISSING_CODE, false);
    const user = await store.users.findBySub(state.accountId);
    if (!user) throw new PageError(400, 'account_gone', 'This account no longer exists.');
    const candidate = { ...user, totp: { secret: state.enrolment.secret, enrolled_at: '' } };
    if ((await totp.checkCode(candidate, code)) !== 'accepted') return refuse(ctx, INVALID_CODE, true);
    const enrolled = await totp.enrolFirst(user, state.enrolment.secret);
    // Another confirmation (this page posted twice, or the account page) enrolled an app first.
    if (!enrolled) throw new PageError(409, 'already_enrolled', ALREADY_ENROLLED);
    const { recovery_codes } = enrolled;
    const passed: PendingSignIn = {
      ...state,
      enrolment: undefined,
      passed: true,
      amr: [...state.amr, 'otp'],
    };
    await pending.save(interaction.uid, passed, interaction.exp);
    setPageHeaders(ctx, [ctx.state.client.redirectUri]);
    ctx.type = 'html';
    ctx.body = views.render('recovery-codes', {
      title: 'Save your recovery codes',
      codes: recovery_codes,
      action: `/interaction/${interaction.uid}/second-factor/continue`,
    });
  }

  async function requirePassed(ctx: InteractionContext, next: Next): Promise<void> {
    if (!stateOf(ctx).passed) throw new PageError(400, 'unexpected_step', 'Enter your code first.');
    await next();
  }

  async function finishSignIn(ctx: InteractionContext): Promise<void> {
    const state = stateOf(ctx);
    await pending.delete(ctx.state.interaction.uid);
    await throttle.succeeded(attemptOf(ctx));
    signInEvent(ctx, 'success');
    await finishInteraction(ctx, signInResult(state.accountId, state.amr), false);
  }

  return {
    required,
    begin,
    showLoginStep,
    /** POST /interaction/:uid/second-factor, after loadInteraction('login') and parseForm. */
    codeSteps: [loadPending, reserveCodeCheck, verifyCode, finishSignIn],
    /** POST /interaction/:uid/totp-enrolment. */
    enrolmentSteps: [loadPending, reserveCodeCheck, confirmEnrolment],
    /** POST /interaction/:uid/second-factor/continue. */
    continueSteps: [loadPending, requirePassed, finishSignIn],
  };
}

export type SecondFactor = ReturnType<typeof secondFactor>;

/** The QR code (server-side SVG: no script needed) and the key as text, grouped for reading. */
export async function enrolmentPage(
  totp: TotpFactor,
  email: string,
  secret: string,
): Promise<{ qrSvg: string; secret: string }> {
  const uri = totp.uri(email, secret);
  // Loaded when an enrolment page is first shown, not at start.
  const { default: QRCode } = await import('qrcode');
  const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return { qrSvg, secret: secret.replace(/(.{4})/g, '$1 ').trim() };
}
