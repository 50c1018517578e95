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
  readonly #account: FailureBackoff;
  readonly #ip: FailureBackoff;

  constructor(store: Store) {
    this.#store = store;
    this.#account = new FailureBackoff(store, LOGIN_LIMITS.account);
    this.#ip = new FailureBackoff(store, LOGIN_LIMITS.ip);
  }

  #keys({ email, ip }: LoginAttempt): { account: string; ip: string } {
    return {
      account: this.#store.keys.emailHash(normalizeEmail(email)),
      ip: this.#store.box.hashId('login-ip', ip),
    };
  }

  /** Seconds before this attempt may be made; 0: now. */
  async retryAfter(attempt: LoginAttempt): Promise<number> {
    const keys = this.#keys(attempt);
    const waits = await Promise.all([this.#account.retryAfter(keys.account), this.#ip.retryAfter(keys.ip)]);
    return Math.max(...waits);
  }

  /** Records a failed attempt; returns the wait it now imposes (0 while failures are free). */
  async failed(attempt: LoginAttempt): Promise<number> {
    const keys = this.#keys(attempt);
    const waits = await Promise.all([this.#account.fail(keys.account), this.#ip.fail(keys.ip)]);
    return Math.max(...waits);
  }

  /** A success clears the account's failures; the IP's stay, or one valid account would launder them. */
  async succeeded(attempt: LoginAttempt): Promise<void> {
    await this.#account.reset(this.#keys(attempt).account);
  }
}
