/**
 * The limits table. Failed sign-ins are slowed with backoff rather than locked for good: a
 * permanent lock would let anyone shut a victim out by typing wrong passwords on purpose. Every
 * counter lives in the store (Redis), so all instances enforce one budget.
 */
export interface BackoffPolicy {
  /** Key namespace under `rate-limit:`. */
  name: string;
  /** Failures allowed before any delay. */
  freeFailures: number;
  /** Delay after the first failure past the free ones; it doubles with each further failure. */
  firstDelaySeconds: number;
  maxDelaySeconds: number;
  /** How long failures are remembered (from the first one). */
  memorySeconds: number;
}

export const LOGIN_LIMITS = {
  /**
   * Per account as tried from one address (the email's keyed hash with the client's address
   * bucket, whether or not the account exists): the everyday guard, and one that a stranger
   * elsewhere cannot use to hold the real person back.
   */
  accountFromIp: {
    name: 'login-account-ip',
    freeFailures: 5,
    firstDelaySeconds: 30,
    maxDelaySeconds: 15 * 60,
    memorySeconds: 24 * 3600,
  },
  /**
   * Per account from anywhere, against guessing spread over many addresses. Strangers can drive
   * it, so it never refuses anyone by itself: past its free failures the account is "under
   * attack", and each address it has not signed in from lately gets no free failures any more
   * (its first wrong guess holds it back for firstDelaySeconds, doubling up to maxDelaySeconds).
   * A correct password is always checked, and signs the person in.
   */
  account: {
    name: 'login-account',
    freeFailures: 50,
    firstDelaySeconds: 60,
    maxDelaySeconds: 15 * 60,
    memorySeconds: 24 * 3600,
  },
  /** Per client address (IPv6 by /64): catches one source spraying many accounts. */
  ip: {
    name: 'login-ip',
    freeFailures: 100,
    firstDelaySeconds: 60,
    maxDelaySeconds: 3600,
    memorySeconds: 3600,
  },
} as const satisfies Record<string, BackoffPolicy>;

/** An address an account signed in from keeps its free failures while the account is under attack. */
export const KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600;

/** `/token` requests per client are counted over this window (TOKEN_RATE_LIMIT per window). */
export const TOKEN_LIMIT_WINDOW_SECONDS = 60;

/**
 * Failed client authentications at `/token` per caller IP and claimed client, per window. Guessing a 256-bit client
 * secret is hopeless anyway; this caps how much work a caller without credentials can cause.
 */
export const TOKEN_AUTH_FAILURES_PER_CALLER = 120;

/**
 * Failed client authentications at `/token` per caller IP, whatever client ids it claims, per
 * window: one address cycling through made-up ids is stopped, and the per-(IP, id) counters it can
 * create are bounded by this number.
 */
export const TOKEN_AUTH_FAILURES_PER_ADDRESS = 200;
