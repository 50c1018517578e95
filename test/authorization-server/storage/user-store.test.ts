import argon2 from 'argon2';
import test from 'ava';
import { MemoryKv } from '../../../src/authorization-server/storage/memory-kv.ts';
import { KeyNames } from '../../../src/authorization-server/storage/redis-keys.ts';
import { PASSWORD_HASH_OPTIONS, UserStore } from '../../../src/authorization-server/storage/user-store.ts';
import { generateDataKeys, SealedBox } from '../../../src/shared/sealing/index.ts';

function userStore() {
  const kv = new MemoryKv();
  const box = new SealedBox(generateDataKeys());
  const keys = new KeyNames('unit:', (ns, id) => box.hashId(ns, id));
  return { kv, box, keys, users: new UserStore(kv, keys, box) };
}

test('passwords are argon2id with the configured parameters', async (t) => {
  const { users } = userStore();
  const { sub } = await users.add({ email: 'dana@example.com', password: 'a long enough password' });
  const hash = (await users.findBySub(sub))?.password_hash ?? '';
  t.regex(hash, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
  t.false(argon2.needsRehash(hash, PASSWORD_HASH_OPTIONS));
});

test('a hash made with weaker parameters is upgraded at the next successful login', async (t) => {
  const { kv, box, keys, users } = userStore();
  const { sub } = await users.add({ email: 'erin@example.com', password: 'a long enough password' });
  const user = await users.findBySub(sub);
  const weak = await argon2.hash('a long enough password', {
    type: argon2.argon2id,
    memoryCost: 8192,
    timeCost: 1,
    parallelism: 1,
  });
  await kv.hashSet(
    keys.users(),
    sub,
    box.sealJson({ ...user, password_hash: weak }, `${keys.users()}/${sub}`),
  );

  t.truthy(await users.verifyPassword('Erin@Example.com', 'a long enough password'));
  t.regex((await users.findBySub(sub))?.password_hash ?? '', /m=19456,p=1,t=2/);
});

test('wrong password and unknown email both return nothing', async (t) => {
  const { users } = userStore();
  await users.add({ email: 'finn@example.com', password: 'a long enough password' });
  t.is(await users.verifyPassword('finn@example.com', 'not the password'), undefined);
  t.is(await users.verifyPassword('nobody@example.com', 'a long enough password'), undefined);
});

test('enrolFirstTotp: of concurrent enrolments exactly one wins, and an enrolled app is never replaced', async (t) => {
  const { users } = userStore();
  const { sub } = await users.add({ email: 'gale@example.com', password: 'a long enough password' });
  const secrets = ['A'.repeat(32), 'B'.repeat(32), 'C'.repeat(32)];
  const results = await Promise.all(secrets.map((secret) => users.enrolFirstTotp(sub, secret, [secret])));
  const winners = results.filter((r) => r !== undefined);
  t.is(winners.length, 1);
  const stored = await users.findBySub(sub);
  const won = secrets[results.findIndex((r) => r !== undefined)];
  t.is(stored?.totp?.secret, won);
  t.deepEqual(stored?.recovery_codes, [won]);
  t.is(await users.enrolFirstTotp(sub, 'D'.repeat(32), []), undefined);
  t.is((await users.findBySub(sub))?.totp?.secret, won);
});
