import { randomBytes } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import type { Kv } from '../../../src/authorization-server/storage/kv.ts';
import { MemoryKv } from '../../../src/authorization-server/storage/memory-kv.ts';
import { type Passkey, PasskeyStore } from '../../../src/authorization-server/storage/passkey-store.ts';
import { ConflictError } from '../../../src/shared/errors.ts';
import { interleave, interleavings } from '../../support/interleave.ts';
import { kvInstances } from '../../support/kv-instances.ts';

// A passkey is two keys: its record (by credential id) and an entry in its user's index. Neither
// a crash between the writes nor a removal running at the same time may leave a record that
// listing and removal cannot find (it would still sign in).
const instances = kvInstances(test, 'passkeys');
const { box, keys } = instances;

const passkeyOf = (sub: string): Passkey => ({
  id: randomBytes(16).toString('base64url'),
  sub,
  public_key: randomBytes(32).toString('base64url'),
  counter: 0,
  transports: ['internal'],
  device_type: 'singleDevice',
  created_at: new Date().toISOString(),
});
const newSub = () => `usr_${randomBytes(6).toString('hex')}`;

/** The store as a process sees it that dies at its `crashAt`-th store call: that call and every later one fail. */
function crashingAt(kv: Kv, crashAt: number): Kv {
  let calls = 0;
  return new Proxy(kv, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls++;
        if (calls >= crashAt) return Promise.reject(new Error(`crashed at store call ${calls}`));
        return value.apply(target, args);
      };
    },
  });
}

/** No orphan: a passkey that can be found is listed for its user. */
async function assertListedIfFound(t: ExecutionContext, store: PasskeyStore, passkey: Passkey, what: string) {
  if (await store.find(passkey.id)) {
    t.true(
      (await store.listFor(passkey.sub)).some((p) => p.id === passkey.id),
      `${what}: a stored passkey is missing from its user's index`,
    );
  }
}

async function crashAtEveryStep(t: ExecutionContext, kv: Kv) {
  const store = new PasskeyStore(kv, keys, box);
  for (let crashAt = 1; crashAt <= 6; crashAt++) {
    const passkey = passkeyOf(newSub());
    const crashing = new PasskeyStore(crashingAt(kv, crashAt), keys, box);
    await crashing.add(passkey).catch(() => {});
    await assertListedIfFound(t, store, passkey, `crash at call ${crashAt}`);
    // An admin reset afterwards (another process) leaves nothing that signs in.
    await store.removeAllFor(passkey.sub);
    t.is(
      await store.find(passkey.id),
      undefined,
      `crash at call ${crashAt}: the passkey outlived its removal`,
    );
    t.deepEqual(await store.listFor(passkey.sub), []);
  }
}

test('a crash at any step of registering leaves no passkey that removal cannot find (Redis)', async (t) => {
  await crashAtEveryStep(t, instances.first);
});

test('a crash at any step of registering leaves no passkey that removal cannot find (in-process store)', async (t) => {
  await crashAtEveryStep(t, new MemoryKv());
});

async function everyInterleavingOfAddAndRemoval(t: ExecutionContext, adder: Kv, remover: Kv) {
  const check = new PasskeyStore(adder, keys, box);
  let tried = 0;
  const traces = new Set<string>();
  for (const schedule of interleavings({ add: 4, remove: 4 })) {
    const sub = newSub();
    const passkey = passkeyOf(sub);
    const { results, trace } = await interleave(
      { add: adder, remove: remover },
      {
        add: (kv) => new PasskeyStore(kv, keys, box).add(passkey),
        remove: (kv) => new PasskeyStore(kv, keys, box).removeAllFor(sub),
      },
      schedule,
    );
    if (traces.has(trace.join())) continue;
    traces.add(trace.join());
    tried++;
    const what = trace.join(' ');
    t.is(results.remove?.status, 'fulfilled', what);
    if (results.add?.status === 'rejected') t.true(results.add.reason instanceof ConflictError, what);
    await assertListedIfFound(t, check, passkey, what);
    await check.removeAllFor(sub);
    t.is(await check.find(passkey.id), undefined, `${what}: the passkey outlived a removal`);
  }
  t.log(`${tried} distinct interleavings`);
  t.true(tried > 2);
}

test('a registration and a removal of the user’s passkeys, in every interleaving on two Redis connections, leave no unlisted passkey', async (t) => {
  await everyInterleavingOfAddAndRemoval(t, instances.first, instances.second);
});

test('the same in every interleaving on the in-process store', async (t) => {
  const kv = new MemoryKv();
  await everyInterleavingOfAddAndRemoval(t, kv, kv);
});

test('registering a credential id twice is a conflict that leaves one index entry', async (t) => {
  const store = new PasskeyStore(instances.first, keys, box);
  const passkey = passkeyOf(newSub());
  await store.add(passkey);
  await t.throwsAsync(store.add(passkey), { instanceOf: ConflictError });
  t.is(await instances.redis.scard(keys.userPasskeys(passkey.sub)), 1);
  t.deepEqual(
    (await store.listFor(passkey.sub)).map((p) => p.id),
    [passkey.id],
  );
  t.is(await store.removeAllFor(passkey.sub), 1);
  t.is(await store.find(passkey.id), undefined);
});
