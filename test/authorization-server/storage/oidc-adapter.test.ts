import { randomBytes } from 'node:crypto';
import test from 'ava';
import type { Redis } from 'ioredis';
import type { Kv } from '../../../src/authorization-server/storage/kv.ts';
import { MemoryKv } from '../../../src/authorization-server/storage/memory-kv.ts';
import { createAdapterClass } from '../../../src/authorization-server/storage/oidc-adapter.ts';
import { KeyNames } from '../../../src/authorization-server/storage/redis-keys.ts';
import { RedisKv } from '../../../src/authorization-server/storage/redis-kv.ts';
import { generateDataKeys, SealedBox } from '../../../src/shared/sealing/index.ts';
import {
  connectRedis,
  deletePrefix,
  dumpPrefix,
  keysUnder,
  REDIS_URL,
  testPrefix,
} from '../../support/redis.ts';

const prefix = testPrefix('adapter');
const box = new SealedBox(generateDataKeys());
const keys = new KeyNames(prefix, (ns, id) => box.hashId(ns, id));
let redis: Redis;
const kvs: RedisKv[] = [];

function adapterClass(kv: Kv = kvs[0] as Kv) {
  return createAdapterClass({ kv, keys, box });
}

test.before(async () => {
  redis = await connectRedis();
  kvs.push(new RedisKv(REDIS_URL), new RedisKv(REDIS_URL));
});

test.after.always(async () => {
  await deletePrefix(redis, prefix);
  await Promise.all(kvs.map((kv) => kv.close()));
  redis.disconnect();
});

const id = () => randomBytes(16).toString('base64url');

test('upsert then find returns the payload, and the record carries the model expiry', async (t) => {
  const Adapter = adapterClass();
  const tokens = new Adapter('AccessToken');
  const jti = id();
  await tokens.upsert(jti, { jti, kind: 'AccessToken', accountId: 'usr_1', exp: 0 }, 300);
  t.like(await tokens.find(jti), { jti, accountId: 'usr_1' });
  const ttl = await redis.ttl(keys.model('AccessToken', jti));
  t.true(ttl > 290 && ttl <= 300, `ttl ${ttl}`);
  t.is(await tokens.find(id()), undefined);
});

test('a token record stores neither its own id (the token value) nor its model name, and is compressed where it lives long', async (t) => {
  const Adapter = adapterClass();
  const refreshTokens = new Adapter('RefreshToken');
  const machineTokens = new Adapter('ClientCredentials');
  const sessions = new Adapter('Session');
  const jti = id();
  const payload = { jti, kind: 'RefreshToken', accountId: 'usr_1', grantId: id(), iat: 1, exp: 2 };
  await refreshTokens.upsert(jti, payload, 300);
  const stored = String(await redis.hget(keys.model('RefreshToken', jti), 'p'));
  t.true(stored.startsWith('z1.'));
  const { jti: _jti, kind: _kind, ...rest } = payload;
  t.deepEqual(box.openJson(stored, keys.model('RefreshToken', jti)), rest);
  t.deepEqual(await refreshTokens.find(jti), payload, 'both come back from the lookup');

  const m2m = id();
  await machineTokens.upsert(m2m, { jti: m2m, kind: 'ClientCredentials', clientId: 'c', exp: 2 }, 300);
  t.true(
    String(await redis.hget(keys.model('ClientCredentials', m2m), 'p')).startsWith('v1.'),
    'hot path: plain',
  );
  t.like(await machineTokens.find(m2m), { jti: m2m, kind: 'ClientCredentials', clientId: 'c' });

  // Found by uid too: keeps its id, since a lookup by uid does not know it.
  const sid = id();
  await sessions.upsert(sid, { jti: sid, kind: 'Session', uid: 'u-compact' }, 300);
  t.like(await sessions.findByUid('u-compact'), { jti: sid, kind: 'Session' });
});

test('a refresh token record, compact and compressed, is about half the length it had stored whole and plain', async (t) => {
  const Adapter = adapterClass();
  const refreshTokens = new Adapter('RefreshToken');
  const jti = randomBytes(32).toString('base64url');
  // What oidc-provider saves for a refresh token of the code flow (random ids as long as its own).
  const payload = {
    iat: 1796039168,
    exp: 1797248768,
    accountId: `usr_${crypto.randomUUID()}`,
    authTime: 1796039168,
    expiresWithSession: true,
    grantId: randomBytes(32).toString('base64url'),
    gty: 'authorization_code',
    rotations: 0,
    scope: 'openid offline_access',
    sessionUid: randomBytes(32).toString('base64url'),
    kind: 'RefreshToken',
    jti,
    clientId: 'web',
    iiat: 1796039168,
  };
  await refreshTokens.upsert(jti, payload, 300);
  const key = keys.model('RefreshToken', jti);
  const stored = String(await redis.hget(key, 'p'));
  const whole = box.sealJson(payload, key);
  t.true(stored.length < 0.6 * whole.length, `${stored.length} stored against ${whole.length} whole`);
});

test('records expire with the model expiry', async (t) => {
  const Adapter = adapterClass();
  const sessions = new Adapter('Session');
  const sid = id();
  await sessions.upsert(sid, { jti: sid, kind: 'Session', uid: 'u1' }, 1);
  t.truthy(await sessions.find(sid));
  // Redis expiry cannot be driven by a fake clock; wait just past the one-second TTL.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  t.is(await sessions.find(sid), undefined);
  t.is(await sessions.findByUid('u1'), undefined);
});

test('findByUid and findByUserCode find through their indexes', async (t) => {
  const Adapter = adapterClass();
  const sessions = new Adapter('Session');
  const sid = id();
  const uid = id();
  await sessions.upsert(sid, { jti: sid, kind: 'Session', uid }, 60);
  t.like(await sessions.findByUid(uid), { jti: sid, uid });
  t.is(await sessions.findByUid(id()), undefined);

  const devices = new Adapter('DeviceCode');
  const code = id();
  await devices.upsert(code, { jti: code, kind: 'DeviceCode', userCode: 'ABCD-EFGH' }, 60);
  t.like(await devices.findByUserCode('ABCD-EFGH'), { jti: code });
});

test('consume is atomic: racing instances see exactly one success', async (t) => {
  const [first, second] = [adapterClass(kvs[0]), adapterClass(kvs[1])];
  const code = id();
  await new first('AuthorizationCode').upsert(
    code,
    { jti: code, kind: 'AuthorizationCode', grantId: id() },
    60,
  );
  const attempts = Array.from({ length: 20 }, (_, i) =>
    new (i % 2 ? first : second)('AuthorizationCode').consume(code),
  );
  const results = await Promise.allSettled(attempts);
  t.is(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const failure of results.filter((r) => r.status === 'rejected')) {
    t.is((failure as PromiseRejectedResult).reason.error, 'invalid_grant');
  }
  // The losers are replays: they revoked the grant, the code included.
  t.is(await new first('AuthorizationCode').find(code), undefined);
});

test('a lost consume race revokes the grant the code belongs to', async (t) => {
  const Adapter = adapterClass();
  const grantId = id();
  const code = id();
  const access = id();
  await new Adapter('AuthorizationCode').upsert(code, { jti: code, kind: 'AuthorizationCode', grantId }, 60);
  await new Adapter('AccessToken').upsert(access, { jti: access, kind: 'AccessToken', grantId }, 60);
  await new Adapter('AuthorizationCode').consume(code);
  await t.throwsAsync(new Adapter('AuthorizationCode').consume(code), { message: 'invalid_grant' });
  t.is(await new Adapter('AccessToken').find(access), undefined);
});

test('consume of an unknown id does not create a record', async (t) => {
  const Adapter = adapterClass();
  const code = id();
  await new Adapter('AuthorizationCode').consume(code);
  t.is(await redis.exists(keys.model('AuthorizationCode', code)), 0);
});

test('revokeByGrantId removes every token of the grant and nothing else', async (t) => {
  const Adapter = adapterClass();
  const grantId = id();
  const other = id();
  const ids = { AccessToken: id(), RefreshToken: id(), AuthorizationCode: id() };
  for (const [model, jti] of Object.entries(ids)) {
    await new Adapter(model).upsert(jti, { jti, kind: model, grantId }, 120);
  }
  const survivor = id();
  await new Adapter('AccessToken').upsert(
    survivor,
    { jti: survivor, kind: 'AccessToken', grantId: other },
    120,
  );

  await new Adapter('RefreshToken').revokeByGrantId(grantId);

  for (const [model, jti] of Object.entries(ids)) t.is(await new Adapter(model).find(jti), undefined, model);
  t.truthy(await new Adapter('AccessToken').find(survivor));
  t.deepEqual(await kvs[0]?.setMembers(keys.grant(grantId)), []);
  t.true(await kvs[0]?.isSetClosed(keys.grant(grantId)), 'the revoked grant stays closed');
});

test('issue 9 #2: a token saved after its grant was revoked is refused, never stored', async (t) => {
  const Adapter = adapterClass();
  const grantId = id();
  const refresh = id();
  await new Adapter('AccessToken').revokeByGrantId(grantId);
  await t.throwsAsync(
    new Adapter('RefreshToken').upsert(refresh, { jti: refresh, kind: 'RefreshToken', grantId }, 60),
    { message: 'invalid_grant' },
  );
  t.is(await new Adapter('RefreshToken').find(refresh), undefined);
});

test('issue 9 #2: revoking a grant wins over a concurrent save on another instance, at any timing', async (t) => {
  const [first, second] = [adapterClass(kvs[0]), adapterClass(kvs[1])];
  for (let trial = 0; trial < 40; trial++) {
    const grantId = id();
    const refresh = id();
    const save = new first('RefreshToken').upsert(
      refresh,
      { jti: refresh, kind: 'RefreshToken', grantId },
      60,
    );
    // Start the revocation a few event-loop turns later trial by trial, across the save's steps.
    const revoke = (async () => {
      for (let turn = 0; turn < trial % 5; turn++) await new Promise(setImmediate);
      await new second('AccessToken').revokeByGrantId(grantId);
    })();
    await Promise.allSettled([save, revoke]);
    t.is(
      await new first('RefreshToken').find(refresh),
      undefined,
      `trial ${trial}: a token outlived its grant`,
    );
  }
});

test('issue 9 #11: deleting or rewriting fields beside the sealed value does not make a spent token work again', async (t) => {
  const Adapter = adapterClass();
  const grantId = id();
  const refresh = id();
  await new Adapter('RefreshToken').upsert(refresh, { jti: refresh, kind: 'RefreshToken', grantId }, 60);
  await new Adapter('RefreshToken').consume(refresh);
  const key = keys.model('RefreshToken', refresh);
  await redis.hdel(key, 'c', 'consumed');
  await redis.hset(key, 'c', '');
  await redis.hdel(key, 'c');
  const spent = await new Adapter('RefreshToken').find(refresh);
  t.is(typeof spent?.consumed, 'number', 'the consumed mark is inside the sealed value');
  await t.throwsAsync(new Adapter('RefreshToken').consume(refresh), { message: 'invalid_grant' });
  t.is(await new Adapter('RefreshToken').find(refresh), undefined, 'the reuse revoked the grant');
});

test('destroy removes the record', async (t) => {
  const Adapter = adapterClass();
  const jti = id();
  await new Adapter('RefreshToken').upsert(jti, { jti, kind: 'RefreshToken' }, 60);
  await new Adapter('RefreshToken').destroy(jti);
  t.is(await new Adapter('RefreshToken').find(jti), undefined);
});

test('at rest: no id, grant id, uid or payload value appears in key names or values', async (t) => {
  const Adapter = adapterClass();
  const secrets = { jti: id(), grantId: id(), uid: id(), accountId: `usr_${id()}`, code: id() };
  await new Adapter('Session').upsert(
    secrets.jti,
    { jti: secrets.jti, kind: 'Session', uid: secrets.uid, accountId: secrets.accountId },
    60,
  );
  await new Adapter('AuthorizationCode').upsert(
    secrets.code,
    { jti: secrets.code, kind: 'AuthorizationCode', grantId: secrets.grantId, accountId: secrets.accountId },
    60,
  );
  const dump = await dumpPrefix(redis, prefix);
  t.true((await keysUnder(redis, prefix)).length > 0);
  for (const [name, value] of Object.entries(secrets))
    t.false(dump.includes(value), `${name} readable at rest`);
});

test('a value moved to another key no longer decrypts (ciphertext bound to its key)', async (t) => {
  const Adapter = adapterClass();
  const a = id();
  const b = id();
  await new Adapter('AccessToken').upsert(a, { jti: a, kind: 'AccessToken', scope: 'x' }, 60);
  await new Adapter('AccessToken').upsert(b, { jti: b, kind: 'AccessToken', scope: 'y' }, 60);
  const sealedA = await redis.hget(keys.model('AccessToken', a), 'p');
  await redis.hset(keys.model('AccessToken', b), 'p', sealedA as string);
  await t.throwsAsync(new Adapter('AccessToken').find(b), { message: /could not be decrypted/ });
});

test('the in-process store behaves the same for consume and grant revocation', async (t) => {
  const Adapter = adapterClass(new MemoryKv());
  const grantId = id();
  const code = id();
  await new Adapter('AuthorizationCode').upsert(code, { jti: code, kind: 'AuthorizationCode', grantId }, 60);
  const results = await Promise.allSettled(
    [1, 2, 3].map(() => new Adapter('AuthorizationCode').consume(code)),
  );
  t.is(results.filter((r) => r.status === 'fulfilled').length, 1);
  t.is(
    await new Adapter('AuthorizationCode').find(code),
    undefined,
    'the replay revoked the grant, code included',
  );
});

test('a refresh token written by the previous version (v1, jti inside) is read back as it was, consumed once, and a replay revokes its grant', async (t) => {
  const kv = new MemoryKv();
  const box = new SealedBox(generateDataKeys());
  const keys = new KeyNames('compat:', (ns, id) => box.hashId(ns, id));
  const Adapter = createAdapterClass({ kv, keys, box });
  const refreshTokens = new Adapter('RefreshToken');
  const grants = new Adapter('Grant');
  const jti = randomBytes(32).toString('base64url');
  const grantId = randomBytes(16).toString('base64url');
  const payload = { jti, kind: 'RefreshToken', grantId, accountId: 'usr_1', iat: 1, exp: 2 };
  await grants.upsert(grantId, { jti: grantId, kind: 'Grant', accountId: 'usr_1' }, 300);
  // As the previous version wrote it: the whole payload, plain.
  const key = keys.model('RefreshToken', jti);
  await kv.putRecord(key, box.sealJson(payload, key), 300);
  await kv.addToOpenSet(keys.grant(grantId), key, 300);
  t.deepEqual(await refreshTokens.find(jti), payload);
  await refreshTokens.consume(jti);
  const spent = await refreshTokens.find(jti);
  t.like(spent, { jti, kind: 'RefreshToken', grantId });
  t.is(typeof spent?.consumed, 'number');
  t.true(String((await kv.getRecord(key))?.sealed).startsWith('z1.'), 'rewritten compact and compressed');
  await t.throwsAsync(() => refreshTokens.consume(jti), { message: 'invalid_grant' });
  t.is(await refreshTokens.find(jti), undefined, 'the replay revoked what the grant issued');
  t.is(await grants.find(grantId), undefined, 'and the grant');
  await t.throwsAsync(() => refreshTokens.upsert(jti, payload, 300), { message: 'invalid_grant' });
  // Found under another id, a record is never read (the key name is bound into the seal).
  const { grantId: _grant, ...loose } = payload;
  await refreshTokens.upsert(jti, loose, 300);
  const other = randomBytes(32).toString('base64url');
  await kv.putRecord(keys.model('RefreshToken', other), String((await kv.getRecord(key))?.sealed), 300);
  await t.throwsAsync(() => refreshTokens.find(other));
});
