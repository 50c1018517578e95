import test from 'ava';
import { compactVerify, importJWK } from 'jose';
import { ExternalSigningKey } from 'oidc-provider';
import {
  completeRing,
  publicJwk,
  SIGNING_ALGS,
} from '../../../src/authorization-server/keys/signing-key-ring.ts';
import { providerSigningKeys } from '../../../src/authorization-server/provider/signing-keys.ts';

// Contract with oidc-provider's experimental externalSigningSupport (experimental-01): the keys are
// ExternalSigningKey instances whose public members, keyObject() and sign() are what it calls.
test('every key family signs synchronously with node:crypto, and jose verifies it with the published key', async (t) => {
  const ring = await completeRing({ keys: [] }, [...SIGNING_ALGS], new Date());
  const keys = providerSigningKeys(ring);
  t.is(keys.length, ring.keys.length);
  for (const stored of ring.keys) {
    const key = keys.find((k) => k.kid === stored.kid);
    t.true(key instanceof ExternalSigningKey);
    t.is(key?.alg, stored.alg);
    t.is(key?.use, 'sig');
    const header = Buffer.from(JSON.stringify({ alg: stored.alg, kid: stored.kid })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ sub: 'contract' })).toString('base64url');
    const signature = key?.sign(Buffer.from(`${header}.${payload}`));
    t.false(signature instanceof Promise, `${stored.alg} signs without a thread-pool hop`);
    const jws = `${header}.${payload}.${Buffer.from(signature as Uint8Array).toString('base64url')}`;
    const verified = await compactVerify(jws, await importJWK(publicJwk(stored.jwk), stored.alg));
    t.is(verified.protectedHeader.alg, stored.alg);
    // The public members oidc-provider publishes come from the key itself.
    t.is(key?.kty, stored.jwk.kty);
  }
});
