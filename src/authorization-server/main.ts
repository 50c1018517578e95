import { once } from 'node:events';
import type { Server } from 'node:http';
import { type Config, loadConfig } from '../config/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { createLogger } from '../shared/logger.ts';
import { buildAdminApp, ensureAdminResource } from './admin-api/app.ts';
import { buildApp } from './app.ts';
import { createInteractions } from './interactions/index.ts';
import { describe, ProviderHost } from './provider/provider-host.ts';
import { openStore } from './storage/store.ts';

/** Start-up failures (bad configuration, a store that cannot be opened) end the process with one clear line. */
function fail(message: string, error: unknown): never {
  createLogger('authorization-server').fatal(
    { variable: error instanceof ConfigError ? error.variable : undefined },
    `${message}: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
}

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  fail('invalid configuration', error);
}
const logger = createLogger('authorization-server', config.logLevel);
const store = await openStore(config).catch((error) =>
  fail('cannot open the store (is Redis at REDIS_URL reachable, and STORE_KEY the right key?)', error),
);

if (!config.redisUrl) {
  logger.warn(
    '!!! REDIS_URL is not set: using an in-process store with demo data. Nothing is shared between instances ' +
      'or kept across restarts. Never run this way in production (NODE_ENV=production refuses to). !!!',
  );
}
if (store.secrets.source === 'generated') {
  logger.warn(
    `generated a development store key in ${config.keysDir}/store.key; set STORE_KEY in production`,
  );
}

const interactions = createInteractions({ config, store, logger, host: () => host });
const host = new ProviderHost({ config, store, logger, pages: interactions.pages });
await host.start().catch((error) => fail('cannot load signing keys and resources', error));
if (!config.redisUrl) await interactions.seedDemoData?.();

const app = buildApp({ config, store, host, logger, routers: interactions.routers });
const server: Server = app.listen(config.port);
server.headersTimeout = 10_000;
server.requestTimeout = 30_000;
await once(server, 'listening');
logger.info(
  { issuer: config.issuer, port: config.port, store: store.kv.kind },
  'authorization server listening',
);

let adminServer: Server | undefined;
if (config.adminPort && config.adminAudience) {
  await ensureAdminResource(store, config.adminAudience);
  const admin = buildAdminApp({
    config,
    store,
    host,
    logger: logger.child({ surface: 'admin' }),
    audience: config.adminAudience,
  });
  adminServer = admin.listen(config.adminPort, config.adminHost);
  await once(adminServer, 'listening');
  logger.info(
    { port: config.adminPort, host: config.adminHost, audience: config.adminAudience },
    'admin API listening',
  );
}

const rotationTimer = config.keyRotationInterval
  ? setInterval(
      () =>
        void store.keyRing
          .rotateIfDue(config.keyRotationInterval as number)
          .then((rotated) => rotated && logger.info('signing keys rotated on schedule'))
          .catch((error) =>
            logger.warn({ err: describe(error) }, 'scheduled key rotation failed; will retry'),
          ),
      Math.min(60_000, (config.keyRotationInterval * 1000) / 10),
    )
  : undefined;

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down: finishing in-flight requests');
  const force = setTimeout(() => {
    logger.warn('in-flight requests did not finish in 10 s; closing connections');
    server.closeAllConnections();
    adminServer?.closeAllConnections();
  }, 10_000);
  force.unref();
  const giveUp = setTimeout(() => {
    logger.error('shutdown did not complete in 15 s; exiting');
    process.exit(1);
  }, 15_000);
  giveUp.unref();
  if (rotationTimer) clearInterval(rotationTimer);
  const closed = [server, adminServer]
    .filter((s): s is Server => s !== undefined)
    .map((s) => {
      s.close();
      s.closeIdleConnections();
      return once(s, 'close');
    });
  await Promise.all(closed);
  await host.stop();
  await store.close();
  logger.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
