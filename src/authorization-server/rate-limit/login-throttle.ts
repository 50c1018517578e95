import type { Store } from '../storage/store.ts';
import { normalizeEmail } from '../storage/user-store.ts';
import { FailureBackoff } from './failure-backoff.ts';
import { LOGIN_LIMITS } from './limits.ts';

export interface LoginAttempt {
  email: string;
  ip: string;
}

/**
 * Failed sign-ins, counted per account and per client IP. The account key is the email's keyed
 * hash whether or not such a user exists, so throttling says nothing about which accounts exist.
 */
export class LoginThrottle {
  readonly #store: Store;
  readonly #accountFromIp: FailureBackoff;
  readonly #account: FailureBackoff;
  readonly #ip: FailureBackoff;

  constructor(store: Store) {
    this.#store = store;
    this.#accountFromIp = new FailureBackoff(store, LOGIN_LIMITS.accountFromIp);
    this.#account = new FailureBackoff(store, LOGIN_LIMITS.account);
    this.#ip = new FailureBackoff(store, LOGIN_LIMITS.ip);
  }

  #counters({ email, ip }: LoginAttempt): [FailureBackoff, string][] {
    const account = this.#store.keys.emailHash(normalizeEmail(email));
    return [
      [this.#accountFromIp, this.#store.box.hashId('login-account-ip', `${account}\0${ip}`)],
      [this.#account, account],
      [this.#ip, this.#store.box.hashId('login-ip', ip)],
    ];
  }

  /** Seconds before this attempt may be made; 0: now. */
  async retryAfter(attempt: LoginAttempt): Promise<number> {
    const waits = await Promise.all(this.#counters(attempt).map(([counter, key]) => counter.retryAfter(key)));
    return Math.max(...waits);
  }

  /** Records a failed attempt; returns the wait it now imposes (0 while failures are free). */
  async failed(attempt: LoginAttempt): Promise<number> {
    const waits = await Promise.all(this.#counters(attempt).map(([counter, key]) => counter.fail(key)));
    return Math.max(...waits);
  }

  /** A success clears the account's failures; the IP's stay, or one valid account would launder them. */
  async succeeded(attempt: LoginAttempt): Promise<void> {
    const [fromIp, account] = this.#counters(attempt).slice(0, 2) as [FailureBackoff, string][];
    await Promise.all([fromIp, account].map(([counter, key]) => counter.reset(key)));
  }
}
