import type { Config } from '../../config/config.ts';
import { MAX_TOKEN_LIFETIME_SECONDS } from '../../config/fields.ts';
import { loadStoreSecrets, type StoreSecrets } from '../../config/secrets.ts';
import { type DataKeyRotation, loadDataKeys, rotateDataKey, SealedBox } from '../../shared/sealing/index.ts';
import { families } from '../keys/signing-key-ring.ts';
import { AuditLog } from './audit-log.ts';
import { ChangeFeed } from './change-feed.ts';
import { ClientStore } from './client-store.ts';
import { ClientUsage } from './client-usage.ts';
import { ConsentStore } from './consent-store.ts';
import { JwtTokenStore } from './jwt-token-store.ts';
import { KeyRingStore } from './key-ring-store.ts';
import type { Kv } from './kv.ts';
import { MemoryKv } from './memory-kv.ts';
import { PasskeyStore } from './passkey-store.ts';
import { KeyNames } from './redis-keys.ts';
import { RedisKv } from './redis-kv.ts';
import { ResourceStore } from './resource-store.ts';
import { UserStore } from './user-store.ts';

/** Everything stateful, wired once: the servers and the CLI open the same store the same way. */
export interface Store {
  kv: Kv;
  keys: KeyNames;
  box: SealedBox;
  feed: ChangeFeed;
  resources: ResourceStore;
  clients: ClientStore;
  consents: ConsentStore;
  users: UserStore;
  passkeys: PasskeyStore;
  keyRing: KeyRingStore;
  jwtTokens: JwtTokenStore;
  audit: AuditLog;
  usage: ClientUsage;
  secrets: StoreSecrets;
  /**
   * Makes a new encryption data key (issue 9 finding 14: random 96-bit GCM nonces must not pile up
   * under one key forever). Every instance learns it within RELOAD_INTERVAL_MS and it seals from
   * `active_from` on; older values still open and are re-sealed as they are read or rewritten.
   */
  rotateDataKey(options?: { activateAfterMs?: number }): Promise<DataKeyRotation>;
  close(): Promise<void>;
}

export async function openStore(config: Config, kv?: Kv): Promise<Store> {
  const secrets = loadStoreSecrets(config);
  const backend = kv ?? (config.redisUrl ? new RedisKv(config.redisUrl, config.redis) : new MemoryKv());
  const dataKeysName = `${config.redisPrefix}data-keys`;
  let box: SealedBox;
  try {
    box = new SealedBox(await loadDataKeys(backend, dataKeysName, secrets));
  } catch (error) {
    await backend.close();
    throw error;
  }
  // Every instance re-reads the data keys, so a rotated key is known everywhere before it seals.
  const reloadDataKeys = async () => box.update(await loadDataKeys(backend, dataKeysName, secrets));
  const dataKeysTimer = setInterval(() => reloadDataKeys().catch(() => {}), config.reloadIntervalMs);
  dataKeysTimer.unref();
  const keys = new KeyNames(config.redisPrefix, (ns, id) => box.hashId(ns, id));
  const feed = new ChangeFeed(backend, keys);
  const jwtTokens = new JwtTokenStore(backend, keys);
  const keyRing: KeyRingStore = new KeyRingStore(backend, keys, box, feed, {
    algs: async () => families(config.accessTokenAlg, await resources.namedAlgs()),
    maxTokenLifetimeSeconds: MAX_TOKEN_LIFETIME_SECONDS,
    tokens: jwtTokens,
  });
  const resources: ResourceStore = new ResourceStore(backend, keys, {
    defaultAlg: config.accessTokenAlg,
    ensureKeyFamily: (alg) => keyRing.ensure([alg]),
  });
  const consents = new ConsentStore(backend, keys, box);
  return {
    kv: backend,
    keys,
    box,
    feed,
    resources,
    clients: new ClientStore(backend, keys, box, resources, consents),
    consents,
    users: new UserStore(backend, keys, box),
    passkeys: new PasskeyStore(backend, keys, box),
    keyRing,
    jwtTokens,
    audit: new AuditLog(backend, keys, box),
    usage: new ClientUsage(backend, keys),
    secrets,
    rotateDataKey: async (options) => {
      const rotation = await rotateDataKey(backend, dataKeysName, secrets, options);
      await reloadDataKeys();
      return rotation;
    },
    close: () => {
      clearInterval(dataKeysTimer);
      return backend.close();
    },
  };
}
