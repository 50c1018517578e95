import test from 'ava';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, testPrefix } from '../support/redis.ts';
import { type ExtraRedis, startExtraRedis } from '../support/redis-server.ts';

// This file runs its own redis-server (stopped and restarted on purpose), never the shared one.
let redis: ExtraRedis;
let server: RunningAuthServer;
let secret: string;
const api = 'https://api.outage.test';

test.before(async () => {
  // DEBUG SLEEP (below) holds commands in flight when Redis is killed.
  redis = await startExtraRedis(['--enable-debug-command', 'yes']);
  server = await startAuthServer({
    prefix: testPrefix('outage'),
    secrets: testSecrets(),
    env: { REDIS_URL: redis.url },
  });
  await server.store.resources.add({ uri: api, scopes: ['reports:read'] });
  secret = String(
    (
      await server.store.clients.add({
        id: 'outage-client',
        grants: ['client_credentials'],
        scope: ['reports:read'],
        resources: [api],
        redirectUris: [],
        postLogoutRedirectUris: [],
      })
    ).client_secret,
  );
});

test.after.always(async () => {
  await server?.close();
  await redis?.stop();
});

// "Within 2 s" is the contract, so it bounds each request; it is not a performance measurement.
const within2s = () => ({ signal: AbortSignal.timeout(2000) });

function tokenRequest() {
  return fetch(`${server.issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`outage-client:${secret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials&scope=reports%3Aread',
    ...within2s(),
  });
}

async function waitUntil(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

test.serial(
  'with Redis down, /readyz fails and OAuth endpoints answer 503 in the OAuth format; then service resumes',
  async (t) => {
    t.is((await tokenRequest()).status, 200);
    await redis.stop();

    const ready = await fetch(`${server.issuer}/readyz`, within2s());
    t.is(ready.status, 503);
    t.like(await ready.json(), { checks: { store: false } });
    t.is((await fetch(`${server.issuer}/healthz`, within2s())).status, 200, 'the process is alive');

    for (const request of [
      () => tokenRequest(),
      () => fetch(`${server.issuer}/.well-known/openid-configuration`, within2s()),
      () =>
        fetch(`${server.issuer}/token/introspection`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'token=x',
          ...within2s(),
        }),
    ]) {
      const response = await request();
      t.is(response.status, 503);
      t.is(((await response.json()) as { error: string }).error, 'temporarily_unavailable');
    }

    await redis.start();
    t.true(
      await waitUntil(async () => (await fetch(`${server.issuer}/readyz`)).status === 200, 10_000),
      'ready again',
    );
    // Clients written before the outage were acknowledged, so they are still there.
    t.true(
      await waitUntil(async () => (await tokenRequest()).status === 200, 10_000),
      'tokens again, no restart',
    );
  },
);

test.serial(
  'issue 9 #15: Redis killed with requests in flight: every answer is a success or a 503 with Retry-After, never a 500',
  async (t) => {
    t.true(await waitUntil(async () => (await tokenRequest()).status === 200, 10_000), 'serving');
    const token = String(((await (await tokenRequest()).json()) as { access_token: string }).access_token);
    const basic = `Basic ${Buffer.from(`outage-client:${secret}`).toString('base64')}`;
    const requests = [
      () => tokenRequest(),
      () =>
        fetch(`${server.issuer}/token/introspection`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
          body: new URLSearchParams({ token }),
          signal: AbortSignal.timeout(10_000),
        }),
      () =>
        fetch(`${server.issuer}/token/revocation`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
          body: 'token=not-a-token',
          signal: AbortSignal.timeout(10_000),
        }),
      () =>
        fetch(`${server.issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(10_000) }),
    ];
    const answers: { status: number; retryAfter: string | null; error?: string; kind: number }[] = [];
    let running = true;
    const worker = async (offset: number) => {
      for (let i = offset; running && i < offset + 200; i++) {
        const response = await (requests[i % requests.length] as () => Promise<Response>)().catch(
          () => undefined,
        );
        if (!response) {
          answers.push({ status: 0, retryAfter: null, error: 'no answer', kind: i % requests.length });
          continue;
        }
        const text = await response.text();
        let error: string | undefined;
        try {
          error = (JSON.parse(text) as { error?: string }).error;
        } catch {
          // asserted below through the status
        }
        answers.push({
          status: response.status,
          retryAfter: response.headers.get('retry-after'),
          error,
          kind: i % requests.length,
        });
      }
    };
    const workers = Array.from({ length: 12 }, (_, i) => worker(i));
    t.teardown(async () => {
      running = false;
      await Promise.all(workers);
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    // Hold Redis so commands pile up unanswered, then kill it: they fail mid-request.
    const holder = await connectRedis(redis.url);
    void holder.call('DEBUG', 'SLEEP', '3').catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 300));
    const inFlightAtKill = answers.length;
    await redis.stop('SIGKILL');
    holder.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    running = false;
    await Promise.all(workers);

    t.true(answers.length > inFlightAtKill, 'requests were still being answered after the kill');
    const unavailable = answers.filter((a) => a.status === 503);
    t.true(unavailable.length > 0, 'the outage was seen');
    for (const answer of answers) {
      t.true(
        [200, 503].includes(answer.status),
        `request ${answer.kind} answered ${answer.status} ${answer.error ?? ''}`,
      );
    }
    for (const answer of unavailable) {
      t.is(answer.error, 'temporarily_unavailable');
      t.truthy(answer.retryAfter, 'a 503 says when to retry');
    }

    await redis.start();
    t.true(
      await waitUntil(async () => (await tokenRequest()).status === 200, 10_000),
      'tokens again, no restart',
    );
  },
);
