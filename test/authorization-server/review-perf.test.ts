import { randomBytes } from 'node:crypto';
import test from 'ava';
import { MemoryKv } from '../../src/authorization-server/storage/memory-kv.ts';
import { createAdapterClass } from '../../src/authorization-server/storage/oidc-adapter.ts';
import { KeyNames } from '../../src/authorization-server/storage/redis-keys.ts';
import { generateDataKeys, SealedBox } from '../../src/shared/sealing/index.ts';
import { basic, eventually, postForm } from '../integration/support/harness.ts';
import { startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';

// Review of the token hot-path work (record cache): what an instance does with a client whose change
// message it never received (Redis reconnecting), on real Redis with two instances.
const prefixes: string[] = [];
test.after.always(async () => {
  const redis = await connectRedis();
  for (const prefix of prefixes) await deletePrefix(redis, prefix);
  redis.disconnect();
});

const API = 'https://review-perf.api.test';
const m2m = (id: string) => ({
  id,
  grants: ['client_credentials' as const],
  scope: ['reports:read'],
  resources: [API],
  redirectUris: [],
  postLogoutRedirectUris: [],
});

async function deployment(t: { teardown: (fn: () => Promise<void>) => void }) {
  const secrets = testSecrets();
  const prefix = testPrefix('review-perf');
  prefixes.push(prefix);
  const a = await startAuthServer({ prefix, secrets });
  const b = await startAuthServer({ prefix, secrets });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  if (!(await a.store.resources.get(API)))
    await a.store.resources.add({ uri: API, scopes: ['reports:read'] });
  return { a, b };
}

const token = (issuer: string, id: string, secret: string) =>
  postForm(`${issuer}/token`, { grant_type: 'client_credentials' }, { authorization: basic(id, secret) });

/** What ClientStore.remove writes, without the change message: an instance that missed it. */
async function removeWithoutMessage(id: string, store: Awaited<ReturnType<typeof deployment>>['a']['store']) {
  await store.kv.hashDelete(store.keys.clientIndex(), id);
  await store.kv.del(store.keys.model('Client', id));
}

test('a client removed while an instance missed the message stops working there within RECORD_CACHE_MAX_AGE_MS', async (t) => {
  const { a, b } = await deployment(t);
  const { client_secret: secret } = await a.store.clients.add(m2m('review-missed'));
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.is((await token(b.issuer, 'review-missed', String(secret))).status, 200, 'b holds it in memory');
  await removeWithoutMessage('review-missed', a.store);
  t.true(
    await eventually(
      async () => (await token(b.issuer, 'review-missed', String(secret))).status === 401,
      7000,
      100,
    ),
    'refused within the documented bound',
  );
});

test('a refresh token written by the previous version (v1, jti inside) is read back as it was, consumed once, and a replay revokes its grant', async (t) => {
  const kv = new MemoryKv();
  const box = new SealedBox(generateDataKeys());
  const keys = new KeyNames('review-compat:', (ns, id) => box.hashId(ns, id));
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
