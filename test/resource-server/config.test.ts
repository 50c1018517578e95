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
