import { randomBytes } from 'node:crypto';
import test from 'ava';
import { type Approval, ConsentStore } from '../../../src/authorization-server/storage/consent-store.ts';
import type { Kv } from '../../../src/authorization-server/storage/kv.ts';
import { MemoryKv } from '../../../src/authorization-server/storage/memory-kv.ts';
import { KeyNames } from '../../../src/authorization-server/storage/redis-keys.ts';
import { interleave, interleavings } from '../../support/interleave.ts';
import { kvInstances } from '../../support/kv-instances.ts';
import { keysUnder } from '../../support/redis.ts';

// Remembered consent and the removal of its client, on two instances (separate Redis connections).
const instances = kvInstances(test, 'consent');
const { box, keys } = instances;

const approval: Approval = {
  openid: ['openid', 'email'],
  claims: [],
  resources: { 'https://api.test': ['a:read'] },
};
const id = (name: string) => `${name}-${randomBytes(6).toString('hex')}`;

test('consent is remembered per account and client, and removing the client forgets all of it', async (t) => {
  const consents = new ConsentStore(instances.first, keys, box);
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
async function raceAddsAgainstRemoval(
  t: import('ava').ExecutionContext,
  adder: Kv,
  remover: Kv,
  names = keys,
) {
  const adding = new ConsentStore(adder, names, box);
  const removing = new ConsentStore(remover, names, box);
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
  const own = new KeyNames(`${instances.prefix}race:`, (ns, id) => box.hashId(ns, id));
  await raceAddsAgainstRemoval(t, instances.first, instances.second, own);
  const left = (await keysUnder(instances.redis, `${instances.prefix}race:consent:`)).length;
  t.is(left, 0, 'no consent record left in Redis');
});

test('the in-process store gives the removal the same win', async (t) => {
  const kv = new MemoryKv();
  await raceAddsAgainstRemoval(t, kv, kv);
});

/** One save against the removal, in every order of their store calls. */
async function everyInterleaving(t: import('ava').ExecutionContext, adder: Kv, remover: Kv) {
  const check = new ConsentStore(adder, keys, box);
  const traces = new Set<string>();
  for (const schedule of interleavings({ add: 5, remove: 3 })) {
    const client = id('interleaved');
    // Another user's consent exists already: the removal has something to delete.
    await check.add('zoe', client, approval);
    const { results, trace } = await interleave(
      { add: adder, remove: remover },
      {
        add: (kv) => new ConsentStore(kv, keys, box).add('alice', client, approval),
        remove: (kv) => new ConsentStore(kv, keys, box).removeClient(client),
      },
      schedule,
    );
    if (traces.has(trace.join())) continue;
    traces.add(trace.join());
    const what = trace.join(' ');
    t.deepEqual(
      Object.values(results).filter((r) => r.status === 'rejected'),
      [],
      what,
    );
    t.is(await check.get('alice', client), undefined, `${what}: the consent outlived the removal`);
    t.is(await check.get('zoe', client), undefined, `${what}: the earlier consent outlived the removal`);
  }
  t.log(`${traces.size} distinct interleavings`);
  t.true(traces.size > 2);
}

test('a consent and the removal of its client, in every interleaving on two Redis connections: the removal wins', async (t) => {
  await everyInterleaving(t, instances.first, instances.second);
});

test('the same in every interleaving on the in-process store', async (t) => {
  const kv = new MemoryKv();
  await everyInterleaving(t, kv, kv);
});
