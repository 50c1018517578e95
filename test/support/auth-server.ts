import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAuthorizationServer } from '../../src/authorization-server/authorization-server.ts';
import type { ProviderHost } from '../../src/authorization-server/provider/provider-host.ts';
import type { Store } from '../../src/authorization-server/storage/store.ts';
import { type Config, loadConfig } from '../../src/config/config.ts';
import type { Clock } from '../../src/shared/clock.ts';
import { createListener, listen } from '../../src/shared/listen.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { REDIS_URL } from './redis.ts';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A fresh store key and keys folder, shared by every instance of one test's deployment. */
export function testSecrets(): { STORE_KEY: string; KEYS_DIR: string } {
  return {
    STORE_KEY: randomBytes(32).toString('base64url'),
    KEYS_DIR: mkdtempSync(join(tmpdir(), 'idp-keys-')),
  };
}

export interface RunningAuthServer {
  issuer: string;
  port: number;
  config: Config;
  store: Store;
  host: ProviderHost;
  close(): Promise<void>;
}

/**
 * A real authorization server in-process: real Redis, real HTTP on loopback. Pass the same
 * prefix and secrets to start a second instance of the same deployment.
 */
export async function startAuthServer(options: {
  prefix: string;
  secrets: { STORE_KEY: string; KEYS_DIR: string };
  env?: Record<string, string>;
  port?: number;
  /** The clock of the login throttle and TOTP checks (epoch ms); the real clock when absent. */
  clock?: Clock;
}): Promise<RunningAuthServer> {
  const port = options.port ?? (await freePort());
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: String(port),
    ISSUER: `http://127.0.0.1:${port}`,
    REDIS_URL,
    REDIS_PREFIX: options.prefix,
    LOG_LEVEL: 'silent',
    RELOAD_INTERVAL_MS: '500',
    ...options.secrets,
    ...options.env,
  });
  const logger = createLogger('test-auth-server', 'silent');
  const { app, host, store, close } = await buildAuthorizationServer(config, {
    logger,
    clock: options.clock,
  });
  const server: Server = createListener(app.callback(), { tls: config.tls });
  await listen(server, port, '127.0.0.1', 'PORT');
  return {
    issuer: config.issuer,
    port,
    config,
    store,
    host,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await close();
    },
  };
}
