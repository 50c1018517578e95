import test from 'ava';
import { ConfigError, loadResourceServerConfig } from '../../src/config/resource-server-config.ts';

test('defaults follow SPEC', (t) => {
  const config = loadResourceServerConfig({});
  t.like(config, {
    port: 4000,
    issuer: 'http://localhost:3000',
    audience: 'http://localhost:4000',
    introspection: undefined,
    clockToleranceSeconds: 5,
    jwksCooldownSeconds: 1,
    logLevel: 'info',
  });
});

test('ISSUER defaults from PORT and RS_AUDIENCE from RS_PORT', (t) => {
  t.like(loadResourceServerConfig({ PORT: '3100', RS_PORT: '4100' }), {
    issuer: 'http://localhost:3100',
    audience: 'http://localhost:4100',
  });
});

test('explicit values win', (t) => {
  const config = loadResourceServerConfig({
    ISSUER: 'https://id.example.com',
    RS_AUDIENCE: 'https://api.example.com',
    RS_INTROSPECTION_CLIENT_ID: 'rs',
    RS_INTROSPECTION_CLIENT_SECRET: 'secret',
  });
  t.like(config, {
    issuer: 'https://id.example.com',
    audience: 'https://api.example.com',
    introspection: { clientId: 'rs', clientSecret: 'secret' },
  });
});

test('bad values fail with a ConfigError naming the variable', (t) => {
  const cases: [Record<string, string>, string][] = [
    [{ RS_PORT: 'abc' }, 'RS_PORT'],
    [{ RS_PORT: '70000' }, 'RS_PORT'],
    [{ PORT: '3.5' }, 'PORT'],
    [{ ISSUER: 'not a url' }, 'ISSUER'],
    [{ ISSUER: 'ftp://id.example.com' }, 'ISSUER'],
    [{ ISSUER: 'https://id.example.com/?x=1' }, 'ISSUER'],
    [{ RS_AUDIENCE: 'api' }, 'RS_AUDIENCE'],
    [{ RS_INTROSPECTION_CLIENT_ID: 'rs' }, 'RS_INTROSPECTION_CLIENT_SECRET'],
    [{ RS_INTROSPECTION_CLIENT_SECRET: 's' }, 'RS_INTROSPECTION_CLIENT_ID'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ RS_JWKS_COOLDOWN_SECONDS: '-1' }, 'RS_JWKS_COOLDOWN_SECONDS'],
  ];
  for (const [env, variable] of cases) {
    const error = t.throws(() => loadResourceServerConfig(env), { instanceOf: ConfigError });
    t.is(error?.variable, variable);
    t.true(error?.message.includes(variable));
  }
});

test('plain http in production is warned about', (t) => {
  const { warnings } = loadResourceServerConfig({ NODE_ENV: 'production' });
  t.true(warnings.some((warning) => warning.includes('ISSUER')));
});

test('ISSUER is normalised like the auth server does it: no trailing slash', (t) => {
  t.is(loadResourceServerConfig({ ISSUER: 'https://id.example.com/' }).issuer, 'https://id.example.com');
});

test('issue 9 finding 14: a bad REDIS_URL is refused without echoing its password', (t) => {
  for (const url of [
    'redis://admin:pw-Zq81xK@[bad-host:6379',
    'http://admin:pw-Zq81xK@redis.internal:6379',
  ]) {
    const error = t.throws(() => loadResourceServerConfig({ REDIS_URL: url }), { instanceOf: ConfigError });
    t.is(error?.variable, 'REDIS_URL');
    t.false(error?.message.includes('pw-Zq81xK'), error?.message);
    t.false(error?.message.includes('admin:'), error?.message);
  }
});

test('RS_STORE_KEY is required in production when REDIS_URL is set; elsewhere keys/rs-store.key', (t) => {
  const production = { NODE_ENV: 'production', REDIS_URL: 'redis://127.0.0.1:6379' };
  const error = t.throws(() => loadResourceServerConfig(production), { instanceOf: ConfigError });
  t.is(error?.variable, 'RS_STORE_KEY');
  t.like(loadResourceServerConfig({ ...production, RS_STORE_KEY: 'k' }).redis?.storeKey, {
    variable: 'RS_STORE_KEY',
    value: 'k',
  });
  t.regex(
    loadResourceServerConfig({ REDIS_URL: 'redis://127.0.0.1:6379', KEYS_DIR: '/tmp/k' }).redis?.storeKey
      .file ?? '',
    /^\/tmp\/k\/rs-store\.key$/,
  );
});
