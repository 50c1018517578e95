import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { loadConfig } from '../../src/config/config.ts';
import { loadStoreSecrets } from '../../src/config/secrets.ts';
import { ConfigError } from '../../src/shared/errors.ts';

const key = () => randomBytes(32).toString('base64url');

test('defaults follow SPEC: port 3000 and an issuer on localhost', (t) => {
  const config = loadConfig({});
  t.is(config.port, 3000);
  t.is(config.issuer, 'http://localhost:3000');
  t.is(config.redisUrl, undefined);
  t.is(config.redisPrefix, 'idp:');
});

test('ISSUER defaults to the PORT', (t) => {
  t.is(loadConfig({ PORT: '3100' }).issuer, 'http://localhost:3100');
});

const invalid: [string, Record<string, string>, RegExp][] = [
  ['PORT not a number', { PORT: 'abc' }, /^PORT:/],
  ['PORT out of range', { PORT: '70000' }, /^PORT:/],
  ['ISSUER not a URL', { ISSUER: 'not a url' }, /^ISSUER:/],
  ['ISSUER with a query', { ISSUER: 'https://id.example.com/?x=1' }, /^ISSUER:/],
  ['REDIS_URL of another scheme', { REDIS_URL: 'http://127.0.0.1:6379' }, /^REDIS_URL:/],
  ['REDIS_PREFIX with spaces', { REDIS_PREFIX: 'a b' }, /^REDIS_PREFIX:/],
  ['NODE_ENV unknown', { NODE_ENV: 'staging' }, /^NODE_ENV:/],
  ['ACCESS_TOKEN_ALG none', { ACCESS_TOKEN_ALG: 'none' }, /^ACCESS_TOKEN_ALG:/],
  ['TRUST_PROXY not a boolean', { TRUST_PROXY: 'maybe' }, /^TRUST_PROXY:/],
  ['TRUST_PROXY hops out of range', { TRUST_PROXY: '11' }, /^TRUST_PROXY:/],
  ['TRUST_PROXY hops not a whole number', { TRUST_PROXY: '1.5' }, /^TRUST_PROXY:/],
];
for (const [title, env, message] of invalid) {
  test(`refuses ${title}, naming the variable`, (t) => {
    t.throws(() => loadConfig(env), { instanceOf: ConfigError, message });
  });
}

test('issue 9 #5: TRUST_PROXY is off, one hop (true) or a number of hops', (t) => {
  for (const [value, hops] of [
    [undefined, 0],
    ['false', 0],
    ['0', 0],
    ['true', 1],
    ['1', 1],
    ['2', 2],
  ] as const) {
    const config = loadConfig({ TRUST_PROXY: value });
    t.is(config.proxyHops, hops, String(value));
    t.is(config.trustProxy, hops > 0, String(value));
  }
});

const production = {
  NODE_ENV: 'production',
  REDIS_URL: 'rediss://redis.internal:6379',
  STORE_KEY: key(),
  ISSUER: 'https://id.example.com',
};

test('production starts with Redis, a store key and an https issuer', (t) => {
  t.true(loadConfig(production).production);
});

test('production refuses the in-process store', (t) => {
  t.throws(() => loadConfig({ ...production, REDIS_URL: '' }), { message: /^REDIS_URL: required/ });
});

test('production refuses a generated store key', (t) => {
  t.throws(() => loadConfig({ ...production, STORE_KEY: '' }), { message: /^STORE_KEY: required/ });
});

test('production refuses an http issuer other than localhost', (t) => {
  t.throws(() => loadConfig({ ...production, ISSUER: 'http://id.example.com' }), {
    message: /^ISSUER: must be https/,
  });
  t.notThrows(() => loadConfig({ ...production, ISSUER: 'http://localhost:3000' }));
});

test('a STORE_KEY that is not 32 bytes is refused', (t) => {
  t.throws(() => loadStoreSecrets(loadConfig({ STORE_KEY: 'c2hvcnQ' })), {
    message: /^STORE_KEY: must be 32/,
  });
});

test('outside production a missing store key is generated once, private to the owner', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'idp-keys-'));
  const first = loadStoreSecrets(loadConfig({ KEYS_DIR: dir }));
  const second = loadStoreSecrets(loadConfig({ KEYS_DIR: dir }));
  t.is(first.source, 'generated');
  t.is(second.source, 'file');
  t.deepEqual(first.current, second.current);
  t.is(statSync(join(dir, 'store.key')).mode & 0o777, 0o600);
  t.is(readFileSync(join(dir, 'store.key'), 'utf8').trim().length, 43);
});

test('a corrupt keys/store.key is an error naming the file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'idp-keys-'));
  writeFileSync(join(dir, 'store.key'), 'garbage');
  t.throws(() => loadStoreSecrets(loadConfig({ KEYS_DIR: dir })), { message: /store\.key/ });
});
