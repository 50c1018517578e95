import type { Kv } from '../../src/authorization-server/storage/kv.ts';

/**
 * Runs two or more tasks, each on its own view of a store, one store call at a time in an order the
 * test chooses, so that every interleaving of their steps can be tried instead of the few a race
 * happens to hit. Store calls are atomic (one Redis command or script each), so their order is all
 * that decides the outcome.
 */
export type Task = (kv: Kv) => Promise<unknown>;

export interface Interleaved {
  /** Each task's outcome, by name. */
  results: Record<string, PromiseSettledResult<unknown>>;
  /** The order in which the store calls ran: `task.method`. */
  trace: string[];
}

/**
 * `schedule` names, step by step, whose store call runs next; a name whose task has finished is
 * skipped, and once the schedule is used up the tasks run in the order given.
 */
export async function interleave(
  kvs: Record<string, Kv>,
  tasks: Record<string, Task>,
  schedule: string[],
): Promise<Interleaved> {
  const names = Object.keys(tasks);
  /** Each task's store calls waiting to run (a task may issue several at once), oldest first. */
  const waiting = new Map<string, (() => void)[]>(names.map((name) => [name, []]));
  const queue = (name: string) => waiting.get(name) ?? [];
  const finished = new Set<string>();
  let running = 0;
  let wake: (() => void) | undefined;
  const changed = () => {
    wake?.();
    wake = undefined;
  };
  const trace: string[] = [];

  const gated = (name: string, kv: Kv): Kv =>
    new Proxy(kv, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          await new Promise<void>((release) => {
            queue(name).push(release);
            changed();
          });
          trace.push(`${name}.${String(property)}`);
          try {
            return await value.apply(target, args);
          } finally {
            running--;
            changed();
          }
        };
      },
    });

  const started = names.map((name) => {
    const kv = kvs[name];
    const task = tasks[name];
    if (!kv || !task) throw new Error(`no store or task for ${name}`);
    return task(gated(name, kv)).finally(() => {
      finished.add(name);
      changed();
    });
  });

  const quiet = () => running === 0 && names.every((name) => finished.has(name) || queue(name).length > 0);
  /** Until no call runs and every task waits at a store call or has finished. */
  const settle = async () => {
    for (;;) {
      while (!quiet()) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      // What a finished call's caller does next runs in later microtasks: let it, then look again.
      await new Promise(setImmediate);
      if (quiet()) return;
    }
  };

  for (let step = 0; ; step++) {
    await settle();
    const ready = names.filter((name) => queue(name).length > 0);
    if (ready.length === 0) break;
    const chosen = schedule[step];
    const next = chosen !== undefined && ready.includes(chosen) ? chosen : (ready[0] as string);
    running++;
    queue(next).shift()?.();
  }
  const settled = await Promise.allSettled(started);
  return {
    results: Object.fromEntries(names.map((name, i) => [name, settled[i] as PromiseSettledResult<unknown>])),
    trace,
  };
}

/**
 * Every order of the tasks' steps, given how many store calls each makes at most: for `{ a: 2, b: 1 }`,
 * a a b, a b a and b a a. A task that makes fewer calls on some path just runs out early.
 */
export function* interleavings(steps: Record<string, number>): Generator<string[]> {
  const left = Object.entries(steps).filter(([, n]) => n > 0);
  if (left.length === 0) {
    yield [];
    return;
  }
  for (const [name, n] of left) {
    for (const rest of interleavings({ ...steps, [name]: n - 1 })) yield [name, ...rest];
  }
}
