import test from 'ava';
import type { Redis } from 'ioredis';
import { Secret, TOTP } from 'otpauth';
import { openStore } from '../../src/authorization-server/storage/store.ts';
import { loadConfig } from '../../src/config/config.ts';
import { testSecrets } from '../support/auth-server.ts';
import { cliJson, runCli } from '../support/cli.ts';
import { connectRedis, deletePrefix, dumpPrefix, REDIS_URL, testPrefix } from '../support/redis.ts';

const prefix = testPrefix('cli-totp');
const secrets = testSecrets();
const env = { REDIS_PREFIX: prefix, ...secrets };
let redis: Redis;

test.before(async () => {
  redis = await connectRedis();
  await cliJson(
    ['users', 'add', '--email', 'App.User@example.com', '--password-stdin'],
    env,
    'a long enough password',
  );
});
test.after.always(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

test.serial(
  'users totp enroll prints the secret and an RFC 6238 otpauth URI (SHA-1, 6 digits, 30 s)',
  async (t) => {
    const enrolment = await cliJson(['users', 'totp', 'enroll', 'app.user@example.com'], env);
    const secret = enrolment.secret as string;
    t.regex(secret, /^[A-Z2-7]{32}$/, '160 bits, base32');
    const uri = new URL(enrolment.otpauth_uri as string);
    t.is(uri.protocol, 'otpauth:');
    t.is(uri.host, 'totp');
    t.is(uri.searchParams.get('secret'), secret);
    t.is(uri.searchParams.get('algorithm'), 'SHA1');
    t.is(uri.searchParams.get('digits'), '6');
    t.is(uri.searchParams.get('period'), '30');
    t.regex(decodeURIComponent(uri.pathname), /app\.user@example\.com/);
    t.is((enrolment.recovery_codes as string[]).length, 10);

    // The stored secret is the one printed, and it is sealed at rest.
    const store = await openStore(
      loadConfig({ REDIS_URL, REDIS_PREFIX: prefix, LOG_LEVEL: 'silent', ...secrets }),
    );
    try {
      const user = await store.users.findByEmail('app.user@example.com');
      t.is(user?.totp?.secret, secret);
      const code = TOTP.generate({ secret: Secret.fromBase32(secret) });
      t.regex(code, /^\d{6}$/);
    } finally {
      await store.close();
    }
    const dump = await dumpPrefix(redis, prefix);
    t.false(dump.includes(secret));
    const listed = await cliJson(['users', 'list'], env);
    t.like((listed.users as object[])[0], { email: 'app.user@example.com', totp: true });
    t.false(JSON.stringify(listed).includes(secret));
  },
);

test.serial('users totp remove takes the app away; unknown users are an error on stderr', async (t) => {
  t.like(await cliJson(['users', 'totp', 'remove', 'app.user@example.com'], env), {
    email: 'app.user@example.com',
    totp: false,
  });
  const listed = await cliJson(['users', 'list'], env);
  t.like((listed.users as object[])[0], { totp: false });
  for (const command of ['enroll', 'remove']) {
    const missing = await runCli(['users', 'totp', command, 'nobody@example.com', '--json'], env);
    t.not(missing.code, 0);
    t.is(missing.stdout, '');
    t.regex(missing.stderr, /no user nobody@example\.com/);
  }
});

test.serial('users passkeys remove clears every passkey of a user (an admin reset)', async (t) => {
  const store = await openStore(
    loadConfig({ REDIS_URL, REDIS_PREFIX: prefix, LOG_LEVEL: 'silent', ...secrets }),
  );
  try {
    const user = await store.users.findByEmail('app.user@example.com');
    const sub = user?.sub as string;
    for (const id of ['cred-one', 'cred-two']) {
      await store.passkeys.add({
        id,
        sub,
        public_key: 'AAAA',
        counter: 0,
        transports: ['internal'],
        device_type: 'singleDevice',
        created_at: new Date().toISOString(),
      });
    }
    t.is((await store.passkeys.listFor(sub)).length, 2);
    t.like(await cliJson(['users', 'passkeys', 'remove', 'app.user@example.com'], env), {
      passkeys_removed: 2,
    });
    t.is((await store.passkeys.listFor(sub)).length, 0);
    t.is(await store.passkeys.find('cred-one'), undefined);
  } finally {
    await store.close();
  }
});
