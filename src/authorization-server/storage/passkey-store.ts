import { ConflictError } from '../../shared/errors.ts';
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

  /**
   * Registers a passkey: indexed under its user first, then written only when its credential id is
   * new, then checked against a removal of the user's passkeys that ran meanwhile. The record and
   * the index are two keys (on Redis Cluster, two hash slots), so this order stands in for one
   * transaction: a failure or a crash at any step leaves at most an index entry with no record
   * (listing skips it, removal clears it), never a record that removal cannot find.
   */
  async add(passkey: Passkey): Promise<void> {
    const key = this.#keys.passkey(passkey.id);
    const index = this.#keys.userPasskeys(passkey.sub);
    const member = this.#box.seal(passkey.id, index);
    await this.#kv.addToSet(index, member);
    // Only a definite "exists already" takes the entry back: after an error the record may have
    // been written all the same (a lost reply), and then its entry must stay.
    if (!(await this.#kv.compareAndSet(key, undefined, this.#box.sealJson(passkey, key)))) {
      await this.#kv.removeFromSet(index, member);
      throw new ConflictError('this passkey is registered already');
    }
    // removeAllFor takes members out before its last delete of their records: a member gone now
    // means the removal may have missed the record written above, so this registration undoes itself.
    if (!(await this.#kv.setMembers(index)).includes(member)) {
      await this.#kv.del(key);
      throw new ConflictError("this user's passkeys were removed meanwhile; register it again");
    }
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

  /**
   * Removes every passkey of a user (an admin reset, or the user's removal). Each record is deleted
   * before and after its index entry: the first delete keeps a crash from leaving a usable passkey
   * that is no longer listed, the second catches a registration racing with this removal (`add`).
   */
  async removeAllFor(sub: string): Promise<number> {
    const index = this.#keys.userPasskeys(sub);
    const members = await this.#kv.setMembers(index);
    for (const member of members) {
      const key = this.#keys.passkey(this.#box.open(member, index));
      await this.#kv.del(key);
      await this.#kv.removeFromSet(index, member);
      await this.#kv.del(key);
    }
    return members.length;
  }
}
