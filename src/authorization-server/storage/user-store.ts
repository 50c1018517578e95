import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ConflictError, InvalidInputError, NotFoundError } from '../../shared/errors.ts';
import type { SealedBox } from '../../shared/sealing/index.ts';
import type { Kv } from './kv.ts';
import { hashPassword, needsRehash, verifyPasswordHash } from './password-hasher.ts';
import type { KeyNames } from './redis-keys.ts';

export { PASSWORD_HASH_OPTIONS } from './password-hasher.ts';

export interface User {
  sub: string;
  email: string;
  name?: string;
  email_verified: boolean;
  password_hash: string;
  /** The RFC 6238 secret (base32), when the user has an authenticator app enrolled. */
  totp?: { secret: string; enrolled_at: string };
  /** Keyed hashes of the unspent-or-spent recovery codes of the current enrolment. */
  recovery_codes?: string[];
  created_at: string;
  updated_at: string;
}

/** What admins and listings see: never the password hash, the TOTP secret or recovery codes. */
export type UserView = Omit<User, 'password_hash' | 'totp' | 'recovery_codes'> & { totp: boolean };

// Structural only (one @, something either side, no spaces): deliverability is not ours to judge,
// and internal domains without a dot (user@localhost) are real addresses.
const email = z
  .string()
  .max(254)
  .regex(/^[^\s@]+@[^\s@]+$/, 'a valid --email (name@domain)');
const password = z
  .string()
  .min(8, 'passwords have at least 8 characters (NIST SP 800-63B)')
  .max(1024, 'passwords have at most 1024 characters');
const name = z.string().trim().min(1).max(200).optional();

export function normalizeEmail(value: string): string {
  return value.trim().toLowerCase();
}

/** Bounded retries of a compare-and-set on a user record (other fields changing meanwhile). */
const MAX_CAS_ATTEMPTS = 8;

/** Users by subject (sealed), plus an index from the email's keyed hash to the subject. */
export class UserStore {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #box: SealedBox;
  #dummyHash: Promise<string> | undefined;

  constructor(kv: Kv, keys: KeyNames, box: SealedBox) {
    this.#kv = kv;
    this.#keys = keys;
    this.#box = box;
  }

  async add(input: { email: string; name?: string; password: string }): Promise<UserView> {
    const address = parse(email, normalizeEmail(input.email));
    const secret = parse(password, input.password);
    const now = new Date().toISOString();
    const user: User = {
      sub: `usr_${randomUUID()}`,
      email: address,
      ...(input.name ? { name: parse(name, input.name) } : {}),
      email_verified: false,
      password_hash: await hashPassword(secret),
      created_at: now,
      updated_at: now,
    };
    if (!(await this.#kv.hashSetIfAbsent(this.#keys.userEmails(), this.#keys.emailHash(address), user.sub))) {
      throw new ConflictError(`a user with email ${address} exists`);
    }
    await this.#write(user);
    return view(user);
  }

  async findBySub(sub: string): Promise<User | undefined> {
    const sealed = await this.#kv.hashGet(this.#keys.users(), sub);
    return sealed ? this.#box.openJson<User>(sealed, `${this.#keys.users()}/${sub}`) : undefined;
  }

  async findByEmail(address: string): Promise<User | undefined> {
    const sub = await this.#kv.hashGet(
      this.#keys.userEmails(),
      this.#keys.emailHash(normalizeEmail(address)),
    );
    return sub ? this.findBySub(sub) : undefined;
  }

  async list(): Promise<UserView[]> {
    const all = await this.#kv.hashGetAll(this.#keys.users());
    return Object.entries(all)
      .map(([sub, sealed]) => view(this.#box.openJson<User>(sealed, `${this.#keys.users()}/${sub}`)))
      .sort((a, b) => a.email.localeCompare(b.email));
  }

  async remove(address: string): Promise<void> {
    const user = await this.findByEmail(address);
    if (!user) throw new NotFoundError(`no user ${normalizeEmail(address)}`);
    await this.#kv.hashDelete(this.#keys.users(), user.sub);
    await this.#kv.hashDelete(this.#keys.userEmails(), this.#keys.emailHash(user.email));
  }

  async setPassword(address: string, newPassword: string): Promise<UserView> {
    const user = await this.findByEmail(address);
    if (!user) throw new NotFoundError(`no user ${normalizeEmail(address)}`);
    const secret = parse(password, newPassword);
    const updated = {
      ...user,
      password_hash: await hashPassword(secret),
      updated_at: new Date().toISOString(),
    };
    await this.#write(updated);
    return view(updated);
  }

  /** Enrols an authenticator app (replacing any other) with the hashes of its recovery codes. */
  async setTotp(sub: string, secret: string, recoveryCodeHashes: string[]): Promise<UserView> {
    const user = await this.findBySub(sub);
    if (!user) throw new NotFoundError('no such user');
    const updated = withTotp(user, secret, recoveryCodeHashes);
    await this.#write(updated);
    return view(updated);
  }

  /**
   * Enrols an authenticator app only while the user has none, atomically: the record is swapped by
   * compare-and-set on its sealed value, so of concurrent enrolments (two confirmations, the account
   * page and a sign-in's forced enrolment) exactly one wins. Undefined when one is enrolled already.
   */
  async enrolFirstTotp(
    sub: string,
    secret: string,
    recoveryCodeHashes: string[],
  ): Promise<UserView | undefined> {
    const field = `${this.#keys.users()}/${sub}`;
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const sealed = await this.#kv.hashGet(this.#keys.users(), sub);
      if (!sealed) throw new NotFoundError('no such user');
      const user = this.#box.openJson<User>(sealed, field);
      if (user.totp) return undefined;
      const updated = withTotp(user, secret, recoveryCodeHashes);
      const next = this.#box.sealJson(updated, field);
      if (await this.#kv.hashCompareAndSet(this.#keys.users(), sub, sealed, next)) return view(updated);
    }
    throw new ConflictError('the account changed while the authenticator app was being enrolled');
  }

  /** Removes the authenticator app and its recovery codes (an admin reset). */
  async removeTotp(address: string): Promise<UserView> {
    const user = await this.findByEmail(address);
    if (!user) throw new NotFoundError(`no user ${normalizeEmail(address)}`);
    const { totp: _totp, recovery_codes: _codes, ...rest } = user;
    const updated: User = { ...rest, updated_at: new Date().toISOString() };
    await this.#write(updated);
    return view(updated);
  }

  /**
   * The user when the password matches, else undefined. An unknown email costs the same argon2
   * verification as a wrong password, so timing does not tell which accounts exist.
   */
  async verifyPassword(address: string, candidate: string): Promise<User | undefined> {
    const user = await this.findByEmail(address);
    if (!user) {
      await verifyPasswordHash(await this.#dummy(), candidate);
      return undefined;
    }
    if (!(await verifyPasswordHash(user.password_hash, candidate))) return undefined;
    if (needsRehash(user.password_hash)) {
      const upgraded = { ...user, password_hash: await hashPassword(candidate, { forSignIn: true }) };
      await this.#write(upgraded);
      return upgraded;
    }
    return user;
  }

  #dummy(): Promise<string> {
    this.#dummyHash ??= hashPassword(`dummy-${randomUUID()}`).catch((error: unknown) => {
      this.#dummyHash = undefined; // busy now: try again next time, not never
      throw error;
    });
    return this.#dummyHash;
  }

  async #write(user: User): Promise<void> {
    await this.#kv.hashSet(
      this.#keys.users(),
      user.sub,
      this.#box.sealJson(user, `${this.#keys.users()}/${user.sub}`),
    );
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new InvalidInputError(result.error.issues.map((i) => i.message).join('; '));
  return result.data;
}

function view({ password_hash: _hash, totp, recovery_codes: _codes, ...rest }: User): UserView {
  return { ...rest, totp: totp !== undefined };
}

/** The user with an authenticator app enrolled now, and the hashes of its recovery codes. */
function withTotp(user: User, secret: string, recoveryCodeHashes: string[]): User {
  const now = new Date().toISOString();
  return { ...user, totp: { secret, enrolled_at: now }, recovery_codes: recoveryCodeHashes, updated_at: now };
}
