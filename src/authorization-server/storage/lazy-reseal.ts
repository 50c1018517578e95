import type { SealedBox } from '../../shared/sealing/index.ts';
import type { Kv } from './kv.ts';

/**
 * After a data-key rotation, long-lived values sealed under an older key are re-sealed under the
 * current one when they are read, in the background and only if nobody changed them meanwhile
 * (compare-and-set), so a concurrent write always wins. Failures are ignored: the value still opens
 * and the next read tries again.
 */
export function resealRecordIfStale(kv: Kv, box: SealedBox, key: string, sealed: string): void {
  if (!box.isStale(sealed)) return;
  kv.replaceRecord(key, sealed, box.reseal(sealed, key)).catch(() => {});
}

/** The same for a plain string value. */
export function resealValueIfStale(kv: Kv, box: SealedBox, key: string, sealed: string): void {
  if (!box.isStale(sealed)) return;
  kv.compareAndSet(key, sealed, box.reseal(sealed, key)).catch(() => {});
}
