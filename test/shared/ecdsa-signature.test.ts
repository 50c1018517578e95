import { generateKeyPairSync, sign, verify } from 'node:crypto';
import test from 'ava';
import { derToP1363, ECDSA_COMPONENT_BYTES, p1363ToDer } from '../../src/shared/ecdsa-signature.ts';

// node:crypto's own ieee-p1363 encoding is the oracle: every conversion must agree with it.
const CURVES = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' } as const;

for (const [alg, namedCurve] of Object.entries(CURVES)) {
  const size = ECDSA_COMPONENT_BYTES[alg] as number;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
  const hash = `sha${alg.slice(2)}`;

  test(`${alg}: DER signatures become JWS signatures node:crypto verifies, and back byte for byte`, (t) => {
    // Enough signatures that R or S with leading zero bytes or a set high bit turn up.
    for (let i = 0; i < 400; i++) {
      const data = Buffer.from(`message ${i}`);
      const der = sign(hash, data, privateKey);
      const jws = derToP1363(der, size);
      t.truthy(jws);
      t.is(jws?.length, size * 2);
      t.true(verify(hash, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, jws as Buffer));
      t.deepEqual(p1363ToDer(jws as Buffer, size), der);
    }
  });

  test(`${alg}: JWS signatures from node:crypto become DER it verifies`, (t) => {
    for (let i = 0; i < 200; i++) {
      const data = Buffer.from(`message ${i}`);
      const jws = sign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const der = p1363ToDer(jws, size);
      t.truthy(der);
      t.true(verify(hash, data, publicKey, der as Buffer));
      t.false(verify(hash, Buffer.from(`other ${i}`), publicKey, der as Buffer));
    }
  });
}

test('a JWS signature of the wrong length is refused, not padded or cut', (t) => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jws = sign('sha256', Buffer.from('x'), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  t.is(p1363ToDer(jws.subarray(1), 32), undefined);
  t.is(p1363ToDer(Buffer.concat([jws, Buffer.from([0])]), 32), undefined);
  t.is(p1363ToDer(Buffer.alloc(0), 32), undefined);
});

test('malformed DER is refused', (t) => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = sign('sha256', Buffer.from('x'), privateKey);
  t.is(derToP1363(Buffer.from([0x31, ...der.subarray(1)]), 32), undefined);
  t.is(derToP1363(der.subarray(0, der.length - 1), 32), undefined);
  t.is(derToP1363(Buffer.concat([der, Buffer.from([0])]), 32), undefined);
  // Components longer than the curve's size.
  t.is(derToP1363(der, 16), undefined);
});
