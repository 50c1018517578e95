import { ConfigError, loadResourceServerConfig } from '../config/resource-server-config.ts';
import { loadKeyEncryptionKey } from '../config/secrets.ts';
import { servesRequests, superviseWorkers } from '../shared/cluster.ts';
import { createListener, ListenError, listen } from '../shared/listen.ts';
import { createLogger } from '../shared/logger.ts';
import { buildMetricsApp } from '../shared/metrics-http.ts';
import { connectRedis, delay } from '../shared/redis.ts';
import { buildResourceServerApp, createBearerAuthFromConfig } from './app.ts';
import { createInMemoryInsuranceRepository } from './insurance/in-memory-repository.ts';
import { createRedisInsuranceRepository } from './insurance/redis-repository.ts';

/** In-flight requests get this long to finish after SIGTERM/SIGINT before connections are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

function exitOnConfigError(error: unknown): never {
  if (error instanceof ConfigError) {
    createLogger('resource-server').fatal({ variable: error.variable }, error.message);
    process.exit(1);
  }
  throw error;
}

/** A port in use or an unreadable TLS file: one fatal line, no stack. */
function exitOnStartError(error: unknown): never {
  if (error instanceof ListenError || error instanceof ConfigError) {
    createLogger('resource-server').fatal(
      { variable: error instanceof ConfigError ? error.variable : undefined },
      `cannot listen: ${error.message}`,
    );
    process.exit(1);
  }
  throw error;
}

function loadConfigOrExit() {
  try {
    return loadResourceServerConfig();
  } catch (error) {
    exitOnConfigError(error);
  }
}

const config = loadConfigOrExit();
const logger = createLogger('resource-server', config.logLevel);
for (const warning of config.warnings) logger.warn(warning);

// WORKERS > 1: this process supervises a Node cluster of workers sharing RS_PORT, each running
// serve() below; policies and claims are shared through Redis only.
if (servesRequests(config.workers)) serve();
else superviseWorkers(config.workers, logger);

function serve(): void {
  function openRepository() {
    if (!config.redis) return { repository: createInMemoryInsuranceRepository(), redis: undefined };
    let storeKey: ReturnType<typeof loadKeyEncryptionKey>;
    try {
      storeKey = loadKeyEncryptionKey(config.redis.storeKey);
    } catch (error) {
      exitOnConfigError(error);
    }
    if (storeKey.source === 'generated') {
      logger.warn(
        { file: config.redis.storeKey.file },
        'RS_STORE_KEY unset: generated a development key file',
      );
    }
    const redis = connectRedis(config.redis.url, {
      cluster: config.redis.cluster,
      sentinel: config.redis.sentinel,
    });
    const repository = createRedisInsuranceRepository(redis, config.redis.prefix, storeKey);
    // A wrong RS_STORE_KEY stops the server at once; Redis being away only delays loading the data keys.
    repository.open().catch((error: unknown) => {
      if (error instanceof ConfigError) exitOnConfigError(error);
      logger.warn({ err: error }, 'Redis not reachable yet: the data keys load on the first request');
    });
    return { repository, redis };
  }
  const { repository, redis } = openRepository();

  const bearerAuth = createBearerAuthFromConfig({ config, logger });
  const app = buildResourceServerApp({ config, logger, bearerAuth, repository });
  const server = createListener(app.callback(), { tls: config.tls, maxHeaderSize: 16 * 1024 });
  void listen(server, config.port, undefined, 'RS_PORT').then((port) => {
    logger.info(
      { port, tls: Boolean(config.tls), issuer: config.issuer, audience: config.audience },
      'resource server listening',
    );
    // Not required (discovery is lazy and retried), but tells the operator at once whether the AS answers.
    void bearerAuth.warmUp().then((reachable) => {
      if (reachable) logger.info({ issuer: config.issuer }, 'authorization server discovered');
      else
        logger.warn(
          { issuer: config.issuer },
          'authorization server not reachable yet; will retry on demand',
        );
    });
  }, exitOnStartError);

  // Prometheus metrics on a port of their own, loopback by default: the API's port is public.
  const metricsServer = config.metrics
    ? buildMetricsApp().listen(config.metrics.port, config.metrics.host, () => {
        const address = metricsServer?.address();
        logger.info(
          typeof address === 'object' && address ? { port: address.port, host: address.address } : {},
          'metrics listening',
        );
      })
    : undefined;

  let shuttingDown = false;
  function shutDown(signal: NodeJS.Signals): void {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    server.close((error) => {
      if (error) logger.error({ err: error }, 'error while closing the server');
      void closeRedis().finally(() => process.exit(error ? 1 : 0));
    });
    server.closeIdleConnections();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    setTimeout(() => {
      logger.warn('in-flight requests did not finish in time; closing connections');
      server.closeAllConnections();
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
  }
  /** Quits politely, but never waits more than a second for a Redis that may be gone. */
  async function closeRedis(): Promise<void> {
    if (!redis) return;
    await Promise.race([redis.quit().catch(() => {}), delay(1000)]);
    redis.disconnect();
  }

  process.on('SIGTERM', shutDown);
  process.on('SIGINT', shutDown);
}
