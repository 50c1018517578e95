import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { Redis } from 'ioredis';
import { exportJWK, generateKeyPair } from 'jose';
import { openStore } from '../../src/authorization-server/storage/store.ts';
import { loadConfig } from '../../src/config/config.ts';
import { testSecrets } from '../support/auth-server.ts';
import { cliJson, runCli } from '../support/cli.ts';
import { connectRedis, deletePrefix, dumpPrefix, REDIS_URL, testPrefix } from '../support/redis.ts';

const prefix = testPrefix('cli');
const secrets = testSecrets();
const env = { REDIS_PREFIX: prefix, ...secrets };
const api = 'https://api.insurance.test';
let redis: Redis;

test.before(async () => {
  redis = await connectRedis();
});
test.after.always(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

// One serial story: later commands use what earlier ones made.
test.serial('resources add / list / remove', async (t) => {
  const added = await cliJson(
    ['resources', 'add', '--uri', api, '--scope', 'policies:read reports:read', '--token-ttl', '300'],
    env,
  );
  t.like(added, { uri: api, scopes: ['policies:read', 'reports:read'], token_ttl: 300 });
  await cliJson(['resources', 'add', '--uri', 'https://other.test', '--scope', 'x:y'], env);
  const listed = await cliJson(['resources', 'list'], env);
  t.deepEqual(
    (listed.resources as { uri: string }[]).map((r) => r.uri),
    [api, 'https://other.test'],
  );
  t.deepEqual(await cliJson(['resources', 'remove', 'https://other.test'], env), {
    removed: 'https://other.test',
  });
  t.is(((await cliJson(['resources', 'list'], env)).resources as unknown[]).length, 1);
});

test.serial('resources add refuses OpenID scopes, fragments and relative URIs', async (t) => {
  for (const args of [
    ['--uri', 'https://x.test', '--scope', 'openid'],
    ['--uri', 'https://x.test/#frag', '--scope', 'a'],
    ['--uri', '/relative', '--scope', 'a'],
    ['--uri', 'https://x.test', '--scope', 'a', '--token-ttl', 'abc'],
  ]) {
    const r = await runCli(['resources', 'add', ...args, '--json'], env);
    t.not(r.code, 0, args.join(' '));
    t.is(r.stdout, '');
    t.regex(r.stderr, /\S/);
  }
});

test.serial('clients add prints the secret once; list and show never do', async (t) => {
  const created = await cliJson(
    [
      'clients',
      'add',
      '--id',
      'm2m',
      '--grant',
      'client_credentials',
      '--scope',
      'reports:read',
      '--resource',
      api,
    ],
    env,
  );
  t.is(created.client_id, 'm2m');
  t.regex(String(created.client_secret), /^[A-Za-z0-9_-]{43}$/);

  const listed = await cliJson(['clients', 'list'], env);
  t.deepEqual(
    (listed.clients as { client_id: string }[]).map((c) => c.client_id),
    ['m2m'],
  );
  const shown = await cliJson(['clients', 'show', 'm2m'], env);
  t.like(shown, {
    client_id: 'm2m',
    grant_types: ['client_credentials'],
    scope: 'reports:read',
    resources: [api],
  });
  t.false(JSON.stringify(listed).includes(String(created.client_secret)));
  t.false('client_secret' in shown);
  t.false(
    (await dumpPrefix(redis, prefix)).includes(String(created.client_secret)),
    'secret readable in Redis',
  );

  const rotated = await cliJson(['clients', 'rotate-secret', 'm2m'], env);
  t.not(rotated.client_secret, created.client_secret);
});

test.serial('clients add: login clients, repeated flags, public and private_key_jwt clients', async (t) => {
  const web = await cliJson(
    [
      'clients',
      'add',
      '--id',
      'web',
      '--grant',
      'authorization_code',
      '--grant',
      'refresh_token',
      '--scope',
      'openid profile offline_access policies:read',
      '--resource',
      api,
      '--redirect-uri',
      'https://app.test/cb',
      '--redirect-uri',
      'https://app.test/cb2',
      '--post-logout-redirect-uri',
      'https://app.test/bye',
    ],
    env,
  );
  t.truthy(web.client_secret);
  t.like(await cliJson(['clients', 'show', 'web'], env), {
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: ['https://app.test/cb', 'https://app.test/cb2'],
    post_logout_redirect_uris: ['https://app.test/bye'],
  });

  const spa = await cliJson(
    [
      'clients',
      'add',
      '--id',
      'spa',
      '--grant',
      'authorization_code',
      '--scope',
      'openid',
      '--redirect-uri',
      'http://127.0.0.1:9/cb',
      '--auth-method',
      'none',
    ],
    env,
  );
  t.deepEqual(spa, { client_id: 'spa' });

  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwksFile = join(secrets.KEYS_DIR, 'client.jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] }));
  const pkj = await cliJson(
    [
      'clients',
      'add',
      '--id',
      'pkj',
      '--grant',
      'client_credentials',
      '--scope',
      'reports:read',
      '--resource',
      api,
      '--auth-method',
      'private_key_jwt',
      '--jwks-file',
      jwksFile,
    ],
    env,
  );
  t.deepEqual(pkj, { client_id: 'pkj' });
});

test.serial('clients add refuses what would be unsafe or unusable', async (t) => {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const privateJwks = join(secrets.KEYS_DIR, 'private.jwks.json');
  writeFileSync(privateJwks, JSON.stringify({ keys: [await exportJWK(privateKey)] }));
  const cases: [string, string[]][] = [
    [
      'duplicate id',
      ['--id', 'm2m', '--grant', 'client_credentials', '--scope', 'reports:read', '--resource', api],
    ],
    [
      'unknown resource',
      [
        '--id',
        'x1',
        '--grant',
        'client_credentials',
        '--scope',
        'reports:read',
        '--resource',
        'https://nope.test',
      ],
    ],
    [
      'scope of no resource',
      ['--id', 'x2', '--grant', 'client_credentials', '--scope', 'admin:all', '--resource', api],
    ],
    [
      'public m2m client',
      [
        '--id',
        'x3',
        '--grant',
        'client_credentials',
        '--scope',
        'reports:read',
        '--resource',
        api,
        '--auth-method',
        'none',
      ],
    ],
    ['code without redirect', ['--id', 'x4', '--grant', 'authorization_code', '--scope', 'openid']],
    [
      'redirect with fragment',
      [
        '--id',
        'x5',
        '--grant',
        'authorization_code',
        '--scope',
        'openid',
        '--redirect-uri',
        'https://a.test/#x',
      ],
    ],
    ['unknown grant', ['--id', 'x6', '--grant', 'implicit', '--scope', 'openid']],
    [
      'private key in jwks',
      [
        '--id',
        'x7',
        '--grant',
        'client_credentials',
        '--scope',
        'reports:read',
        '--resource',
        api,
        '--auth-method',
        'private_key_jwt',
        '--jwks-file',
        privateJwks,
      ],
    ],
    [
      'unknown auth method',
      [
        '--id',
        'x8',
        '--grant',
        'client_credentials',
        '--scope',
        'reports:read',
        '--resource',
        api,
        '--auth-method',
        'client_secret_jwt',
      ],
    ],
  ];
  for (const [title, args] of cases) {
    const r = await runCli(['clients', 'add', ...args, '--json'], env);
    t.not(r.code, 0, title);
    t.is(r.stdout, '', title);
  }
});

test.serial('clients remove, and errors for unknown clients', async (t) => {
  t.deepEqual(await cliJson(['clients', 'remove', 'spa'], env), { removed: 'spa' });
  for (const args of [
    ['clients', 'show', 'spa'],
    ['clients', 'remove', 'spa'],
    ['clients', 'rotate-secret', 'pkj'],
  ]) {
    const r = await runCli([...args, '--json'], env);
    t.not(r.code, 0, args.join(' '));
    t.regex(r.stderr, /^admin: /);
  }
});

test.serial('users add / list / set-password / remove, password from stdin', async (t) => {
  const added = await cliJson(
    ['users', 'add', '--email', 'Alice@Example.com', '--name', 'Alice', '--password-stdin'],
    env,
    'correct horse battery staple\n',
  );
  t.is(added.email, 'alice@example.com');
  t.regex(String(added.sub), /^usr_/);
  const dup = await runCli(
    ['users', 'add', '--email', 'alice@example.com', '--password-stdin', '--json'],
    env,
    'another long password',
  );
  t.not(dup.code, 0);
  const short = await runCli(
    ['users', 'add', '--email', 'bob@example.com', '--password-stdin', '--json'],
    env,
    'short',
  );
  t.not(short.code, 0);

  const listed = await cliJson(['users', 'list'], env);
  t.like((listed.users as object[])[0], { email: 'alice@example.com', name: 'Alice' });
  t.false(JSON.stringify(listed).includes('argon2'));
  const dump = await dumpPrefix(redis, prefix);
  t.false(dump.includes('correct horse'), 'password readable at rest');
  t.false(dump.includes('alice@example.com'), 'email readable at rest');

  t.like(
    await cliJson(
      ['users', 'set-password', 'ALICE@example.com', '--password-stdin'],
      env,
      'a new long password\n',
    ),
    { email: 'alice@example.com' },
  );
  t.deepEqual(await cliJson(['users', 'remove', 'alice@example.com'], env), { removed: 'alice@example.com' });
  t.deepEqual((await cliJson(['users', 'list'], env)).users, []);
});

test.serial('keys list / rotate / retire', async (t) => {
  const listed = (await cliJson(['keys', 'list'], env)).keys as {
    kid: string;
    alg: string;
    status: string;
  }[];
  for (const status of ['current', 'next'])
    t.true(listed.some((k) => k.alg === 'RS256' && k.status === status));
  t.false(JSON.stringify(listed).includes('"d"'));

  const before = listed.find((k) => k.alg === 'RS256' && k.status === 'current');
  const next = listed.find((k) => k.alg === 'RS256' && k.status === 'next');
  const rotated = (await cliJson(['keys', 'rotate'], env)).keys as {
    kid: string;
    alg: string;
    status: string;
  }[];
  t.is(rotated.find((k) => k.kid === next?.kid)?.status, 'current');
  t.is(rotated.find((k) => k.kid === before?.kid)?.status, 'retired');

  const refused = await runCli(['keys', 'retire', String(next?.kid), '--json'], env);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /current/);
  const retired = (await cliJson(['keys', 'retire', String(before?.kid)], env)).keys as { kid: string }[];
  t.false(retired.some((k) => k.kid === before?.kid));
});

test('without REDIS_URL the CLI refuses (it would change nothing any server sees)', async (t) => {
  const r = await runCli(['keys', 'list', '--json'], { ...env, REDIS_URL: '' });
  t.not(r.code, 0);
  t.regex(r.stderr, /REDIS_URL/);
});

test('unknown commands and missing flags exit non-zero without JSON on stdout', async (t) => {
  for (const args of [['nope'], ['clients', 'add', '--id', 'x'], ['users', 'add', '--email', 'a@b.c']]) {
    const r = await runCli([...args, '--json'], env);
    t.not(r.code, 0, args.join(' '));
    t.is(r.stdout, '');
  }
});

test('ordinary fixtures are accepted: 1-second token lifetimes, short client ids, 8-character passwords, dotless domains', async (t) => {
  t.like(
    await cliJson(
      ['resources', 'add', '--uri', 'https://fixtures.test', '--scope', 'f:read', '--token-ttl', '1'],
      env,
    ),
    {
      uri: 'https://fixtures.test',
      token_ttl: 1,
    },
  );
  t.like(
    await cliJson(
      [
        'clients',
        'add',
        '--id',
        'rp',
        '--grant',
        'client_credentials',
        '--scope',
        'f:read',
        '--resource',
        'https://fixtures.test',
      ],
      env,
    ),
    { client_id: 'rp' },
  );
  t.like(
    await cliJson(['users', 'add', '--email', 'dave@localhost', '--password-stdin'], env, 'password1\n'),
    { email: 'dave@localhost' },
  );
});

test.serial('every CLI command is in the audit log (who, what, outcome), never a secret', async (t) => {
  const store = await openStore(loadConfig({ ...env, REDIS_URL }));
  try {
    const entries = await store.audit.recent(500);
    const added = entries.find((e) => e.action === 'clients.add' && e.target === 'm2m' && e.outcome === 'ok');
    t.like(added, { source: 'cli' });
    t.regex(String(added?.actor), /^cli:/);
    t.truthy(
      entries.find((e) => e.action === 'clients.add' && e.outcome === 'refused'),
      'refusals too',
    );
    t.truthy(entries.find((e) => e.action === 'keys.rotate' && e.outcome === 'ok'));
    t.false(JSON.stringify(entries).includes('correct horse'));
  } finally {
    await store.close();
  }
});

test('clients add refuses a resource the client would hold no scope at', async (t) => {
  await cliJson(
    ['resources', 'add', '--uri', 'https://unreachable-scope.test', '--scope', 'other:read'],
    env,
  );
  const r = await runCli(
    [
      'clients',
      'add',
      '--id',
      'no-scope-there',
      '--grant',
      'client_credentials',
      '--scope',
      'reports:read',
      '--resource',
      api,
      '--resource',
      'https://unreachable-scope.test',
      '--json',
    ],
    env,
  );
  t.not(r.code, 0);
  t.regex(r.stderr, /unreachable-scope/);
});

test('issue 9 #1: clients add refuses an admin scope on a client with any grant but client_credentials, and audits it', async (t) => {
  const adminApi = 'https://admin-scope-rule.test';
  await cliJson(['resources', 'add', '--uri', adminApi, '--scope', 'admin:users'], env);
  const r = await runCli(
    [
      'clients',
      'add',
      '--id',
      'login-app-with-admin',
      '--grant',
      'authorization_code',
      '--scope',
      'admin:users',
      '--resource',
      adminApi,
      '--redirect-uri',
      'https://app.test/callback',
      '--json',
    ],
    env,
  );
  t.not(r.code, 0);
  t.is(r.stdout, '');
  t.regex(r.stderr, /admin:\* scopes are only for clients whose only grant is client_credentials/);
  const store = await openStore(loadConfig({ ...env, REDIS_URL }));
  try {
    t.is(await store.clients.get('login-app-with-admin'), undefined);
    t.truthy(
      (await store.audit.recent(100)).find(
        (e) => e.action === 'clients.add' && e.target === 'login-app-with-admin' && e.outcome === 'refused',
      ),
    );
  } finally {
    await store.close();
  }
  // The same scope on a machine client is fine.
  const ok = await cliJson(
    [
      'clients',
      'add',
      '--id',
      'machine-admin',
      '--grant',
      'client_credentials',
      '--scope',
      'admin:users',
      '--resource',
      adminApi,
    ],
    env,
  );
  t.is(ok.client_id, 'machine-admin');
});

test.serial(
  'issue 9 finding 14: store rotate-data-key makes a new data key; what was sealed before still opens',
  async (t) => {
    const own = { ...env, REDIS_PREFIX: testPrefix('cli-data-key') };
    t.teardown(() => deletePrefix(redis, own.REDIS_PREFIX));
    await cliJson(['resources', 'add', '--uri', api, '--scope', 'reports:read'], own);
    await cliJson(
      [
        'clients',
        'add',
        '--id',
        'before-rotation',
        '--grant',
        'client_credentials',
        '--scope',
        'reports:read',
        '--resource',
        api,
      ],
      own,
    );

    const first = await cliJson(['store', 'rotate-data-key'], own);
    t.regex(String(first.kid), /^[A-Za-z0-9_-]{6}$/);
    t.true(Date.parse(String(first.active_from)) > Date.now(), 'it seals only once every instance knows it');
    t.is((first.previous as string[]).length, 1);
    const second = await cliJson(['store', 'rotate-data-key'], own);
    t.deepEqual(
      second.previous,
      [first.kid, ...(first.previous as string[])],
      'older keys are kept, newest first',
    );

    t.like(await cliJson(['clients', 'show', 'before-rotation'], own), { client_id: 'before-rotation' });
    const help = await runCli(['store', '--help'], own);
    t.regex(help.stdout, /rotate-data-key/);
  },
);
