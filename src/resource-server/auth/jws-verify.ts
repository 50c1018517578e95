import { constants, type KeyObject, verify } from 'node:crypto';
import { ECDSA_COMPONENT_BYTES, p1363ToDer } from '../../shared/ecdsa-signature.ts';

/**
 * Synchronous JWS signature verification (RFC 7515, RFC 7518 §3) with node:crypto KeyObjects: no
 * WebCrypto promise and thread-pool hop per request. Only asymmetric algorithms exist here (RFC 8725
 * §3.1): `none` and HS* have no entry, so they can never verify.
 */
interface Algorithm {
  readonly hash: string | null;
  /** The key type the algorithm needs, and for EC the curve: a key of another type never verifies. */
  readonly keyType: 'rsa' | 'ec' | 'ed25519' | 'ed448';
  readonly curve?: string;
  readonly pss?: boolean;
}

const ALGORITHMS: Readonly<Record<string, Algorithm>> = {
  RS256: { hash: 'sha256', keyType: 'rsa' },
  RS384: { hash: 'sha384', keyType: 'rsa' },
  RS512: { hash: 'sha512', keyType: 'rsa' },
  PS256: { hash: 'sha256', keyType: 'rsa', pss: true },
  PS384: { hash: 'sha384', keyType: 'rsa', pss: true },
  PS512: { hash: 'sha512', keyType: 'rsa', pss: true },
  ES256: { hash: 'sha256', keyType: 'ec', curve: 'prime256v1' },
  ES384: { hash: 'sha384', keyType: 'ec', curve: 'secp384r1' },
  ES512: { hash: 'sha512', keyType: 'ec', curve: 'secp521r1' },
  Ed25519: { hash: null, keyType: 'ed25519' },
  EdDSA: { hash: null, keyType: 'ed25519' },
};

/** RFC 7518 §3.3, §3.5: RSA keys shorter than 2048 bits are not acceptable. */
const MIN_RSA_BITS = 2048;

export function isSupportedAlgorithm(alg: string): boolean {
  return Object.hasOwn(ALGORITHMS, alg);
}

/** Each key's verdict per algorithm: a KeyObject's details are read from OpenSSL on every access. */
const fits = new WeakMap<KeyObject, Map<string, boolean>>();

/** Whether `key` may verify `alg` at all: right key type, right curve, long enough. */
export function keyFitsAlgorithm(key: KeyObject, alg: string): boolean {
  // Only known algorithms are remembered: whatever a token names cannot grow the map.
  if (!Object.hasOwn(ALGORITHMS, alg)) return false;
  let verdicts = fits.get(key);
  if (!verdicts) {
    verdicts = new Map();
    fits.set(key, verdicts);
  }
  let verdict = verdicts.get(alg);
  if (verdict === undefined) {
    verdict = checkKeyFitsAlgorithm(key, alg);
    verdicts.set(alg, verdict);
  }
  return verdict;
}

function checkKeyFitsAlgorithm(key: KeyObject, alg: string): boolean {
  const algorithm = ALGORITHMS[alg];
  if (!algorithm || !Object.hasOwn(ALGORITHMS, alg)) return false;
  const type = key.asymmetricKeyType;
  if (algorithm.keyType === 'ed25519') return type === 'ed25519' || (alg === 'EdDSA' && type === 'ed448');
  if (type !== algorithm.keyType) return false;
  const details = key.asymmetricKeyDetails ?? {};
  if (algorithm.keyType === 'rsa') return (details.modulusLength ?? 0) >= MIN_RSA_BITS;
  return details.namedCurve === algorithm.curve;
}

/** Verifies a JWS signature; false for any mismatch (wrong key, malformed signature), never throws. */
export function verifySignature(
  alg: string,
  key: KeyObject,
  signingInput: Buffer,
  signature: Buffer,
): boolean {
  if (!keyFitsAlgorithm(key, alg)) return false;
  const algorithm = ALGORITHMS[alg] as Algorithm;
  try {
    if (algorithm.pss) {
      const pss = {
        key,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      };
      return verify(algorithm.hash, signingInput, pss, signature);
    }
    // The key goes in bare, not in an options object: see shared/ecdsa-signature.ts for why.
    if (algorithm.keyType === 'ec') {
      const der = p1363ToDer(signature, ECDSA_COMPONENT_BYTES[alg] ?? 0);
      return der !== undefined && verify(algorithm.hash, signingInput, key, der);
    }
    return verify(algorithm.hash, signingInput, key, signature);
  } catch {
    return false;
  }
}
