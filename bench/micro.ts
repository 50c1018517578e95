/**
 * Per-core limits, measured in a process pinned to the server's CPU by run.ts: synchronous
 * node:crypto JWS signatures and verifications (ES256, RS256) and argon2id verifications at the
 * product's parameters. Input (argv[2], JSON): { what, seconds }. Prints { perSecond }.
 */
import { createHash, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import argon2 from 'argon2';
import { PASSWORD_HASH_OPTIONS } from '../src/authorization-server/storage/user-store.ts';

type What = 'ES256-sign' | 'ES256-verify' | 'RS256-sign' | 'RS256-verify' | 'argon2id-verify';
const { what, seconds } = JSON.parse(process.argv[2] ?? '{}') as { what: What; seconds: number };

/** A JWS signing input the size of an access token's header and payload. */
const input = Buffer.from(
  `${Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'at+jwt', kid: 'k' })).toString('base64url')}.${Buffer.from(
    JSON.stringify({
      iss: 'http://127.0.0.1:3000',
      sub: 'bench',
      aud: 'https://api.bench.test',
      exp: 1_900_000_000,
      iat: 1_800_000_000,
      jti: createHash('sha256').update('x').digest('base64url'),
      client_id: 'bench',
      scope: 'reports:read',
    }),
  ).toString('base64url')}`,
);

function keys(alg: 'ES256' | 'RS256'): { privateKey: KeyObject; publicKey: KeyObject } {
  return alg === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
}

async function opsPerSecond(op: () => unknown | Promise<unknown>, concurrent = 1): Promise<number> {
  const warm = Date.now() + 300;
  while (Date.now() < warm) await op();
  let done = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrent }, async () => {
      while (performance.now() < until) {
        await op();
        done++;
      }
    }),
  );
  return done / ((performance.now() - start) / 1000);
}

let perSecond: number;
if (what === 'argon2id-verify') {
  const hash = await argon2.hash('correct horse battery staple', PASSWORD_HASH_OPTIONS);
  // argon2 runs on libuv's pool: keep as many in flight as the pool has threads.
  perSecond = await opsPerSecond(() => argon2.verify(hash, 'correct horse battery staple'), 4);
} else {
  const alg = what.startsWith('ES256') ? 'ES256' : 'RS256';
  // The fastest node:crypto path: bare KeyObjects and DER signatures, no format conversion. It is
  // the ceiling the product's signer and verifier are compared against.
  const { privateKey, publicKey } = keys(alg);
  const signature = sign('sha256', input, privateKey);
  perSecond = what.endsWith('sign')
    ? await opsPerSecond(() => sign('sha256', input, privateKey))
    : await opsPerSecond(() => verify('sha256', input, publicKey, signature));
}
console.log(JSON.stringify({ perSecond }));
