import { constants, createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import { ExternalSigningKey } from 'oidc-provider';
import { derToP1363 } from '../../shared/ecdsa-signature.ts';
import { type KeyRing, providerJwks, type SigningAlg } from '../keys/signing-key-ring.ts';

/**
 * How each JWS algorithm maps onto node:crypto's one-shot sign (RFC 7518 §3, RFC 8037). The key goes
 * in bare wherever the algorithm allows (see shared/ecdsa-signature.ts for why); PS256 needs options.
 */
const SIGNERS: Record<SigningAlg, (data: Uint8Array, key: KeyObject) => Buffer> = {
  RS256: (data, key) => sign('sha256', data, key),
  PS256: (data, key) =>
    sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }),
  ES256: (data, key) => {
    const signature = derToP1363(sign('sha256', data, key), 32);
    if (!signature) throw new Error('node:crypto returned a malformed ECDSA signature');
    return signature;
  },
  EdDSA: (data, key) => sign(null, data, key),
};

/**
 * One signing key of the ring as oidc-provider's ExternalSigningKey: the private key is imported
 * into a node:crypto KeyObject once, when the provider is built, and every JWS is signed
 * synchronously on the request's own thread (jose's WebCrypto path imports per provider too, but
 * hops to the thread pool for each signature).
 */
class NodeCryptoSigningKey extends ExternalSigningKey {
  readonly #kid: string;
  readonly #alg: SigningAlg;
  readonly #private: KeyObject;
  readonly #public: KeyObject;
  readonly #sign: (data: Uint8Array, key: KeyObject) => Buffer;

  constructor(jwk: { kid: string; alg: SigningAlg } & Record<string, unknown>) {
    super();
    this.#kid = jwk.kid;
    this.#alg = jwk.alg;
    this.#private = createPrivateKey({ key: jwk as never, format: 'jwk' });
    this.#public = createPublicKey(this.#private);
    this.#sign = SIGNERS[jwk.alg];
  }

  override get kid(): string {
    return this.#kid;
  }

  override get alg(): string {
    return this.#alg;
  }

  override keyObject(): KeyObject {
    return this.#public;
  }

  override sign(data: Uint8Array): Buffer {
    return this.#sign(data, this.#private);
  }
}

/** The ring's keys for oidc-provider's `jwks`, in its order (current first), each a cached KeyObject. */
export function providerSigningKeys(ring: KeyRing): ExternalSigningKey[] {
  return providerJwks(ring).keys.map(
    (jwk) => new NodeCryptoSigningKey(jwk as { kid: string; alg: SigningAlg } & Record<string, unknown>),
  );
}
