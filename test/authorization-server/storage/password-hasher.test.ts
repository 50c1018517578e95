import test from 'ava';
import {
  hashPassword,
  PASSWORD_HASH_CONCURRENCY,
  PASSWORD_HASH_QUEUE,
  PasswordHashingBusyError,
  passwordHashingStats,
  passwordHashQueueDepth,
  verifyPasswordHash,
} from '../../../src/authorization-server/storage/password-hasher.ts';

test.serial(
  'issue 9 #7: sign-in hashes beyond the running and waiting slots are refused at once; the queue depth is exposed',
  async (t) => {
    const hash = await hashPassword('a password to check');
    const before = passwordHashingStats().completed;
    const attempts = PASSWORD_HASH_CONCURRENCY + PASSWORD_HASH_QUEUE + 10;
    const results = Array.from({ length: attempts }, () =>
      verifyPasswordHash(hash, 'a wrong password').then(
        (ok) => (ok ? 'matched' : 'checked'),
        (error: unknown) => (error instanceof PasswordHashingBusyError ? 'busy' : 'failed'),
      ),
    );
    t.is(passwordHashQueueDepth(), PASSWORD_HASH_QUEUE, 'the queue is full, not longer');
    t.is(passwordHashingStats().running, PASSWORD_HASH_CONCURRENCY);
    const outcomes = await Promise.all(results);
    t.is(outcomes.filter((o) => o === 'busy').length, 10);
    t.is(outcomes.filter((o) => o === 'checked').length, PASSWORD_HASH_CONCURRENCY + PASSWORD_HASH_QUEUE);
    t.is(passwordHashingStats().completed - before, PASSWORD_HASH_CONCURRENCY + PASSWORD_HASH_QUEUE);
    t.is(passwordHashQueueDepth(), 0);
    t.is(passwordHashingStats().running, 0);
  },
);

test.serial('what an admin asks for (a new password) waits its turn instead of failing', async (t) => {
  const hashes = await Promise.all(
    Array.from({ length: PASSWORD_HASH_CONCURRENCY + PASSWORD_HASH_QUEUE + 4 }, (_, i) =>
      hashPassword(`pw-${i}`),
    ),
  );
  t.true(hashes.every((h) => h.startsWith('$argon2id$')));
});
