/**
 * `npm run bench` (`-- --quick` for a short run): every figure beside the limit it is judged
 * against, each limit measured in this same run on this same machine, so the ratios mean something
 * anywhere. Servers run pinned to CPU 0 and load generators (autocannon, flow drivers) to the other
 * CPUs when `taskset` exists; rounds are interleaved and each figure is the median of its rounds,
 * with min and max. Exits non-zero when a figure misses its goal. Writes bench/results/latest.{json,svg}.
 * Needs Redis at REDIS_URL (default redis://127.0.0.1:6379); uses and then deletes its own prefix.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { openStore } from '../src/authorization-server/storage/store.ts';
import { loadConfig } from '../src/config/config.ts';
import { benchFile, cpuSeconds, HAS_TASKSET, processGroup, runChild, startChild } from './lib/child.ts';
import { markdownTable, type Row, writeResults } from './lib/report.ts';
import { Samples, type Spread } from './lib/stats.ts';
import type { LoadResult } from './load.ts';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 3;
const SECONDS = quick ? 3 : 5;
const CPUS = availableParallelism();
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const API = 'https://api.bench.test';
const REDIRECT_URI = 'https://app.bench.test/callback';
const USERS = 16;
const PASSWORD = 'correct horse battery staple';
const AUTH_MAIN = fileURLToPath(new URL('../src/authorization-server/main.ts', import.meta.url));

const samples = new Samples();
const prefix = `bench-${randomBytes(4).toString('hex')}:`;
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const env = {
  NODE_ENV: 'production',
  REDIS_URL,
  REDIS_PREFIX: prefix,
  STORE_KEY: randomBytes(32).toString('base64url'),
  KEYS_DIR: mkdtempSync(join(tmpdir(), 'bench-keys-')),
  // The production limiter stays on, with a budget the bench cannot reach.
  TOKEN_RATE_LIMIT: '1000000',
  LOG_LEVEL: 'info',
};
const log = (message: string) => console.error(`[bench] ${message}`);
const stopAll: (() => Promise<void>)[] = [];

async function load(
  name: string,
  input: {
    url: string;
    connections: number;
    method?: 'POST';
    headers?: Record<string, string>;
    body?: string;
    /** A file of tokens, each sent once (load.ts). */
    bearerFile?: string;
  },
): Promise<LoadResult> {
  const result = await runChild<LoadResult>(benchFile('load.ts'), 'load', CPUS, {
    seconds: SECONDS,
    ...input,
  });
  if (result.failed > 0) log(`${name}: ${result.failed} requests failed (not counted)`);
  samples.add(`${name}:rps`, result.rps);
  samples.add(`${name}:p99`, result.p99);
  return result;
}

/** `npm start` itself (main.ts), with WORKERS, on all CPUs; resolves once every worker listens. */
function startMain(port: number, workers: number): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [AUTH_MAIN], {
    env: {
      ...process.env,
      ...env,
      PORT: String(port),
      ISSUER: `http://127.0.0.1:${port}`,
      WORKERS: String(workers),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let listening = 0;
  let buffer = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('main.ts did not start in 60 s')), 60_000);
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) if (line.includes('"authorization server listening"')) listening++;
      if (listening >= workers) {
        clearTimeout(timer);
        resolve({ child, url: `http://127.0.0.1:${port}` });
      }
    });
    child.once('exit', (code) => reject(new Error(`main.ts exited with ${code}`)));
  });
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function token(url: string, auth: string): Promise<string> {
  const response = await fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
    body: 'grant_type=client_credentials&scope=reports%3Aread',
  });
  const body = (await response.json()) as { access_token?: string };
  if (!body.access_token) throw new Error(`token endpoint answered ${response.status}`);
  return body.access_token;
}

/** A file of `count` fresh client-credentials tokens, minted 16 at a time. */
async function mintTokenFile(url: string, auth: string, count: number): Promise<string> {
  const tokens: string[] = [];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (tokens.length < count) tokens.push(await token(url, auth));
    }),
  );
  const file = join(mkdtempSync(join(tmpdir(), 'bench-tokens-')), 'tokens.txt');
  writeFileSync(file, tokens.slice(0, count).join('\n'));
  return file;
}

try {
  log(
    `${quick ? 'quick' : 'full'} run: ${ROUNDS} round(s) of ${SECONDS} s, ${CPUS} CPUs, taskset ${HAS_TASKSET ? 'yes' : 'no'}`,
  );
  // 1. The deployment: one API, one machine client, one public login client, users.
  const store = await openStore(loadConfig({ ...env, ISSUER: 'http://127.0.0.1:1' }));
  await store.resources.add({ uri: API, scopes: ['reports:read'] });
  const m2m = await store.clients.add({
    id: 'bench-m2m',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [API],
    redirectUris: [],
    postLogoutRedirectUris: [],
  });
  await store.clients.add({
    id: 'bench-web',
    grants: ['authorization_code', 'refresh_token'],
    scope: ['openid', 'offline_access'],
    resources: [],
    redirectUris: [REDIRECT_URI],
    postLogoutRedirectUris: [],
    authMethod: 'none',
    firstParty: true,
  });
  const users = [];
  for (let i = 0; i < USERS; i++) {
    const email = `user${i}@bench.test`;
    await store.users.add({ email, name: `User ${i}`, password: PASSWORD });
    users.push({ email, password: PASSWORD });
  }
  await store.close();
  const ourAuth = `Basic ${Buffer.from(`bench-m2m:${m2m.client_secret}`).toString('base64')}`;

  // 2. The servers, pinned to the server CPU.
  log('starting servers');
  const hello = await startChild(benchFile('targets/koa-hello.ts'), { cpus: 'server' }, CPUS);
  const baseline = await startChild(benchFile('targets/baseline.ts'), { cpus: 'server' }, CPUS);
  stopAll.push(hello.stop, baseline.stop);
  const asPorts = { ES256: await freePort(), RS256: await freePort() };
  const as: Record<'ES256' | 'RS256', string> = { ES256: '', RS256: '' };
  for (const alg of ['ES256', 'RS256'] as const) {
    const port = asPorts[alg];
    const child = await startChild(
      benchFile('targets/auth-server.ts'),
      {
        cpus: 'server',
        env: { ...env, PORT: String(port), ISSUER: `http://127.0.0.1:${port}`, ACCESS_TOKEN_ALG: alg },
      },
      CPUS,
    );
    stopAll.push(child.stop);
    as[alg] = String(child.info.url);
  }
  const rsPort = await freePort();
  const rs = await startChild(
    benchFile('targets/resource-server.ts'),
    {
      cpus: 'server',
      env: { ISSUER: as.ES256, RS_PORT: String(rsPort), RS_AUDIENCE: API, LOG_LEVEL: 'info' },
    },
    CPUS,
  );
  stopAll.push(rs.stop);
  const baseAuth = `Basic ${Buffer.from(`${baseline.info.clientId}:${baseline.info.clientSecret}`).toString('base64')}`;
  const tokenBody = 'grant_type=client_credentials&scope=reports%3Aread';
  const form = (auth: string) => ({
    authorization: auth,
    'content-type': 'application/x-www-form-urlencoded',
  });
  const apiToken = await token(as.ES256, ourAuth);

  // Every server first serves a short unmeasured load, so no figure pays for JIT warm-up.
  const warmUp = (url: string, auth?: string, body?: string) =>
    runChild<LoadResult>(benchFile('load.ts'), 'load', CPUS, {
      seconds: 2,
      url,
      connections: 10,
      ...(auth ? { method: 'POST', headers: form(auth), body } : {}),
    });
  log('warming up');
  await warmUp(hello.info.url as string);
  await warmUp(`${baseline.info.url}/token`, baseAuth, tokenBody);
  await warmUp(`${as.ES256}/token`, ourAuth, tokenBody);
  await warmUp(`${as.RS256}/token`, ourAuth, tokenBody);

  // 3. Interleaved rounds.
  for (let round = 1; round <= ROUNDS; round++) {
    log(`round ${round}/${ROUNDS}`);
    await load('hello', { url: hello.info.url as string, connections: 50 });
    for (const c of [10, 50]) {
      await load(`baseline-c${c}`, {
        url: `${baseline.info.url}/token`,
        connections: c,
        method: 'POST',
        headers: form(baseAuth),
        body: tokenBody,
      });
      await load(`ours-ES256-c${c}`, {
        url: `${as.ES256}/token`,
        connections: c,
        method: 'POST',
        headers: form(ourAuth),
        body: tokenBody,
      });
    }
    await load('ours-RS256-c10', {
      url: `${as.RS256}/token`,
      connections: 10,
      method: 'POST',
      headers: form(ourAuth),
      body: tokenBody,
    });
    await load('introspection', {
      url: `${as.ES256}/token/introspection`,
      connections: 10,
      method: 'POST',
      headers: form(ourAuth),
      body: `token=${apiToken}`,
    });
    await load('rs-repeated', {
      url: `${rs.info.url}/reports/claims`,
      connections: 50,
      headers: { authorization: `Bearer ${apiToken}` },
    });
    // Fresh tokens, each sent once, so the resource server's verified-token cache never helps;
    // minted by the AS just before, while nothing is measured.
    await load('rs-fresh', {
      url: `${rs.info.url}/reports/claims`,
      connections: 50,
      bearerFile: await mintTokenFile(as.ES256, ourAuth, quick ? 8000 : 15_000),
    });
    for (const what of [
      'ES256-sign',
      'ES256-verify',
      'RS256-sign',
      'RS256-verify',
      'argon2id-verify',
    ] as const) {
      const { perSecond } = await runChild<{ perSecond: number }>(benchFile('micro.ts'), 'server', CPUS, {
        what,
        seconds: Math.min(3, SECONDS),
      });
      samples.add(what, perSecond);
    }
    // Full logins (authorization request, login form, code exchange) on the server's one core.
    const logins = await runChild<{ perSecond: number; failed: number; refreshTokens: string[] }>(
      benchFile('flows.ts'),
      'load',
      CPUS,
      {
        mode: 'login',
        issuer: as.ES256,
        clientId: 'bench-web',
        redirectUri: REDIRECT_URI,
        seconds: SECONDS,
        // Enough sign-ins at once to keep argon2 busy while other flows are between steps.
        concurrency: 8,
        users,
      },
    );
    if (logins.failed) log(`logins: ${logins.failed} flows failed`);
    samples.add('logins', logins.perSecond);
    const refreshes = await runChild<{ perSecond: number; failed: number }>(
      benchFile('flows.ts'),
      'load',
      CPUS,
      {
        mode: 'refresh',
        issuer: as.ES256,
        clientId: 'bench-web',
        redirectUri: REDIRECT_URI,
        seconds: SECONDS,
        concurrency: Math.min(8, logins.refreshTokens.length),
        refreshTokens: logins.refreshTokens,
      },
    );
    if (refreshes.failed) log(`refresh: ${refreshes.failed} chains failed`);
    samples.add('refresh', refreshes.perSecond);
    // The token endpoint while a login storm runs on the same server.
    const [storm] = await Promise.all([
      runChild<LoadResult>(benchFile('load.ts'), 'load', CPUS, {
        seconds: SECONDS,
        url: `${as.ES256}/token`,
        connections: 10,
        method: 'POST',
        headers: form(ourAuth),
        body: tokenBody,
      }),
      runChild(benchFile('flows.ts'), 'load', CPUS, {
        mode: 'login',
        issuer: as.ES256,
        clientId: 'bench-web',
        redirectUri: REDIRECT_URI,
        seconds: SECONDS,
        concurrency: 8,
        users,
      }),
    ]);
    samples.add('storm:p99', storm.p99);
  }

  // 4. Scale-out: npm start itself with 1 and 2 workers, every process on every CPU.
  log('workers: 1 vs 2');
  const mains = { 1: await startMain(await freePort(), 1), 2: await startMain(await freePort(), 2) };
  stopAll.push(async () => {
    for (const m of Object.values(mains)) m.child.kill('SIGTERM');
  });
  const mainAuth = ourAuth;
  for (const workers of [1, 2] as const) await warmUp(`${mains[workers].url}/token`, mainAuth, tokenBody);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const workers of [1, 2] as const) {
      const { child, url } = mains[workers];
      const pids = processGroup(child.pid as number);
      const before = cpuSeconds(pids);
      const result = await runChild<LoadResult>(benchFile('load.ts'), 'all', CPUS, {
        seconds: SECONDS,
        url: `${url}/token`,
        connections: 50,
        method: 'POST',
        headers: form(mainAuth),
        body: tokenBody,
      });
      const used = cpuSeconds(pids) - before;
      if (result.failed) log(`workers=${workers}: ${result.failed} requests failed (not counted)`);
      samples.add(`workers${workers}:rps`, result.rps);
      samples.add(`workers${workers}:per-cpu-s`, used > 0 ? result.ok / used : Number.NaN);
    }
  }

  // 5. Redis memory per session and per refresh token (MEMORY USAGE over every one made above).
  // Every key is counted; MEMORY USAGE is asked of up to 2,000 of them, and their average stands
  // for all.
  const usage = async (pattern: string) => {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}${pattern}`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    const sizes = await Promise.all(keys.slice(0, 2000).map((k) => redis.memory('USAGE', k)));
    const numbers = sizes.filter((s): s is number => typeof s === 'number');
    return {
      average: numbers.reduce((a, b) => a + b, 0) / Math.max(1, numbers.length),
      count: keys.length,
    };
  };
  const session = await usage('oidc:Session:*');
  const uid = await usage('oidc:uid:*');
  const refresh = await usage('oidc:RefreshToken:*');
  const grantIndex = await usage('oidc:grant-index:*');
  samples.add('memory:session', session.average + uid.average);
  // A refresh token's own record, plus its grant's index (one per login) shared by its chain.
  samples.add(
    'memory:refresh',
    refresh.average + (grantIndex.average * grantIndex.count) / Math.max(1, refresh.count),
  );
  log(`memory over ${session.count} sessions and ${refresh.count} refresh tokens`);

  // 6. The table.
  const rows: Row[] = [];
  const get = (name: string): Spread => samples.get(name);
  const goal = (
    figure: string,
    value: Spread,
    unit: string,
    limitName: string,
    limit: number,
    wanted: { atLeast?: number; atMost?: number },
  ) => {
    const ratio = value.median / limit;
    // A limit that could not be measured never passes a figure.
    const measured = Number.isFinite(ratio) && limit > 0;
    const met =
      measured &&
      (wanted.atLeast !== undefined ? ratio >= wanted.atLeast : ratio <= (wanted.atMost as number));
    const threshold = wanted.atLeast !== undefined ? `>= ${wanted.atLeast}×` : `<= ${wanted.atMost}×`;
    rows.push({
      figure,
      value,
      unit,
      goal: `${threshold} ${limitName} (${Math.round(limit).toLocaleString('en-US')})`,
      ratio,
      wanted,
      verdict: met ? 'met' : 'MISSED',
    });
  };
  const info = (figure: string, value: Spread, unit: string) =>
    rows.push({ figure, value, unit, verdict: 'info' });

  for (const c of [10, 50]) {
    info(`plain oidc-provider, client credentials ES256, c=${c}`, get(`baseline-c${c}:rps`), 'tokens/s');
    goal(
      `this server, client credentials ES256, c=${c}`,
      get(`ours-ES256-c${c}:rps`),
      'tokens/s',
      'baseline tokens/s',
      get(`baseline-c${c}:rps`).median,
      { atLeast: 1 },
    );
    goal(
      `this server, token p99 c=${c}`,
      get(`ours-ES256-c${c}:p99`),
      'ms',
      'baseline p99 ms',
      get(`baseline-c${c}:p99`).median,
      { atMost: 1.5 },
    );
  }
  info('this server, client credentials RS256 (default), c=10', get('ours-RS256-c10:rps'), 'tokens/s');
  info('bare Koa hello, c=50', get('hello:rps'), 'req/s');
  goal(
    'resource server, GET /reports/claims, repeated token, c=50',
    get('rs-repeated:rps'),
    'req/s',
    'Koa hello req/s',
    get('hello:rps').median,
    { atLeast: 0.25 },
  );
  for (const what of ['ES256-sign', 'ES256-verify', 'RS256-sign', 'RS256-verify', 'argon2id-verify'])
    info(`node:crypto/argon2 ${what}, one core`, get(what), 'ops/s');
  goal(
    'resource server, GET /reports/claims, a fresh ES256 token per request, c=50',
    get('rs-fresh:rps'),
    'req/s',
    'ES256 verifies/s',
    get('ES256-verify').median,
    { atLeast: 0.6 },
  );
  goal(
    'full logins (code + PKCE + token), one core',
    get('logins'),
    'logins/s',
    'argon2id verifies/s',
    get('argon2id-verify').median,
    { atLeast: 0.8 },
  );
  goal(
    'token p99 during a login storm, c=10',
    get('storm:p99'),
    'ms',
    'idle token p99 ms',
    get('ours-ES256-c10:p99').median,
    { atMost: 3 },
  );
  info('introspection, c=10', get('introspection:rps'), 'req/s');
  info('refresh grants, 8 chains', get('refresh'), 'grants/s');
  info(
    'npm start, WORKERS=1, c=50 (all CPUs shared with the load generator)',
    get('workers1:rps'),
    'tokens/s',
  );
  goal(
    'npm start, WORKERS=2, c=50',
    get('workers2:rps'),
    'tokens/s',
    'WORKERS=1 tokens/s',
    get('workers1:rps').median,
    { atLeast: 1.8 },
  );
  goal(
    'WORKERS=2 tokens per CPU-second',
    get('workers2:per-cpu-s'),
    'tokens/CPU-s',
    'WORKERS=1 tokens/CPU-s',
    get('workers1:per-cpu-s').median,
    { atLeast: 0.9 },
  );
  goal('Redis memory per session', get('memory:session'), 'bytes', 'budget bytes', 1536, { atMost: 1 });
  goal('Redis memory per refresh token', get('memory:refresh'), 'bytes', 'budget bytes', 1024, { atMost: 1 });

  const command = `npm run bench${quick ? ' -- --quick' : ''}`;
  console.log(
    `\n${command}: ${ROUNDS} interleaved round(s) of ${SECONDS} s, ${CPUS} CPUs, ${HAS_TASKSET ? 'servers on CPU 0, load on the rest' : 'no taskset: nothing pinned'}\n`,
  );
  console.log(markdownTable(rows));
  writeResults(fileURLToPath(new URL('results', import.meta.url)), rows, {
    command,
    date: new Date().toISOString(),
    cpus: CPUS,
    taskset: HAS_TASKSET,
    rounds: ROUNDS,
    seconds: SECONDS,
  });
  const missed = rows.filter((r) => r.verdict === 'MISSED');
  console.log(missed.length ? `\n${missed.length} goal(s) missed` : '\nevery goal met');
  process.exitCode = missed.length ? 1 : 0;
} finally {
  await Promise.allSettled(stopAll.map((stop) => stop()));
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  redis.disconnect();
}
