import type { Logger } from '../../shared/logger.ts';
import type { SealedBox } from '../../shared/sealing/index.ts';
import type { Kv } from './kv.ts';
import type { KeyNames } from './redis-keys.ts';

export interface AuditEntry {
  /** Who: the token's subject and client, or `cli:<os user>`. */
  actor: string;
  /** What: e.g. `keys.rotate`, `clients.add`. */
  action: string;
  /** On what: a client id, kid, resource URI or email; never a secret. */
  target?: string;
  /** From where: the caller's address, or `cli`. */
  source: string;
  outcome: 'ok' | 'refused' | 'failed';
  at: string;
}

const KEEP = 10_000;

/** Every admin action, from the CLI or the admin API, in the store (sealed) and in the log. */
export class AuditLog {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #box: SealedBox;
  readonly #logger: Logger | undefined;

  constructor(kv: Kv, keys: KeyNames, box: SealedBox, logger?: Logger) {
    this.#kv = kv;
    this.#keys = keys;
    this.#box = box;
    this.#logger = logger;
  }

  async record(entry: Omit<AuditEntry, 'at'>): Promise<void> {
    const full: AuditEntry = { ...entry, at: new Date().toISOString() };
    this.#logger?.info({ audit: full }, 'admin action');
    await this.#kv.pushCapped(this.#keys.auditLog(), this.#box.sealJson(full, this.#keys.auditLog()), KEEP);
  }

  async recent(count = 100): Promise<AuditEntry[]> {
    const sealed = await this.#kv.listRange(this.#keys.auditLog(), count);
    return sealed.map((s) => this.#box.openJson<AuditEntry>(s, this.#keys.auditLog()));
  }
}
