import { randomBytes } from 'node:crypto';
import test from 'ava';
import { DecryptionError } from '../../../src/shared/errors.ts';
import { generateDataKeys, keyId, SealedBox } from '../../../src/shared/sealing/index.ts';

// Several data keys in one box: every value names its key (issue 9 finding 14).

test('a value names the key that sealed it, and only that key opens it', (t) => {
  const keys = generateDataKeys();
  const box = new SealedBox(keys);
  const sealed = box.seal('a claim description', 'ctx');
  t.is(SealedBox.sealedBy(sealed), keyId(keys.encryption));
  t.is(box.open(sealed, 'ctx'), 'a claim description');
  t.throws(() => box.open(sealed, 'another key name'), { instanceOf: DecryptionError });
  t.throws(() => new SealedBox(generateDataKeys()).open(sealed, 'ctx'), { instanceOf: DecryptionError });
});

test('after a rotation: old values still open, the new key seals from activeFrom on, stale values re-seal', (t) => {
  const keys = generateDataKeys();
  const box = new SealedBox(keys);
  const old = box.seal('sealed before', 'ctx');
  const next = randomBytes(32);

  // Announced but not active yet: every instance keeps sealing with the old key meanwhile.
  box.update({ ...keys, encryption: next, previous: [keys.encryption], activeFrom: Date.now() + 60_000 });
  t.is(box.id, keyId(keys.encryption));
  t.is(SealedBox.sealedBy(box.seal('x', 'ctx')), keyId(keys.encryption));
  t.false(box.isStale(old));

  // Active: new writes use the new key; the old value still opens and is stale.
  box.update({ ...keys, encryption: next, previous: [keys.encryption], activeFrom: Date.now() - 1 });
  t.is(box.id, keyId(next));
  const fresh = box.seal('sealed after', 'ctx');
  t.is(SealedBox.sealedBy(fresh), keyId(next));
  t.is(box.open(old, 'ctx'), 'sealed before');
  t.true(box.isStale(old));
  t.false(box.isStale(fresh));
  const resealed = box.reseal(old, 'ctx');
  t.is(SealedBox.sealedBy(resealed), keyId(next));
  t.is(box.open(resealed, 'ctx'), 'sealed before');
  t.deepEqual(box.keyIds, [keyId(next), keyId(keys.encryption)]);

  // Key names do not move: the id-hash key is not rotated.
  t.is(box.hashId('Client', 'c1'), new SealedBox(keys).hashId('Client', 'c1'));
});

test('compressed values (z1) open like plain ones, are bound to their key name, and re-seal compressed', (t) => {
  const keys = generateDataKeys();
  const box = new SealedBox(keys);
  const record = { iat: 1, exp: 2, accountId: 'usr_1', grantId: randomBytes(32).toString('base64url') };
  const plain = box.sealJson(record, 'ctx');
  const compressed = box.sealJson(record, 'ctx', { compress: true });
  t.true(compressed.startsWith('z1.'));
  t.true(compressed.length < plain.length, `${compressed.length} < ${plain.length}`);
  t.deepEqual(box.openJson(compressed, 'ctx'), record);
  t.deepEqual(box.openJson(plain, 'ctx'), record, 'v1 values still open');
  t.throws(() => box.open(compressed, 'another key name'), { instanceOf: DecryptionError });
  // One flipped byte of ciphertext: the tag fails before anything is inflated.
  const [version, id, data] = compressed.split('.') as [string, string, string];
  const raw = Buffer.from(data, 'base64url');
  raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
  t.throws(() => box.open(`${version}.${id}.${raw.toString('base64url')}`, 'ctx'), {
    instanceOf: DecryptionError,
  });
  // The version is authenticated: a compressed value relabelled plain, or the other way, does not open.
  t.throws(() => box.open(`v1.${compressed.slice(3)}`, 'ctx'), { instanceOf: DecryptionError });
  t.throws(() => box.open(`z1.${plain.slice(3)}`, 'ctx'), { instanceOf: DecryptionError });

  box.update({ ...keys, encryption: randomBytes(32), previous: [keys.encryption] });
  const resealed = box.reseal(compressed, 'ctx');
  t.true(resealed.startsWith('z1.'));
  t.false(box.isStale(resealed));
  t.deepEqual(box.openJson(resealed, 'ctx'), record);
});
