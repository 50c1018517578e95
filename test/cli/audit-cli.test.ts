import test from 'ava';
import type { Redis } from 'ioredis';
import { testSecrets } from '../support/auth-server.ts';
import { cliJson, runCli } from '../support/cli.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';

const prefix = testPrefix('cli-audit');
const env = { REDIS_PREFIX: prefix, ...testSecrets() };
let redis: Redis;

test.before(async () => {
  redis = await connectRedis();
});
test.after.always(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

interface Listed {
  seq: number;
  action: string;
  actor: string;
  outcome: string;
  target?: string;
}

test.serial(
  'admin commands land in the trail; audit list shows the newest first, --limit bounds it',
  async (t) => {
    await cliJson(['resources', 'add', '--uri', 'https://api.audit.test', '--scope', 'a:read'], env);
    await cliJson(['resources', 'list'], env);
    const refused = await runCli(['resources', 'remove', 'https://nothing.test', '--json'], env);
    t.not(refused.code, 0);
    const { entries } = (await cliJson(['audit', 'list', '--limit', '2'], env)) as { entries: Listed[] };
    t.is(entries.length, 2);
    t.like(entries[0], {
      seq: 3,
      action: 'resources.remove',
      outcome: 'refused',
      target: 'https://nothing.test',
    });
    t.like(entries[1], { seq: 2, action: 'resources.list', outcome: 'ok' });
    t.regex(entries[0]?.actor ?? '', /^cli:/);
    const bad = await runCli(['audit', 'list', '--limit', '0', '--json'], env);
    t.not(bad.code, 0);
    t.regex(bad.stderr, /--limit/);
  },
);

test.serial(
  'audit verify: ok with the count, then names the entry an attacker deleted (non-zero exit)',
  async (t) => {
    const verdict = await cliJson(['audit', 'verify'], env);
    t.deepEqual(verdict, { ok: true, entries: 4 }, 'three commands and the list');
    // Five entries now (the verify itself too); an attacker deletes the second.
    const [, second] = await redis.xrange(`${prefix}{audit}:log`, '-', '+');
    await redis.xdel(`${prefix}{audit}:log`, second?.[0] as string);
    const broken = await runCli(['audit', 'verify', '--json'], env);
    t.is(broken.code, 1);
    t.deepEqual(JSON.parse(broken.stdout), {
      ok: false,
      entries: 4,
      first_bad: { seq: 2, id: null, reason: 'removed' },
    });
  },
);
