import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Redis } from 'ioredis';
import { freePort } from '../support/auth-server.ts';
import { cliJson, runCli } from '../support/cli.ts';
import { keysUnder } from '../support/redis.ts';
import { makeTestCa, type TestCa } from '../support/tls.ts';

// Redis over TLS (rediss://): a redis-server of the test's own that speaks only TLS, with a
// certificate from a private CA made here; the product trusts that CA through NODE_EXTRA_CA_CERTS.
let ca: TestCa;
let dir: string;
let server: ChildProcess;
let port: number;
let inspector: Redis;

test.before(async () => {
  ca = makeTestCa();
  dir = mkdtempSync(join(tmpdir(), 'idp-redis-tls-'));
  port = await freePort();
  server = spawn(
    'redis-server',
    [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--tls-cert-file',
      ca.certFile,
      '--tls-key-file',
      ca.keyFile,
      '--tls-ca-cert-file',
      ca.caFile,
      '--tls-auth-clients',
      'no',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
    ],
    { stdio: 'ignore' },
  );
  // redis-server may take a while to come up on a loaded machine: try for up to 30 s.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const candidate = new Redis({
      host: '127.0.0.1',
      port,
      tls: { ca: ca.ca, servername: 'localhost' },
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    candidate.on('error', () => {});
    try {
      await candidate.connect();
      await candidate.ping();
      inspector = candidate;
      break;
    } catch (error) {
      candidate.disconnect();
      if (Date.now() > deadline || server.exitCode !== null) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
});
test.after.always(async () => {
  inspector?.disconnect();
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  ca?.remove();
});

test('the admin CLI keeps its state in Redis over rediss://, trusting a private CA given by NODE_EXTRA_CA_CERTS', async (t) => {
  const env = {
    REDIS_URL: `rediss://localhost:${port}`,
    REDIS_PREFIX: 'tls-test:',
    KEYS_DIR: ca.dir,
    NODE_EXTRA_CA_CERTS: ca.caFile,
  };
  const added = await cliJson(
    ['resources', 'add', '--uri', 'https://api.tls.test', '--scope', 'reports:read'],
    env,
  );
  t.is(added.uri, 'https://api.tls.test');
  const listed = await cliJson(['resources', 'list'], env);
  t.deepEqual(
    (listed.resources as { uri: string }[]).map((resource) => resource.uri),
    ['https://api.tls.test'],
  );
  t.true((await keysUnder(inspector, 'tls-test:')).length > 0, 'the records are in the TLS-only Redis');
});

test('without the CA the CLI refuses the certificate in one line, naming REDIS_URL', async (t) => {
  const result = await runCli(['resources', 'list'], {
    REDIS_URL: `rediss://localhost:${port}`,
    REDIS_PREFIX: 'tls-test:',
    KEYS_DIR: ca.dir,
  });
  t.is(result.code, 1);
  t.regex(
    result.stderr,
    new RegExp(
      `^admin: cannot reach Redis at rediss://localhost:${port} \\(REDIS_URL\\): .*certificate.*\\n$`,
    ),
  );
});

test('a plain redis:// client gets nothing from the TLS port', async (t) => {
  const plain = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    retryStrategy: () => null,
    connectTimeout: 2000,
    commandTimeout: 2000,
    maxRetriesPerRequest: 0,
  });
  plain.on('error', () => {});
  await t.throwsAsync(plain.connect().then(() => plain.ping()));
  plain.disconnect();
});
