import type { SealedBox } from '../../shared/sealing/index.ts';
import type { Kv } from './kv.ts';
import type { KeyNames } from './redis-keys.ts';

/** A registered passkey. Everything is sealed at rest, the credential id included. */
export interface Passkey {
  /** The credential id (base64url), as the authenticator returns it. */
  id: string;
  sub: string;
  /** COSE public key, base64url. */
  public_key: string;
  /** The signature counter last seen; a response at or below it is a cloned authenticator. */
  counter: number;
  transports: string[];
  /** 'multiDevice' (a synced passkey: amr swk) or 'singleDevice' (bound to hardware: amr hwk). */
  device_type: 'singleDevice' | 'multiDevice';
  created_at: string;
  last_used_at?: string;
}

/** Bounded retries of the compare-and-set on a passkey's counter (concurrent sign-ins). */
const MAX_CAS_ATTEMPTS = 8;

/**
 * Passkeys by credential id (sealed records), and per user a set of sealed credential ids for
 * listing them. Counter updates are compare-and-set on the sealed record, so two responses with
 * one counter value cannot both pass.
 */
export class PasskeyStore {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #box: SealedBox;

  constructor(kv: Kv, keys: KeyNames, box: SealedBox) {
    this.#kv = kv;
    this.#keys = keys;
    this.#box = box;
  }

  async add(passkey: Passkey): Promise<void> {
    const key = this.#keys.passkey(passkey.id);
    if (!(await this.#kv.compareAndSet(key, undefined, this.#box.sealJson(passkey, key)))) {
      throw new Error('this passkey is registered already');
    }
    const index = this.#keys.userPasskeys(passkey.sub);
    await this.#kv.addToSet(index, this.#box.seal(passkey.id, index));
  }

  async find(id: string): Promise<Passkey | undefined> {
    const key = this.#keys.passkey(id);
    const sealed = await this.#kv.get(key);
    return sealed ? this.#box.openJson<Passkey>(sealed, key) : undefined;
  }

  async listFor(sub: string): Promise<Passkey[]> {
    const index = this.#keys.userPasskeys(sub);
    const ids = (await this.#kv.setMembers(index)).map((member) => this.#box.open(member, index));
    const found = await Promise.all(ids.map((id) => this.find(id)));
    return found.filter((p): p is Passkey => p !== undefined && p.sub === sub);
  }

  /**
   * Moves the counter forward to `counter` when it is above the stored one; false when another
   * response got there first or the counter did not grow (a cloned authenticator).
   */
  async advanceCounter(id: string, counter: number, usedAt: string): Promise<boolean> {
    const key = this.#keys.passkey(id);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const sealed = await this.#kv.get(key);
      if (!sealed) return false;
      const passkey = this.#box.openJson<Passkey>(sealed, key);
      if ((counter > 0 || passkey.counter > 0) && counter <= passkey.counter) return false;
      const next = this.#box.sealJson({ ...passkey, counter, last_used_at: usedAt }, key);
      if (await this.#kv.compareAndSet(key, sealed, next)) return true;
    }
    return false;
  }

  /** Removes every passkey of a user (an admin reset, or the user's removal). */
  async removeAllFor(sub: string): Promise<number> {
    const index = this.#keys.userPasskeys(sub);
    const members = await this.#kv.setMembers(index);
    for (const member of members) {
      await this.#kv.del(this.#keys.passkey(this.#box.open(member, index)));
      await this.#kv.removeFromSet(index, member);
    }
    return members.length;
  }
}
