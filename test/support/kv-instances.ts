import type { TestFn } from 'ava';
import type { Redis } from 'ioredis';
import type { Kv } from '../../src/authorization-server/storage/kv.ts';
import { KeyNames } from '../../src/authorization-server/storage/redis-keys.ts';
import { RedisKv } from '../../src/authorization-server/storage/redis-kv.ts';
import { generateDataKeys, SealedBox } from '../../src/shared/sealing/index.ts';
import { connectRedis, deletePrefix, REDIS_URL, testPrefix } from './redis.ts';

export interface KvInstances {
  readonly prefix: string;
  readonly box: SealedBox;
  readonly keys: KeyNames;
  /** A plain connection for looking at what was written (set before the first test). */
  redis: Redis;
  /** Two instances' stores: separate connections to one Redis, as two processes have. */
  first: Kv;
  second: Kv;
}

/**
 * The real Redis store for a test file, as two instances see it, under a key prefix of the file's
 * own, with a fresh data key; the file's keys are deleted and the connections closed after it.
 */
export function kvInstances(test: TestFn, name: string): KvInstances {
  const prefix = testPrefix(name);
  const box = new SealedBox(generateDataKeys());
  const opened: RedisKv[] = [];
  const instances = {
    prefix,
    box,
    keys: new KeyNames(prefix, (namespace, id) => box.hashId(namespace, id)),
  } as KvInstances;
  test.before(async () => {
    instances.redis = await connectRedis();
    opened.push(new RedisKv(REDIS_URL), new RedisKv(REDIS_URL));
    [instances.first, instances.second] = opened as [RedisKv, RedisKv];
  });
  test.after.always(async () => {
    if (instances.redis) await deletePrefix(instances.redis, prefix);
    await Promise.all(opened.map((kv) => kv.close()));
    instances.redis?.disconnect();
  });
  return instances;
}
