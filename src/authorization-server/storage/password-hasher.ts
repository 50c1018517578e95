import { availableParallelism } from 'node:os';
import argon2 from 'argon2';
import { AppError } from '../../shared/errors.ts';

/**
 * argon2id at OWASP's minimum profile (19 MiB, t=2, p=1): `npm run bench` measures it beside the
 * stronger profiles. Hashing runs on libuv's thread pool, off the event loop.
 */
export const PASSWORD_HASH_OPTIONS = {
  type: argon2.argon2id,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

/**
 * Hashes running at once per process: at most two (libuv's pool has four threads, so token
 * signing and sealing always find one free) and at most one per core (issue 9 #7).
 */
export const PASSWORD_HASH_CONCURRENCY = Math.min(2, availableParallelism());

/**
 * Sign-in hashes waiting for a slot per process; beyond it the caller is told to come back (503).
 * Eight hash times (~20 ms each) per slot: a short wait, never the seconds an unbounded queue
 * grows to under a burst.
 */
export const PASSWORD_HASH_QUEUE = 8 * PASSWORD_HASH_CONCURRENCY;

/** Too many password hashes already running and waiting in this process: retry shortly. */
export class PasswordHashingBusyError extends AppError {
  readonly retryAfterSeconds = 1;

  constructor() {
    super(
      'temporarily_unavailable',
      'too many passwords are being checked; try again in a moment',
      503,
      true,
    );
  }
}

/**
 * A burst of sign-ins must not queue unbounded argon2 work (each 19 MiB and ~20 ms): beyond the
 * running and waiting slots, work is refused at once rather than slowing every sign-in and the
 * token endpoint behind it.
 */
class BoundedWork {
  readonly #concurrency: number;
  readonly #maxWaiting: number;
  readonly #waiting: (() => void)[] = [];
  #running = 0;
  #completed = 0;

  constructor(concurrency: number, maxWaiting: number) {
    this.#concurrency = concurrency;
    this.#maxWaiting = maxWaiting;
  }

  /** `bounded: false` for work an admin asked for: it waits its turn however long the queue. */
  async run<T>(work: () => Promise<T>, { bounded = true } = {}): Promise<T> {
    if (this.#running >= this.#concurrency) {
      if (bounded && this.#waiting.length >= this.#maxWaiting) throw new PasswordHashingBusyError();
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running += 1;
    }
    try {
      return await work();
    } finally {
      this.#completed += 1;
      const next = this.#waiting.shift();
      // The slot passes straight to the next in line, so a newcomer cannot jump the queue.
      if (next) next();
      else this.#running -= 1;
    }
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  get running(): number {
    return this.#running;
  }

  get completed(): number {
    return this.#completed;
  }
}

const work = new BoundedWork(PASSWORD_HASH_CONCURRENCY, PASSWORD_HASH_QUEUE);

/**
 * A new hash. Sign-in (a rehash after a login) is bounded like verification; what an admin asks
 * for (users add, set-password) waits its turn instead of failing.
 */
export function hashPassword(password: string, { forSignIn = false } = {}): Promise<string> {
  return work.run(() => argon2.hash(password, PASSWORD_HASH_OPTIONS), { bounded: forSignIn });
}

/** False for a wrong password and for a malformed hash alike; bounded (a sign-in). */
export function verifyPasswordHash(hash: string, candidate: string): Promise<boolean> {
  return work.run(() => argon2.verify(hash, candidate).catch(() => false));
}

export function needsRehash(hash: string): boolean {
  return argon2.needsRehash(hash, PASSWORD_HASH_OPTIONS);
}

/** This process's password hashing: running, waiting (the queue depth, for /metrics) and done. */
export function passwordHashingStats(): { running: number; waiting: number; completed: number } {
  return { running: work.running, waiting: work.waiting, completed: work.completed };
}

/** Password hashes waiting for a slot in this process. */
export function passwordHashQueueDepth(): number {
  return work.waiting;
}
