import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import test from 'ava';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Adapter, type KoaContextWithOIDC } from 'oidc-provider';
import { BODY_LIMITS } from '../../../src/config/body-limits.ts';
import { StoreUnavailableError } from '../../../src/shared/errors.ts';

/**
 * The oidc-provider internals this server leans on, checked against the installed version (pinned
 * exactly in package.json): an upgrade that changes one of them fails here, not in production.
 * A bare provider, in memory, on loopback.
 */
let server: Server;
let issuer: string;
const routes: (string | undefined)[] = [];
let failFind = false;

class MemoryAdapter implements Adapter {
  static readonly records = new Map<string, unknown>();
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
  async upsert(id: string, payload: object) {
    MemoryAdapter.records.set(`${this.name}:${id}`, payload);
  }
  async find(id: string) {
    if (failFind && this.name === 'AccessToken')
      throw new StoreUnavailableError(new Error('connection closed'));
    return MemoryAdapter.records.get(`${this.name}:${id}`) as never;
  }
  async findByUid() {
    return undefined;
  }
  async findByUserCode() {
    return undefined;
  }
  async consume() {}
  async destroy(id: string) {
    MemoryAdapter.records.delete(`${this.name}:${id}`);
  }
  async revokeByGrantId() {}
}

test.before(async () => {
  server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const provider = new Provider(issuer, {
    adapter: MemoryAdapter,
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'contract', alg: 'RS256', use: 'sig' }] },
    ttl: { ClientCredentials: 60 },
    clients: [
      {
        client_id: 'contract',
        client_secret: 'a-secret-long-enough-for-the-contract',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      },
    ],
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      devInteractions: { enabled: false },
    },
  });
  provider.use(async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    await next();
    routes.push((ctx as { oidc?: { route?: string } }).oidc?.route);
  });
  server.on('request', provider.callback());
});

test.after.always(() => {
  server?.closeAllConnections();
  server?.close();
});

const basic = `Basic ${Buffer.from('contract:a-secret-long-enough-for-the-contract').toString('base64')}`;

async function post(path: string, body: string) {
  const response = await fetch(`${issuer}${path}`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

test('package.json pins oidc-provider to the exact version installed', (t) => {
  const pinned = JSON.parse(readFileSync('package.json', 'utf8')).dependencies['oidc-provider'];
  const installed = JSON.parse(readFileSync('node_modules/oidc-provider/package.json', 'utf8')).version;
  t.regex(pinned, /^\d+\.\d+\.\d+$/, 'an exact version, no range');
  t.is(pinned, installed);
});

test.serial(
  'provider.use runs around routing; ctx.oidc.route names the endpoint, whatever its spelling',
  async (t) => {
    routes.length = 0;
    for (const path of ['/token/introspection', '/Token/Introspection/', '/TOKEN/REVOCATION']) {
      await post(path, 'token=x');
    }
    t.deepEqual(routes, ['introspection', 'introspection', 'revocation']);
  },
);

test('a JWT is refused as unsupported_token_type by introspection and revocation (why the bridge exists)', async (t) => {
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln';
  for (const path of ['/token/introspection', '/token/revocation']) {
    const { status, body } = await post(path, `token=${jwt}`);
    t.is(status, 400, path);
    t.is(body.error, 'unsupported_token_type');
  }
});

test('the body is read from the request stream, up to BODY_LIMITS.oauth bytes and not one more', async (t) => {
  const form = 'grant_type=client_credentials&pad=';
  const fits = await post('/token', form + 'x'.repeat(BODY_LIMITS.oauth - form.length));
  t.is(fits.status, 200, 'a body of exactly the limit is read whole');
  const over = await post('/token', form + 'x'.repeat(BODY_LIMITS.oauth - form.length + 1));
  t.is(over.status, 400);
  t.is(over.body.error, 'invalid_request');
});

test.serial(
  'a thrown error is rendered from its statusCode, expose, message and error_description',
  async (t) => {
    failFind = true;
    try {
      const { status, body } = await post('/token/introspection', 'token=some-opaque-token');
      t.is(status, 503);
      t.deepEqual(body, {
        error: 'temporarily_unavailable',
        error_description: StoreUnavailableError.DESCRIPTION,
      });
    } finally {
      failFind = false;
    }
  },
);
