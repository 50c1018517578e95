import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { freePort } from '../support/auth-server.ts';
import { runCli } from '../support/cli.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';

// What a new admin sees when a first command is wrong: one line that names what to fix. Serial:
// each test starts a CLI process, and a loaded 2-core machine starts them slowly side by side.
const env = { REDIS_PREFIX: 'cli-first-run-unused:' };

const badOptions: [string, string[], RegExp][] = [
  [
    '--grant',
    ['clients', 'add', '--id', 'x', '--grant', 'password', '--scope', 'a'],
    /option '--grant <grant>' argument 'password' is invalid\. must be one of authorization_code, refresh_token, client_credentials/,
  ],
  [
    '--uri',
    ['resources', 'add', '--uri', 'api.example.com', '--scope', 'a'],
    /option '--uri <uri>' argument 'api\.example\.com' is invalid\. not an absolute URL/,
  ],
  [
    '--resource',
    ['clients', 'add', '--id', 'x', '--grant', 'client_credentials', '--scope', 'a', '--resource', 'nope'],
    /option '--resource <uri>' argument 'nope' is invalid/,
  ],
  [
    '--redirect-uri',
    [
      'clients',
      'add',
      '--id',
      'x',
      '--grant',
      'authorization_code',
      '--scope',
      'openid',
      '--redirect-uri',
      '/cb',
    ],
    /option '--redirect-uri <uri>' argument '\/cb' is invalid/,
  ],
];
for (const [option, args, message] of badOptions) {
  test.serial(`a bad ${option} is reported against ${option}, before touching the store`, async (t) => {
    // An unreachable Redis proves the option is checked first.
    const result = await runCli(args, { ...env, REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    t.is(result.code, 2);
    t.regex(result.stderr, message);
    t.is(result.stdout, '');
  });
}

test.serial(
  'an unreachable Redis is one line naming REDIS_URL and the cause, within seconds, without the password',
  async (t) => {
    const port = await freePort();
    const result = await runCli(['clients', 'list', '--json'], {
      ...env,
      REDIS_URL: `redis://:s3cret-pw@127.0.0.1:${port}`,
    });
    t.is(result.code, 1);
    t.is(result.stdout, '');
    t.is(
      result.stderr,
      `admin: cannot reach Redis at redis://127.0.0.1:${port} (REDIS_URL): connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
  },
);

test.serial('REDIS_URL of another scheme names the variable and the accepted schemes', async (t) => {
  const result = await runCli(['clients', 'list'], { ...env, REDIS_URL: 'http://127.0.0.1:6379' });
  t.is(result.code, 1);
  t.is(
    result.stderr,
    'admin: REDIS_URL: must be a redis:// URL, or rediss:// for TLS (for example redis://127.0.0.1:6379)\n',
  );
});

test.serial(
  'admin scopes at an unknown resource: the hint says the server registers it with ADMIN_PORT, as the README does',
  async (t) => {
    const prefix = testPrefix('cli-first-run');
    const redis = await connectRedis();
    try {
      const result = await runCli(
        [
          ...[
            'clients',
            'add',
            '--id',
            'key-admin',
            '--grant',
            'client_credentials',
            '--scope',
            'admin:keys',
          ],
          ...['--resource', 'http://localhost:3001'],
        ],
        { REDIS_PREFIX: prefix, KEYS_DIR: mkdtempSync(join(tmpdir(), 'idp-keys-')) },
      );
      t.is(result.code, 1);
      t.regex(result.stderr, /registers itself when it starts with ADMIN_PORT/);
      t.notRegex(result.stderr, /resources add/);
    } finally {
      await deletePrefix(redis, prefix);
      redis.disconnect();
    }
  },
);
