import type {
  AuthenticationResponseJSON,
  AuthenticatorTransport,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { NotFoundError } from '../../shared/errors.ts';
import type { Passkey } from '../storage/passkey-store.ts';
import type { Store } from '../storage/store.ts';
import { normalizeEmail, type User } from '../storage/user-store.ts';

/**
 * Loaded on the first passkey request, not at start: the library and its ASN.1 and COSE parsers
 * cost seconds of start-up on a busy machine that most requests never need.
 */
const webauthn = () => import('@simplewebauthn/server');

/** A challenge waits this long for the authenticator's answer. */
const CHALLENGE_TTL_SECONDS = 300;

export type PasskeyOutcome =
  | { ok: true; passkey: Passkey; method: 'hwk' | 'swk' }
  | {
      ok: false;
      reason: 'no_challenge' | 'unknown_credential' | 'wrong_user' | 'invalid' | 'cloned';
      /** The owner of the passkey the response named, when it is registered (for the audit trail). */
      sub?: string;
    };

/**
 * Passkeys (WebAuthn Level 2) through @simplewebauthn/server: discoverable credentials with user
 * verification required, so a passkey alone is two factors (the device and its PIN or biometric).
 * The relying party is the issuer's host; responses must come from the issuer's origin.
 */
export class PasskeyFactor {
  readonly #store: Store;
  readonly #rpID: string;
  readonly #origin: string;
  readonly #rpName: string;

  constructor(store: Store, issuer: string, rpName: string) {
    const url = new URL(issuer);
    this.#store = store;
    this.#rpID = url.hostname;
    this.#origin = url.origin;
    this.#rpName = rpName;
  }

  async registrationOptions(user: User): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await this.#store.passkeys.listFor(user.sub);
    const { generateRegistrationOptions } = await webauthn();
    const options = await generateRegistrationOptions({
      rpName: this.#rpName,
      rpID: this.#rpID,
      userName: user.email,
      userDisplayName: user.name ?? user.email,
      userID: new TextEncoder().encode(user.sub),
      attestationType: 'none',
      excludeCredentials: existing.map((p) => ({ id: p.id, transports: transportsOf(p) })),
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    });
    await this.#saveChallenge(`register\0${user.sub}`, options.challenge);
    return options;
  }

  async register(user: User, response: RegistrationResponseJSON): Promise<Passkey | undefined> {
    const challenge = await this.#takeChallenge(`register\0${user.sub}`);
    if (!challenge) return undefined;
    const { verifyRegistrationResponse } = await webauthn();
    const verified = await verifyRegistrationResponse({
      response,
      expectedChallenge: challenge,
      expectedOrigin: this.#origin,
      expectedRPID: this.#rpID,
      requireUserVerification: true,
    }).catch(() => undefined);
    if (!verified?.verified) return undefined;
    const { credential, credentialDeviceType } = verified.registrationInfo;
    const passkey: Passkey = {
      id: credential.id,
      sub: user.sub,
      public_key: Buffer.from(credential.publicKey).toString('base64url'),
      counter: credential.counter,
      transports: credential.transports ?? [],
      device_type: credentialDeviceType,
      created_at: new Date().toISOString(),
    };
    await this.#store.passkeys.add(passkey);
    return passkey;
  }

  /**
   * Options for signing in: with `sub`, that user's passkeys (the second factor); without, any
   * discoverable passkey for this site (passwordless).
   */
  async authenticationOptions(
    ceremony: string,
    sub?: string,
  ): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const allow = sub ? await this.#store.passkeys.listFor(sub) : [];
    const { generateAuthenticationOptions } = await webauthn();
    const options = await generateAuthenticationOptions({
      rpID: this.#rpID,
      userVerification: 'required',
      allowCredentials: allow.map((p) => ({ id: p.id, transports: transportsOf(p) })),
    });
    await this.#saveChallenge(`authenticate\0${ceremony}`, options.challenge);
    return options;
  }

  async authenticate(
    ceremony: string,
    response: AuthenticationResponseJSON,
    expectedSub?: string,
  ): Promise<PasskeyOutcome> {
    const challenge = await this.#takeChallenge(`authenticate\0${ceremony}`);
    if (!challenge) return { ok: false, reason: 'no_challenge' };
    const passkey =
      typeof response?.id === 'string' ? await this.#store.passkeys.find(response.id) : undefined;
    if (!passkey) return { ok: false, reason: 'unknown_credential' };
    const sub = passkey.sub;
    if (expectedSub && sub !== expectedSub) return { ok: false, reason: 'wrong_user', sub };
    const { verifyAuthenticationResponse } = await webauthn();
    let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
    try {
      verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.#origin,
        expectedRPID: this.#rpID,
        credential: {
          id: passkey.id,
          publicKey: Buffer.from(passkey.public_key, 'base64url'),
          counter: passkey.counter,
          transports: transportsOf(passkey),
        },
        requireUserVerification: true,
      });
    } catch (error) {
      return { ok: false, reason: /counter/i.test((error as Error).message) ? 'cloned' : 'invalid', sub };
    }
    if (!verified.verified) return { ok: false, reason: 'invalid', sub };
    const { newCounter } = verified.authenticationInfo;
    if (!(await this.#store.passkeys.advanceCounter(passkey.id, newCounter, new Date().toISOString())))
      return { ok: false, reason: 'cloned', sub };
    return { ok: true, passkey, method: passkey.device_type === 'multiDevice' ? 'swk' : 'hwk' };
  }

  async #saveChallenge(ceremony: string, challenge: string): Promise<void> {
    const key = this.#store.keys.webauthnChallenge(ceremony);
    await this.#store.kv.set(key, this.#store.box.seal(challenge, key), CHALLENGE_TTL_SECONDS);
  }

  /** The challenge, once: of two responses racing for it, only one gets it. */
  async #takeChallenge(ceremony: string): Promise<string | undefined> {
    const key = this.#store.keys.webauthnChallenge(ceremony);
    const sealed = await this.#store.kv.get(key);
    if (!sealed || sealed === 'spent') return undefined;
    if (!(await this.#store.kv.compareAndSet(key, sealed, 'spent'))) return undefined;
    await this.#store.kv.del(key);
    return this.#store.box.open(sealed, key);
  }
}

function transportsOf(passkey: Passkey): AuthenticatorTransport[] {
  return passkey.transports as AuthenticatorTransport[];
}

/**
 * An admin reset of a user's passkeys (the CLI's `users passkeys remove`, the admin API's
 * `DELETE /users/:email/passkeys`): the user can register new ones.
 */
export async function removePasskeysByEmail(
  store: Store,
  email: string,
): Promise<{ sub: string; email: string; passkeys_removed: number }> {
  const user = await store.users.findByEmail(email);
  if (!user) throw new NotFoundError(`no user ${normalizeEmail(email)}`);
  return { sub: user.sub, email: user.email, passkeys_removed: await store.passkeys.removeAllFor(user.sub) };
}
