import { request as httpRequest } from 'node:http';
import test from 'ava';
import type { Redis } from 'ioredis';
import { BODY_LIMITS } from '../../src/config/body-limits.ts';
import { type RunningAuthServer, startAuthServer, testSecrets } from '../support/auth-server.ts';
import { connectRedis, deletePrefix, testPrefix } from '../support/redis.ts';

/**
 * Issue 9 finding 8, issue 8 item 2: one body step for every endpoint. An oversized body gets the
 * same 413 JSON error everywhere (`/token` with Basic authentication included), and the client
 * always reads it: the rest of the body is drained before the answer, never cut off by a reset.
 */
const prefix = testPrefix('request-body');
const api = 'https://api.body.test';
let redis: Redis;
let server: RunningAuthServer;
let basic: string;

test.before(async () => {
  redis = await connectRedis();
  server = await startAuthServer({ prefix, secrets: testSecrets() });
  await server.store.resources.add({ uri: api, scopes: ['reports:read'] });
  const { client_secret } = (await server.store.clients.add({
    id: 'body-m2m',
    grants: ['client_credentials'],
    scope: ['reports:read'],
    resources: [api],
    redirectUris: [],
    postLogoutRedirectUris: [],
  })) as { client_secret: string };
  basic = `Basic ${Buffer.from(`body-m2m:${client_secret}`).toString('base64')}`;
});

test.after.always(async () => {
  await server?.close();
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
  connection: string | undefined;
}

/**
 * A POST over plain node:http, the body written in 1 MiB chunks: with `declared`, under a
 * Content-Length header, otherwise chunked. A reset or a missing answer rejects.
 */
function postRaw(path: string, size: number, declared: boolean, headers: Record<string, string> = {}) {
  return new Promise<Answer>((resolve, reject) => {
    const req = httpRequest(
      `${server.issuer}${path}`,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          ...(declared ? { 'content-length': String(size) } : {}),
          ...headers,
        },
        timeout: 20_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({
              status: res.statusCode ?? 0,
              body: JSON.parse(text),
              connection: res.headers.connection,
            });
          } catch {
            reject(new Error(`${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('no answer in 20 s')));
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    let left = size;
    const write = () => {
      while (left > 0) {
        const part = chunk.subarray(0, Math.min(left, chunk.length));
        left -= part.length;
        if (!req.write(part)) return void req.once('drain', write);
      }
      req.end();
    };
    write();
  });
}

const TOO_LARGE = {
  error: 'invalid_request',
  error_description: `the request body is larger than ${BODY_LIMITS.oauth} bytes`,
};

for (const path of ['/token/revocation', '/token/introspection', '/token']) {
  for (const declared of [true, false]) {
    test(`issue 9 #8: a 10 MB POST to ${path} (${declared ? 'Content-Length' : 'chunked'}) gets the 413, not a reset`, async (t) => {
      const answer = await postRaw(path, 10 * 1024 * 1024, declared, { authorization: basic });
      t.is(answer.status, 413);
      t.deepEqual(answer.body, TOO_LARGE);
    });
  }
}

test('issue 9 #8: every endpoint answers an oversized body with the same 413 JSON error', async (t) => {
  const size = BODY_LIMITS.oauth + 1;
  const endpoints: [string, Record<string, string>][] = [
    ['/token', { authorization: basic }],
    ['/token', {}],
    ['/token/introspection', { authorization: basic }],
    ['/token/revocation', { authorization: basic }],
    ['/request', { authorization: basic }],
    ['/me', {}],
    ['/session/end/confirm', {}],
    ['/auth', {}],
    ['/no-such-endpoint', {}],
  ];
  for (const [path, headers] of endpoints) {
    for (const declared of [true, false]) {
      const answer = await postRaw(path, size, declared, headers);
      t.is(answer.status, 413, `${path} ${declared ? 'Content-Length' : 'chunked'}`);
      t.deepEqual(answer.body, TOO_LARGE, path);
    }
  }
  const form = await postRaw('/interaction/some-uid/login', BODY_LIMITS.form + 1, true);
  t.is(form.status, 413);
  t.deepEqual(form.body, {
    error: 'invalid_request',
    error_description: `the request body is larger than ${BODY_LIMITS.form} bytes`,
  });
});

test('a body within the limit reaches the provider whole, read once and replayed', async (t) => {
  const form = new URLSearchParams({ grant_type: 'client_credentials', scope: 'reports:read' });
  const pad = 'x'.repeat(BODY_LIMITS.oauth - form.toString().length - '&pad='.length);
  form.set('pad', pad);
  t.is(form.toString().length, BODY_LIMITS.oauth);
  for (const chunked of [false, true]) {
    const response = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: chunked ? new Blob([form.toString()]).stream() : form.toString(),
      ...(chunked ? { duplex: 'half' } : {}),
      signal: AbortSignal.timeout(10_000),
    } as RequestInit);
    t.is(response.status, 200, chunked ? 'chunked' : 'Content-Length');
    t.is(((await response.json()) as { token_type: string }).token_type, 'Bearer');
  }
});

test('a body drained to its end leaves the connection open for the next request', async (t) => {
  const answer = await postRaw('/token/revocation', 2 * 1024 * 1024, true, { authorization: basic });
  t.is(answer.status, 413);
  t.not(answer.connection, 'close');
});
