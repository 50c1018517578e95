import { once } from 'node:events';
import type { Server } from 'node:http';
import { type Config, loadConfig } from '../config/config.ts';
import { servesRequests, superviseWorkers } from '../shared/cluster.ts';
import { ConfigError } from '../shared/errors.ts';
import { createListener, listen } from '../shared/listen.ts';
import { createLogger } from '../shared/logger.ts';
import { buildAuthorizationServer } from './authorization-server.ts';

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
for (const warning of config.warnings) logger.warn(warning);

// WORKERS > 1: this process supervises a Node cluster of workers sharing the port, each running
// serve() below; state is shared through Redis only.
if (servesRequests(config.workers)) await serve(config);
else superviseWorkers(config.workers, logger);

async function serve(config: Config): Promise<void> {
  if (!config.redisUrl) {
    logger.warn(
      '!!! REDIS_URL is not set: using an in-process store with demo data. Nothing is shared between instances ' +
        'or kept across restarts. Never run this way in production (NODE_ENV=production refuses to). !!!',
    );
  }
  const authorizationServer = await buildAuthorizationServer(config, { logger }).catch((error) =>
    fail(
      'cannot start (is Redis at REDIS_URL reachable, STORE_KEY the right key, and the signing keys loadable?)',
      error,
    ),
  );
  if (authorizationServer.store.secrets.source === 'generated') {
    logger.warn(
      `generated a development store key in ${config.keysDir}/store.key; set STORE_KEY in production`,
    );
  }

  const server = createListener(authorizationServer.app.callback(), { tls: config.tls });
  await listen(server, config.port, undefined, 'PORT').catch((error) => fail('cannot listen', error));
  logger.info(
    {
      issuer: config.issuer,
      port: config.port,
      tls: Boolean(config.tls),
      store: authorizationServer.store.kv.kind,
    },
    'authorization server listening',
  );

  let adminServer: Server | undefined;
  if (authorizationServer.adminApp) {
    adminServer = createListener(authorizationServer.adminApp.callback(), { tls: config.tls });
    await listen(adminServer, config.adminPort ?? 0, config.adminHost, 'ADMIN_PORT').catch((error) =>
      fail('cannot listen', error),
    );
    logger.info(
      { port: config.adminPort, host: config.adminHost, audience: config.adminAudience },
      'admin API listening',
    );
  }

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
    const closed = [server, adminServer]
      .filter((s): s is Server => s !== undefined)
      .map((s) => {
        s.close();
        s.closeIdleConnections();
        return once(s, 'close');
      });
    await Promise.all(closed);
    await authorizationServer.close();
    logger.info('stopped');
    process.exit(0);
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
