import test from 'ava';
import { loadConfig } from '../../src/config/config.ts';
import { MAX_TOKEN_LIFETIME_SECONDS } from '../../src/config/fields.ts';
import { loadResourceServerConfig } from '../../src/config/resource-server-config.ts';
import { ConfigError } from '../../src/shared/errors.ts';
import { createLogger } from '../../src/shared/logger.ts';

const sharedBadValues: [string, Record<string, string>][] = [
  ['PORT', { PORT: 'abc' }],
  ['PORT', { PORT: '70000' }],
  ['ISSUER', { ISSUER: 'ftp://id.example.com' }],
  ['ISSUER', { ISSUER: 'https://id.example.com/?x=1' }],
  ['REDIS_URL', { REDIS_URL: 'http://127.0.0.1:6379' }],
  ['REDIS_PREFIX', { REDIS_PREFIX: 'a b' }],
  ['REDIS_CLUSTER', { REDIS_CLUSTER: 'maybe' }],
  ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
  ['NODE_ENV', { NODE_ENV: 'staging' }],
];

test('both servers refuse a bad shared variable with the same message, naming it', (t) => {
  for (const [variable, env] of sharedBadValues) {
    const fromAs = t.throws(() => loadConfig(env), { instanceOf: ConfigError });
    const fromRs = t.throws(() => loadResourceServerConfig(env), { instanceOf: ConfigError });
    t.is(fromAs?.variable, variable);
    t.is(fromAs?.message, fromRs?.message);
    t.true(fromAs?.message.startsWith(`${variable}: `));
  }
});

test('both servers apply one production ISSUER policy: https, plain http only on localhost (warned)', (t) => {
  const production = {
    NODE_ENV: 'production',
    REDIS_URL: 'redis://127.0.0.1:6379',
    STORE_KEY: 'k',
    RS_STORE_KEY: 'k',
  };
  for (const load of [loadConfig, loadResourceServerConfig]) {
    t.throws(() => load({ ...production, ISSUER: 'http://id.example.com' }), {
      message: 'ISSUER: must be https when NODE_ENV=production',
    });
    t.is(load({ ...production, ISSUER: 'https://id.example.com/' }).issuer, 'https://id.example.com');
    const local = load({ ...production, ISSUER: 'http://localhost:3000' });
    t.true(local.warnings.some((warning) => warning.startsWith('ISSUER is plain http')));
  }
});

test('REDIS_URL of another scheme names the variable and the accepted schemes, not "Invalid URL"', (t) => {
  const error = t.throws(() => loadConfig({ REDIS_URL: 'http://user:hunter2@127.0.0.1:6379' }));
  t.regex(error?.message ?? '', /^REDIS_URL: must be a redis:\/\/ URL, or rediss:\/\/ for TLS/);
  t.false(error?.message.includes('hunter2'), 'a bad value is never echoed: it may carry a password');
});

test('one token-lifetime cap: ACCESS_TOKEN_TTL up to it and no further', (t) => {
  t.is(
    loadConfig({ ACCESS_TOKEN_TTL: String(MAX_TOKEN_LIFETIME_SECONDS) }).accessTokenTtl,
    MAX_TOKEN_LIFETIME_SECONDS,
  );
  t.throws(() => loadConfig({ ACCESS_TOKEN_TTL: String(MAX_TOKEN_LIFETIME_SECONDS + 1) }), {
    message: /^ACCESS_TOKEN_TTL: must be at most 86400 seconds/,
  });
});

test('blank values count as unset, for every variable', (t) => {
  t.is(loadConfig({ PORT: '  ', LOG_LEVEL: '' }).port, 3000);
  t.is(loadResourceServerConfig({ RS_PORT: '', ISSUER: ' ' }).issuer, 'http://localhost:3000');
});

test('the logger takes its level from the config, not from process.env', (t) => {
  const before = process.env.LOG_LEVEL;
  process.env.LOG_LEVEL = 'debug';
  try {
    t.is(createLogger('fields-test').level, 'info');
    t.is(createLogger('fields-test', 'warn').level, 'warn');
  } finally {
    if (before === undefined) delete process.env.LOG_LEVEL;
    else process.env.LOG_LEVEL = before;
  }
});

test('REDIS_SENTINELS: host:port pairs, the primary by name, and REDIS_URL for credentials', (t) => {
  const env = {
    REDIS_URL: 'rediss://:pw@ignored:6380/2',
    REDIS_SENTINELS: '10.0.0.1:26379, sentinel-b.internal:26380',
    REDIS_SENTINEL_NAME: 'idp',
  };
  const expected = {
    url: env.REDIS_URL,
    cluster: false,
    sentinel: {
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: 'sentinel-b.internal', port: 26380 },
      ],
      name: 'idp',
    },
  };
  t.deepEqual(loadConfig(env).redis, expected);
  t.like(loadResourceServerConfig(env).redis, expected);
  t.is(loadConfig({ REDIS_URL: 'redis://a:1', REDIS_SENTINELS: 'b:2' }).redis?.sentinel?.name, 'mymaster');
  t.throws(() => loadConfig({ REDIS_SENTINELS: 'b:2' }), {
    message: /^REDIS_URL: required with REDIS_SENTINELS/,
  });
  t.throws(() => loadConfig({ REDIS_URL: 'redis://a:1', REDIS_SENTINELS: 'b' }), {
    message: 'REDIS_SENTINELS: must be host:port pairs separated by commas',
  });
  t.throws(() => loadConfig({ REDIS_URL: 'redis://a:1', REDIS_SENTINELS: 'b:2', REDIS_CLUSTER: 'true' }), {
    message: /^REDIS_SENTINELS: not with REDIS_CLUSTER/,
  });
});
