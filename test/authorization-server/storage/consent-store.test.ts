import { randomBytes } from 'node:crypto';
import test from 'ava';
import type { Redis } from 'ioredis';
import { type Approval, ConsentStore } from '../../../src/authorization-server/storage/consent-store.ts';
import type { Kv } from '../../../src/authorization-server/storage/kv.ts';
import { MemoryKv } from '../../../src/authorization-server/storage/memory-kv.ts';
import { KeyNames } from '../../../src/authorization-server/storage/redis-keys.ts';
import { RedisKv } from '../../../src/authorization-server/storage/redis-kv.ts';
import { generateDataKeys, SealedBox } from '../../../src/shared/sealing/index.ts';
import { connectRedis, deletePrefix, keysUnder, REDIS_URL, testPrefix } from '../../support/redis.ts';

// Remembered consent and the removal of its client, on two instances (separate Redis connections).
const prefix = testPrefix('consent');
const box = new SealedBox(generateDataKeys());
const keys = new KeyNames(prefix, (ns, id) => box.hashId(ns, id));
let redis: Redis;
const kvs: RedisKv[] = [];

test.before(async () => {
  redis = await connectRedis();
  kvs.push(new RedisKv(REDIS_URL), new RedisKv(REDIS_URL));
});

test.after.always(async () => {
  await deletePrefix(redis, prefix);
  await Promise.all(kvs.map((kv) => kv.close()));
  redis.disconnect();
});

const approval: Approval = {
  openid: ['openid', 'email'],
  claims: [],
  resources: { 'https://api.test': ['a:read'] },
};
const id = (name: string) => `${name}-${randomBytes(6).toString('hex')}`;

test('consent is remembered per account and client, and removing the client forgets all of it', async (t) => {
  const consents = new ConsentStore(kvs[0] as Kv, keys, box);
  const client = id('client');
  t.true(await consents.add('alice', client, approval));
  t.true(await consents.add('alice', client, { openid: ['profile'], claims: [], resources: {} }));
  t.true(await consents.add('bob', client, approval));
  t.like(await consents.get('alice', client), { openid: ['openid', 'email', 'profile'] });
  await consents.removeClient(client);
  t.is(await consents.get('alice', client), undefined);
  t.is(await consents.get('bob', client), undefined);
});

/**
 * Saves consent for several accounts on one instance while the other removes the client, the
 * removal starting a few event-loop turns (and Redis round trips) later trial by trial, across
 * every step of the saves. Whatever the interleaving, nothing may survive the removal.
 */
async function raceAddsAgainstRemoval(t: import('ava').ExecutionContext, adder: Kv, remover: Kv) {
  const adding = new ConsentStore(adder, keys, box);
  const removing = new ConsentStore(remover, keys, box);
  const accounts = ['alice', 'bob', 'carol', 'dave'];
  for (let trial = 0; trial < 40; trial++) {
    const client = id('racing');
    const adds = accounts.map((account) => adding.add(account, client, approval));
    const removal = (async () => {
      for (let turn = 0; turn < trial % 8; turn++) {
        await new Promise(setImmediate);
        if (turn % 2) await remover.ping();
      }
      await removing.removeClient(client);
    })();
    const settled = await Promise.allSettled([...adds, removal]);
    t.deepEqual(
      settled.filter((s) => s.status === 'rejected'),
      [],
      `trial ${trial}: nothing fails`,
    );
    for (const account of accounts) {
      t.is(
        await adding.get(account, client),
        undefined,
        `trial ${trial}: ${account}'s consent outlived the removal of its client`,
      );
    }
    // Consent given after the removal is not remembered either (the app is gone).
    t.false(await adding.add('erin', client, approval));
    t.is(await adding.get('erin', client), undefined);
  }
}

test('a consent saved while its client is removed never outlives the removal, on Redis, at any timing', async (t) => {
  await raceAddsAgainstRemoval(t, kvs[0] as Kv, kvs[1] as Kv);
  const left = (await keysUnder(redis, `${prefix}consent:`)).length;
  t.is(left, 0, 'no consent record left in Redis');
});

test('the in-process store gives the removal the same win', async (t) => {
  const kv = new MemoryKv();
  await raceAddsAgainstRemoval(t, kv, kv);
});
