import type { Context, Next } from 'koa';
import { countThrottledSignIn } from '../observability/security-events.ts';
import type { LoginReservation, ReservedLogin } from '../rate-limit/login-throttle.ts';

/** Where a reserved check waits for its outcome during the request. */
export interface ReservedCheckState {
  loginReservation?: ReservedLogin;
}

type ReservingContext = Context & { state: ReservedCheckState };

/**
 * The one way a guessable check (a password, a second-factor code, a passkey, an authenticator
 * app's first code) is throttled: the check is reserved in the login backoff atomically *before* it runs, so
 * parallel requests get no more checks than the backoff allows (issue 9 #4), never
 * check-then-act. The steps after it run the check; a wrong answer spends the reservation with
 * `checkFailed`. Anything else (a right answer, a request that checked nothing, an error) gives it
 * back when the request ends, and the throttle puts back exactly the hold the reservation replaced.
 *
 * `reserve` picks the counters (`LoginThrottle.reserve` for a known account,
 * `reserveForAddress` when none is known yet); `refuse` answers a request the backoff holds back,
 * with `Retry-After`. Refusals are counted in the metrics, not appended to the audit trail (see
 * recordSignIn).
 */
export function reserveCheck<C extends ReservingContext>(
  reserve: (ctx: C) => Promise<LoginReservation>,
  refuse: (ctx: C, retryAfterSeconds: number) => Promise<void> | void,
) {
  return async function reserveCheck(ctx: C, next: Next): Promise<void> {
    const reservation = await reserve(ctx);
    if (!reservation.allowed) {
      countThrottledSignIn();
      return refuse(ctx, reservation.retryAfterSeconds);
    }
    ctx.state.loginReservation = reservation;
    try {
      await next();
    } finally {
      const unspent = ctx.state.loginReservation;
      ctx.state.loginReservation = undefined;
      await unspent?.release().catch(() => {});
    }
  };
}

/**
 * The reserved check ran and the answer was wrong: the reservation stays counted as a failure (it
 * is not given back). Returns the wait now imposed (0: none).
 */
export async function checkFailed(ctx: ReservingContext): Promise<number> {
  const reservation = ctx.state.loginReservation;
  if (!reservation) throw new Error('checkFailed without a reserved check (reserveCheck must run first)');
  ctx.state.loginReservation = undefined;
  return reservation.failed();
}
