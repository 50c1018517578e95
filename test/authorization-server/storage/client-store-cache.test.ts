import test from 'ava';
import { basic, eventually, postForm } from '../../integration/support/harness.ts';
import { startAuthServer, testSecrets } from '../../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../../support/redis.ts';

// The record cache (storage/record-cache.ts): what an instance does with a client whose change message
// it never received (Redis reconnecting), on real Redis with two instances.
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

test('rotating the secret of a client removed elsewhere does not bring it back, even on an instance that missed the removal', async (t) => {
  const { a, b } = await deployment(t);
  await a.store.clients.add(m2m('review-resurrect'));
  // The registration's own change message reaches b first (it would drop b's copy otherwise).
  await new Promise((resolve) => setTimeout(resolve, 300));
  // Instance b reads the client (a token request, or the admin API's own check) and caches it.
  t.truthy(await b.store.clients.get('review-resurrect'));
  // An admin removes it (compromised, say); b's subscriber is reconnecting and misses the message.
  await removeWithoutMessage('review-resurrect', a.store);
  t.deepEqual(
    (await a.store.clients.list()).map((c) => c.client_id).filter((id) => id === 'review-resurrect'),
    [],
  );
  // Another admin, or a rotation job, rotates its secret through b within the next 5 s.
  const rotated = await b.store.clients.rotateSecret('review-resurrect').then(
    (r) => r,
    (error: unknown) => {
      t.log(`rotate-secret refused: ${(error as Error).message}`);
      return undefined;
    },
  );
  const listed = (await a.store.clients.list()).some((c) => c.client_id === 'review-resurrect');
  const answer = rotated && (await token(a.issuer, 'review-resurrect', rotated.client_secret)).status;
  const removable = await a.store.clients.remove('review-resurrect').then(
    () => true,
    () => false,
  );
  const afterRemove = rotated && (await token(a.issuer, 'review-resurrect', rotated.client_secret)).status;
  t.log(
    `rotate-secret: ${rotated ? 'done' : 'refused'}; listed: ${listed}; token with the new secret: ${answer}; ` +
      `clients remove: ${removable ? 'done' : 'refused'}; token after that: ${afterRemove}`,
  );
  t.is(rotated, undefined, 'rotate-secret refuses: there is no such client any more');
  t.not(answer, 200, 'a removed client gets no token, on any instance');
});

test('rotating the secret on an instance that missed a narrowing keeps the narrowed registration (no old scopes written back)', async (t) => {
  const { a, b } = await deployment(t);
  await a.store.resources.add({
    uri: 'https://review-perf-admin.api.test',
    scopes: ['reports:read', 'reports:export'],
  });
  const wide = {
    ...m2m('review-narrowed'),
    scope: ['reports:read', 'reports:export'],
    resources: ['https://review-perf-admin.api.test'],
  };
  await a.store.clients.add(wide);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.truthy(await b.store.clients.get('review-narrowed'), 'b caches the wide registration');
  // An admin narrows the client (remove, then add again with fewer scopes); b's subscriber is
  // reconnecting and misses both messages. What the two leave in the store, written without them:
  const key = a.store.keys.model('Client', 'review-narrowed');
  const current = a.store.box.openJson<Record<string, unknown>>(
    String((await a.store.kv.getRecord(key))?.sealed),
    key,
  );
  await a.store.kv.putRecord(
    key,
    a.store.box.sealJson({ ...current, resource_scopes: ['reports:read'] }, key),
  );
  const rotated = await b.store.clients.rotateSecret('review-narrowed').catch(() => undefined);
  const stored = a.store.box.openJson<{ resource_scopes: string[] }>(
    String((await a.store.kv.getRecord(key))?.sealed),
    key,
  );
  t.log(
    `rotated: ${Boolean(rotated)}; stored resource_scopes after the rotation: ${stored.resource_scopes.join(' ')}`,
  );
  t.deepEqual(stored.resource_scopes, ['reports:read'], 'the narrowed registration stays narrow');
});

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
