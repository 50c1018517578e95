import type { Kv } from './kv.ts';
import type { KeyNames } from './redis-keys.ts';

/**
 * Tells every instance that the signing keys changed: a generation counter in the store (checked
 * periodically, so a missed message costs at most one interval) and a pub/sub message (so the
 * usual case is immediate).
 */
export class ChangeFeed {
  readonly #kv: Kv;
  readonly #keys: KeyNames;

  constructor(kv: Kv, keys: KeyNames) {
    this.#kv = kv;
    this.#keys = keys;
  }

  async announce(): Promise<void> {
    const generation = await this.#kv.incr(this.#keys.generation());
    await this.#kv.publish(this.#keys.changes(), String(generation));
  }

  async generation(): Promise<string> {
    return (await this.#kv.get(this.#keys.generation())) ?? '0';
  }

  /** Calls onChange (serialised, never concurrently) when the generation moves; returns a stop function. */
  async watch(intervalMs: number, onChange: () => Promise<void>, onError: (error: unknown) => void) {
    let seen = await this.generation().catch(() => undefined);
    let running: Promise<void> | undefined;
    let again = false;
    const check = async (): Promise<void> => {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        try {
          const now = await this.generation();
          if (now !== seen) {
            await onChange();
            seen = now;
          }
        } catch (error) {
          onError(error);
        } finally {
          running = undefined;
        }
      })();
      await running;
      if (again) {
        again = false;
        await check();
      }
    };
    const timer = setInterval(() => void check(), intervalMs);
    timer.unref();
    const unsubscribe = await this.#kv.subscribe(this.#keys.changes(), () => void check());
    return async () => {
      clearInterval(timer);
      await unsubscribe();
    };
  }
}
