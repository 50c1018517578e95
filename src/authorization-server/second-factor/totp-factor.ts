import { NotFoundError } from '../../shared/errors.ts';
import type { Store } from '../storage/store.ts';
import { normalizeEmail, type User } from '../storage/user-store.ts';
import { newRecoveryCodes, normalizeRecoveryCode } from './recovery-codes.ts';
import { newTotpSecret, otpauthUri, totpStep } from './totp.ts';

/** Shown as the account's issuer in authenticator apps. */
export const TOTP_ISSUER = 'Insurance Account';

export type CodeCheck = 'accepted' | 'invalid' | 'replayed';

export interface TotpEnrolment {
  secret: string;
  otpauth_uri: string;
  recovery_codes: string[];
}

/** Bounded retries of the compare-and-set on the last accepted step (concurrent codes). */
const MAX_CAS_ATTEMPTS = 8;

/**
 * The authenticator-app factor: enrolment, code checks that accept each code once (atomically in
 * the store, on every instance), and recovery codes that each work once.
 */
export class TotpFactor {
  readonly #store: Store;
  readonly #clock: () => number;

  /** `clock` (epoch ms) is injectable so tests compute codes for a time of their choosing. */
  constructor(store: Store, clock: () => number = Date.now) {
    this.#store = store;
    this.#clock = clock;
  }

  /** A fresh secret and its URI, not yet stored (the self-enrolment page confirms it first). */
  draft(email: string): { secret: string; otpauth_uri: string } {
    const secret = newTotpSecret();
    return { secret, otpauth_uri: otpauthUri(secret, email, TOTP_ISSUER) };
  }

  uri(email: string, secret: string): string {
    return otpauthUri(secret, email, TOTP_ISSUER);
  }

  /** Stores the secret for the user with ten new recovery codes; returns them (shown once). */
  async enrol(user: Pick<User, 'sub' | 'email'>, secret: string): Promise<TotpEnrolment> {
    const recovery_codes = newRecoveryCodes();
    await this.#store.users.setTotp(
      user.sub,
      secret,
      recovery_codes.map((code) => this.#recoveryHash(user.sub, code)),
    );
    return { secret, otpauth_uri: otpauthUri(secret, user.email, TOTP_ISSUER), recovery_codes };
  }

  /**
   * Self-enrolment (the account page, or a sign-in's forced enrolment): stores the secret only while
   * the user has no authenticator app, atomically, so of concurrent confirmations exactly one
   * enrols. Undefined for the others: the app enrolled first stays, and its recovery codes.
   */
  async enrolFirst(user: Pick<User, 'sub' | 'email'>, secret: string): Promise<TotpEnrolment | undefined> {
    const recovery_codes = newRecoveryCodes();
    const enrolled = await this.#store.users.enrolFirstTotp(
      user.sub,
      secret,
      recovery_codes.map((code) => this.#recoveryHash(user.sub, code)),
    );
    if (!enrolled) return undefined;
    return { secret, otpauth_uri: otpauthUri(secret, user.email, TOTP_ISSUER), recovery_codes };
  }

  /** Admin enrolment: a new secret for the user with that email, replacing any other. */
  async enrolByEmail(email: string): Promise<TotpEnrolment> {
    const user = await this.#store.users.findByEmail(email);
    if (!user) throw new NotFoundError(`no user ${normalizeEmail(email)}`);
    return this.enrol(user, newTotpSecret());
  }

  /**
   * Accepts a code for the user's secret when it matches within the drift window and its time step
   * is later than the last one accepted (RFC 6238 §5.2). The step moves forward by compare-and-set,
   * so of two concurrent requests with one code only one is accepted.
   */
  async checkCode(user: User, code: string, now = this.#clock()): Promise<CodeCheck> {
    if (!user.totp) return 'invalid';
    const step = totpStep(user.totp.secret, code, now);
    if (step === undefined) return 'invalid';
    const key = this.#store.keys.totpLastStep(user.sub);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const last = await this.#store.kv.get(key);
      if (last !== undefined && Number(last) >= step) return 'replayed';
      if (await this.#store.kv.compareAndSet(key, last, String(step))) return 'accepted';
    }
    return 'replayed';
  }

  /** Accepts one of the user's recovery codes once; a spent one is refused. */
  async checkRecoveryCode(user: User, input: string): Promise<CodeCheck> {
    const code = normalizeRecoveryCode(input);
    if (!code || !user.recovery_codes?.length) return 'invalid';
    const hash = this.#recoveryHash(user.sub, code);
    if (!user.recovery_codes.includes(hash)) return 'invalid';
    const spent = this.#store.keys.recoveryCodeSpent(hash);
    return (await this.#store.kv.compareAndSet(spent, undefined, new Date().toISOString()))
      ? 'accepted'
      : 'replayed';
  }

  /** How many of the user's recovery codes are left. */
  async recoveryCodesLeft(user: User): Promise<number> {
    const spent = await Promise.all(
      (user.recovery_codes ?? []).map((hash) => this.#store.kv.get(this.#store.keys.recoveryCodeSpent(hash))),
    );
    return spent.filter((at) => at === undefined).length;
  }

  #recoveryHash(sub: string, code: string): string {
    return this.#store.box.hashId('recovery-code', `${sub}\0${code}`);
  }
}
