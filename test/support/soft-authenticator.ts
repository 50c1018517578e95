import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import type { Passkey } from '../../src/authorization-server/storage/passkey-store.ts';

/**
 * A passkey authenticator in software (WebAuthn Level 2, ES256, user verified), for tests over
 * plain HTTP where no browser is driven: it owns one discoverable credential and answers
 * authentication challenges the way a platform authenticator does. Registration is skipped: the
 * test stores `passkeyFor(sub)` as the registered passkey.
 */
export class SoftAuthenticator {
  readonly credentialId = randomBytes(16).toString('base64url');
  readonly #origin: string;
  readonly #rpId: string;
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;
  #counter = 0;

  constructor(issuer: string) {
    const url = new URL(issuer);
    this.#origin = url.origin;
    this.#rpId = url.hostname;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#privateKey = privateKey;
    this.#publicKey = publicKey;
  }

  /** The record registration would have stored for this credential. */
  passkeyFor(sub: string): Passkey {
    return {
      id: this.credentialId,
      sub,
      public_key: this.#coseKey().toString('base64url'),
      counter: 0,
      transports: ['internal'],
      device_type: 'singleDevice',
      created_at: new Date().toISOString(),
    };
  }

  /**
   * An authentication response to `challenge` (from the options endpoint). `forged`: signed with
   * another key, as a guess without the credential's private key would be.
   */
  assert(challenge: string, options: { forged?: boolean; userHandle?: string } = {}) {
    this.#counter += 1;
    const clientDataJSON = Buffer.from(
      JSON.stringify({ type: 'webauthn.get', challenge, origin: this.#origin, crossOrigin: false }),
    );
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(this.#counter);
    const authenticatorData = Buffer.concat([
      createHash('sha256').update(this.#rpId).digest(),
      Buffer.from([0x05]), // user present, user verified
      counter,
    ]);
    const key = options.forged
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
      : this.#privateKey;
    const signed = Buffer.concat([authenticatorData, createHash('sha256').update(clientDataJSON).digest()]);
    return {
      id: this.credentialId,
      rawId: this.credentialId,
      type: 'public-key',
      response: {
        clientDataJSON: clientDataJSON.toString('base64url'),
        authenticatorData: authenticatorData.toString('base64url'),
        signature: sign('sha256', signed, key).toString('base64url'),
        ...(options.userHandle ? { userHandle: Buffer.from(options.userHandle).toString('base64url') } : {}),
      },
      clientExtensionResults: {},
    };
  }

  /** The public key as COSE_Key (RFC 9052 §7, EC2 P-256, ES256), CBOR-encoded by hand. */
  #coseKey(): Buffer {
    const jwk = this.#publicKey.export({ format: 'jwk' });
    const x = Buffer.from(jwk.x as string, 'base64url');
    const y = Buffer.from(jwk.y as string, 'base64url');
    return Buffer.concat([
      Buffer.from([0xa5]), // map(5)
      Buffer.from([0x01, 0x02]), // kty: EC2
      Buffer.from([0x03, 0x26]), // alg: -7 (ES256)
      Buffer.from([0x20, 0x01]), // crv: P-256
      Buffer.from([0x21, 0x58, 0x20]), // x: bytes(32)
      x,
      Buffer.from([0x22, 0x58, 0x20]), // y: bytes(32)
      y,
    ]);
  }
}
