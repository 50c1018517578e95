import { type Clock, systemClock } from '../../shared/clock.ts';
import type { Store } from '../storage/store.ts';
import { normalizeEmail } from '../storage/user-store.ts';
import { addressBucket } from './address-bucket.ts';
import { type CounterRule, createFailureCounters, type FailureCounters } from './failure-backoff.ts';
import { type BackoffPolicy, KNOWN_ADDRESS_SECONDS, LOGIN_LIMITS } from './limits.ts';

export interface LoginAttempt {
  email: string;
  ip: string;
}

/** A check the throttle allowed; exactly one of its outcomes is reported afterwards. */
export interface ReservedLogin {
  allowed: true;
  /** The password (code, passkey) was wrong; returns the wait now imposed on this address (0: none). */
  failed(): Promise<number>;
  /**
   * The attempt is no failure: the password was right, or no check ran (the server was busy or
   * failed). Undoes exactly what the reservation did, its hold included, so a right password never
   * holds back the next step. The sign-in as a whole succeeds with `LoginThrottle.succeeded`,
   * after every factor.
   */
  release(): Promise<void>;
}

export type LoginReservation = ReservedLogin | { allowed: false; retryAfterSeconds: number };

/** While an account is under attack, addresses it has not signed in from get no free failures. */
const STRANGER_POLICY: BackoffPolicy = {
  ...LOGIN_LIMITS.accountFromIp,
  freeFailures: 0,
  firstDelaySeconds: LOGIN_LIMITS.account.firstDelaySeconds,
  maxDelaySeconds: LOGIN_LIMITS.account.maxDelaySeconds,
};

/**
 * Failed sign-ins, counted per account as tried from one address, per address, and per account
 * from anywhere (limits.ts). Only counters that the attempt's own address drives can refuse it, so
 * a correct password is never refused because strangers elsewhere failed: the per-account count
 * only takes the free failures away from addresses the account has not signed in from.
 *
 * Each attempt is reserved atomically before its password is hashed (issue 9 #4): the per-address
 * counters share one Redis Cluster slot (their hash tag is the address bucket), so one script
 * checks and charges both. Account keys are the email's keyed hash whether or not such a user
 * exists, so throttling says nothing about which accounts exist.
 */
export class LoginThrottle {
  readonly #store: Store;
  readonly #counters: FailureCounters;
  readonly #now: Clock;

  constructor(store: Store, clock: Clock = systemClock) {
    this.#store = store;
    this.#counters = createFailureCounters(store.kv);
    this.#now = clock;
  }

  /** The address's own counter, and the hash slot every per-address counter of it shares. */
  #addressRule(ip: string) {
    const { box, keys } = this.#store;
    const bucket = addressBucket(ip);
    const slot = `${keys.rateLimit('login')}:{${box.hashId('login-address', bucket)}}`;
    const address: CounterRule = { key: `${slot}:address`, policy: LOGIN_LIMITS.ip };
    return { bucket, slot, address };
  }

  #rules({ email, ip }: LoginAttempt) {
    const { box, keys } = this.#store;
    const account = keys.emailHash(normalizeEmail(email));
    const { bucket, slot, address } = this.#addressRule(ip);
    const accountFromAddress = (underAttack: boolean): CounterRule => ({
      key: `${slot}:account:${box.hashId('login-account-address', `${account}\0${bucket}`)}`,
      policy: LOGIN_LIMITS.accountFromIp,
      strangerPolicy: underAttack ? STRANGER_POLICY : LOGIN_LIMITS.accountFromIp,
    });
    const anywhere: CounterRule = {
      key: `${keys.rateLimit('login')}:account:${account}`,
      policy: LOGIN_LIMITS.account,
    };
    return { accountFromAddress, address, anywhere };
  }

  /**
   * Reserves one check for this attempt (a password, a code, a passkey as the second factor, an
   * authenticator app's first code), or says how long to wait first.
   */
  async reserve(attempt: LoginAttempt): Promise<LoginReservation> {
    const { charged, anywhere } = await this.#charged(attempt);
    return this.#reserve(charged, anywhere);
  }

  /**
   * Reserves one check that names no account before it runs (a passwordless passkey): charged to
   * the address's own counter, the one that also counts its wrong passwords for any account.
   */
  async reserveForAddress(ip: string): Promise<LoginReservation> {
    return this.#reserve([this.#addressRule(ip).address]);
  }

  async #reserve(charged: CounterRule[], anywhere?: CounterRule): Promise<LoginReservation> {
    const reservation = await this.#counters.reserve(charged, this.#now());
    if (!reservation.allowed) return reservation;
    return {
      allowed: true,
      failed: async () => {
        if (anywhere) await this.#counters.count(anywhere, this.#now());
        return reservation.waitIfFailedSeconds;
      },
      release: () => this.#counters.refund(charged, reservation, this.#now()),
    };
  }

  /**
   * The sign-in succeeded, every factor included: the account's failures from this address are
   * cleared and the address is known to the account. The address's own count keeps earlier
   * failures (one valid account must not launder them), and so does the count from anywhere.
   */
  async succeeded(attempt: LoginAttempt): Promise<void> {
    const { fromAddress } = await this.#charged(attempt, false);
    await this.#counters.markKnown(fromAddress.key, KNOWN_ADDRESS_SECONDS, this.#now());
  }

  async #charged(attempt: LoginAttempt, readAttack = true) {
    const { accountFromAddress, address, anywhere } = this.#rules(attempt);
    const underAttack =
      readAttack &&
      (await this.#counters.failures(anywhere, this.#now())) >= LOGIN_LIMITS.account.freeFailures;
    const fromAddress = accountFromAddress(underAttack);
    return { charged: [fromAddress, address], fromAddress, anywhere };
  }
}
