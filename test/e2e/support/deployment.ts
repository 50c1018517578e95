import { createServer, type Server } from 'node:http';
import type { Redis } from 'ioredis';
import type { Clock } from '../../../src/shared/clock.ts';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../../support/redis.ts';

export const API = 'http://api.insurance.test';
export const API_SCOPES = ['policies:read', 'policies:write', 'claims:read'];
export const PASSWORD = 'correct horse battery staple';

export interface TestUser {
  email: string;
  password: string;
  sub: string;
}

/**
 * One deployment per test file: its own Redis prefix and secrets, any number of instances, and
 * cleanup of its own keys only.
 */
export class Deployment {
  readonly prefix: string;
  readonly secrets = testSecrets();
  readonly redis: Redis;
  readonly #servers: RunningAuthServer[] = [];

  private constructor(prefix: string, redis: Redis) {
    this.prefix = prefix;
    this.redis = redis;
  }

  static async create(name: string): Promise<Deployment> {
    return new Deployment(testPrefix(name), await connectRedis());
  }

  /** Starts an instance; `env` overrides (ISSUER to put two instances behind one issuer). */
  async start(
    options: { env?: Record<string, string>; port?: number; clock?: Clock } = {},
  ): Promise<RunningAuthServer> {
    const server = await startAuthServer({ prefix: this.prefix, secrets: this.secrets, ...options });
    this.#servers.push(server);
    return server;
  }

  async stop(server: RunningAuthServer): Promise<void> {
    this.#servers.splice(this.#servers.indexOf(server), 1);
    await server.close();
  }

  /** Registers the API, then reloads the instance so its provider knows the scopes at once. */
  async addApi(server: RunningAuthServer): Promise<void> {
    await server.store.resources.add({ uri: API, scopes: API_SCOPES });
  }

  async addUser(server: RunningAuthServer, email: string): Promise<TestUser> {
    const user = await server.store.users.add({ email, name: 'Test Person', password: PASSWORD });
    return { email, password: PASSWORD, sub: user.sub };
  }

  async keys(pattern: string): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    for (let i = 0; i < 1000; i++) {
      const [next, batch] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}${pattern}`, 'COUNT', 500);
      found.push(...batch);
      cursor = next;
      if (cursor === '0') break;
    }
    return found;
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.#servers.map((s) => s.close()));
    await deletePrefix(this.redis, this.prefix);
    this.redis.disconnect();
  }
}

/** A stand-in for the client application's pages (redirect and post-logout URIs). */
export async function startClientSite(): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/favicon')) {
      res.writeHead(204).end();
      return;
    }
    if (req.url === '/csp-canary') {
      // A page that breaks its own CSP: proves a test's CSP watcher sees violations.
      res.writeHead(200, { 'content-type': 'text/html', 'content-security-policy': "default-src 'none'" });
      res.end(
        '<!doctype html><html lang="en"><title>canary</title><style>p{color:red}</style><p>canary</p></html>',
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><title>Client app</title><p>Back at the client app.</p></html>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    origin: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
