import type Koa from 'koa';
import type { Config } from '../config/config.ts';
import type { Clock } from '../shared/clock.ts';
import { describe } from '../shared/describe-error.ts';
import type { Logger } from '../shared/logger.ts';
import { observePasswordHashQueue, observeSigningKeys } from '../shared/metrics.ts';
import { buildAdminApp, ensureAdminResource } from './admin-api/app.ts';
import { buildApp } from './app.ts';
import { createInteractions, createProviderPages } from './interactions/index.ts';
import { createViews } from './interactions/views.ts';
import { scheduleAuditRetention } from './observability/audit-retention.ts';
import { ProviderHost } from './provider/provider-host.ts';
import type { Kv } from './storage/kv.ts';
import { passwordHashQueueDepth } from './storage/password-hasher.ts';
import { openStore, type Store } from './storage/store.ts';

export interface AuthorizationServerDeps {
  logger: Logger;
  /** A storage backend to use instead of the one config names (tests of a store fault). */
  kv?: Kv;
  /** The clock of the login throttle and TOTP checks (epoch ms); tests move it instead of sleeping. */
  clock?: Clock;
}

export interface AuthorizationServer {
  /** The public OAuth/OpenID Connect app. */
  app: Koa;
  /** The admin API (and /metrics), when ADMIN_PORT is set; it never shares the public port. */
  adminApp: Koa | undefined;
  host: ProviderHost;
  store: Store;
  /** Stops the timers and watchers and closes the store; the caller closes its listeners first. */
  close(): Promise<void>;
}

/**
 * The one composition root: `main.ts`, the tests and the bench all build the server here, so what is
 * tested is what runs. Nothing is circular: the provider's own pages come first, then the provider
 * host (keys, resources), then the interactions and apps that use the host.
 */
export async function buildAuthorizationServer(
  config: Config,
  { logger, kv, clock }: AuthorizationServerDeps,
): Promise<AuthorizationServer> {
  const store = await openStore(config, kv);
  const stopCaching: (() => Promise<void>)[] = [];
  try {
    // Clients and APIs are read on every token request: a server keeps them in memory and drops
    // them as they change (storage/record-cache.ts).
    stopCaching.push(await store.clients.cache.listen(), await store.resources.cache.listen());
    const views = createViews(config.issuer);
    const host = new ProviderHost({ config, store, logger, pages: createProviderPages(views) });
    await host.start();
    observePasswordHashQueue(passwordHashQueueDepth);
    observeSigningKeys(() => host.snapshot?.ring.keys);
    const interactions = createInteractions({ config, store, logger, views, host, clock });
    if (!config.redisUrl) await interactions.seedDemoData?.();

    const app = buildApp({ config, store, host, logger, routers: interactions.routers });

    let adminApp: Koa | undefined;
    if (config.adminPort && config.adminAudience) {
      await ensureAdminResource(store, config.adminAudience);
      adminApp = buildAdminApp({
        config,
        store,
        host,
        logger: logger.child({ surface: 'admin' }),
        audience: config.adminAudience,
      });
    }

    const stopRotation = scheduleKeyRotation(config, store, logger);
    const stopRetention = scheduleAuditRetention(config, store, logger);
    return {
      app,
      adminApp,
      host,
      store,
      async close() {
        stopRotation();
        stopRetention();
        await host.stop();
        await Promise.all(stopCaching.map((stop) => stop()));
        await store.close();
      },
    };
  } catch (error) {
    await Promise.all(stopCaching.map((stop) => stop()));
    await store.close();
    throw error;
  }
}

/** KEY_ROTATION_INTERVAL: every instance checks; the key ring's compare-and-set lets one win. */
function scheduleKeyRotation(config: Config, store: Store, logger: Logger): () => void {
  const interval = config.keyRotationInterval;
  if (!interval) return () => {};
  const timer = setInterval(
    () =>
      void store.keyRing
        .rotateIfDue(interval)
        .then((rotated) => {
          if (!rotated) return;
          logger.info('signing keys rotated on schedule');
          store.audit.notify({ actor: 'server', action: 'keys.rotate', source: 'schedule', outcome: 'ok' });
        })
        .catch((error) => logger.warn({ err: describe(error) }, 'scheduled key rotation failed; will retry')),
    Math.min(60_000, (interval * 1000) / 10),
  );
  timer.unref();
  return () => clearInterval(timer);
}
