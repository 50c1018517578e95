import { createHash } from 'node:crypto';
import { ConflictError, InvalidInputError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import { delay } from '../../shared/redis.ts';
import type { SealedBox } from '../../shared/sealing/index.ts';
import type { Kv, LogEntry } from './kv.ts';
import type { KeyNames } from './redis-keys.ts';

export interface AuditEvent {
  /** Who: the token's subject and client, `cli:<os user>`, a user's subject, or `server`. */
  actor: string;
  /** What: e.g. `keys.rotate`, `clients.add`, `signin.failure`, `refresh_token.reuse`. */
  action: string;
  /** On what: a client id, kid, resource URI, subject or email; never a secret. */
  target?: string;
  /** From where: the caller's address, `cli` or `server`. */
  source: string;
  outcome: 'ok' | 'refused' | 'failed';
  /** A few facts about the event (a grant type, a method); never a secret. */
  details?: Record<string, string | number | boolean>;
}

export interface AuditEntry extends AuditEvent {
  at: string;
}

/** An entry as stored: its place in the chain and the hash that the next entry carries. */
export interface ChainedEntry extends AuditEntry {
  seq: number;
  /** The hash of the entry before (or of the checkpoint, or GENESIS for the first). */
  prev: string;
  hash: string;
}

export interface ListedEntry extends ChainedEntry {
  /** The stream id (time-ordered). */
  id: string;
}

/** Where the chain stands: the last entry's sequence number and hash. */
interface ChainLink {
  seq: number;
  hash: string;
}

/** What retention dropped, sealed like every value: the chain continues from its last entry. */
export interface AuditCheckpoint extends ChainLink {
  /** How many entries retention has dropped so far, in all. */
  dropped: number;
  /** When the last dropped entry was recorded. */
  through: string;
  created_at: string;
}

export type AuditVerdict =
  | { ok: true; entries: number; checkpoint?: AuditCheckpoint }
  | {
      ok: false;
      entries: number;
      first_bad: { seq: number; id: string | null; reason: 'changed' | 'removed' | 'reordered' };
    };

export const GENESIS = '0'.repeat(64);

/** How many entries `audit list` shows when not told, and at most. */
export const AUDIT_LIST_DEFAULT = 100;
export const AUDIT_LIST_MAX = 10_000;

/**
 * The number of entries asked for, as typed (`--limit` of the CLI, `?limit=` of the admin API): an
 * integer from 1 to AUDIT_LIST_MAX, AUDIT_LIST_DEFAULT when absent. `name` is the option as the caller
 * spelled it, for the message.
 */
export function parseAuditLimit(value: unknown, name: string): number {
  if (value === undefined) return AUDIT_LIST_DEFAULT;
  if (
    typeof value !== 'string' ||
    !/^\d{1,5}$/.test(value) ||
    Number(value) < 1 ||
    Number(value) > AUDIT_LIST_MAX
  )
    throw new InvalidInputError(`${name}: an integer from 1 to ${AUDIT_LIST_MAX}`);
  return Number(value);
}
const BATCH = 100;
const PAGE = 1000;
const APPEND_ATTEMPTS = 50;
/** How many times one retention run starts a batch again after another instance's trim. */
const RETENTION_RACES = 10;

/** The hash an entry is chained by: SHA-256 of its fields in their fixed order, the hash aside. */
export function entryHash(entry: Omit<ChainedEntry, 'hash'>): string {
  const { seq, prev, at, actor, action, target, source, outcome, details } = entry;
  return createHash('sha256')
    .update(JSON.stringify({ seq, prev, at, actor, action, target, source, outcome, details }))
    .digest('hex');
}

interface Pending {
  entry: AuditEntry;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The audit trail: admin actions and security events, appended to a Redis stream as a hash chain.
 * Each entry carries its sequence number and the hash of the entry before, and is sealed (AES-GCM)
 * like every other value, so without the store's data key nobody can forge an entry, and a changed,
 * removed or reordered entry breaks the chain (`verify`). A head record (last seq and hash) beside
 * the stream catches a truncated tail; both change together in one script, only if the head is the
 * one the entries were chained to, so any number of instances append without forking the chain.
 * Retention drops old entries only behind a sealed checkpoint that the chain continues from.
 */
export class AuditLog {
  readonly #kv: Kv;
  readonly #keys: KeyNames;
  readonly #box: SealedBox;
  readonly #logger: Logger | undefined;
  readonly #now: () => Date;
  #pending: Pending[] = [];
  #flushing: Promise<void> | undefined;

  constructor(kv: Kv, keys: KeyNames, box: SealedBox, options: { logger?: Logger; now?: () => Date } = {}) {
    this.#kv = kv;
    this.#keys = keys;
    this.#box = box;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Appends an event; resolves once it is in the store. Events recorded together are appended
   * together, one chain update per batch.
   */
  record(event: AuditEvent): Promise<void> {
    const entry: AuditEntry = { ...event, at: this.#now().toISOString() };
    // The log gets what happened, never who or from where: actor and target can be an email as typed
    // (even a password typed into the email field) and source is an address; those stay sealed here.
    this.#logger?.info({ audit: { action: entry.action, outcome: entry.outcome, at: entry.at } }, 'audit');
    return new Promise((resolve, reject) => {
      this.#pending.push({ entry, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  /** Appends without waiting; a failure is logged (the event is in the log already). */
  notify(event: AuditEvent): void {
    this.record(event).catch((error: Error) =>
      this.#logger?.error({ err: { message: error.message }, action: event.action }, 'audit append failed'),
    );
  }

  async #flush(): Promise<void> {
    try {
      while (this.#pending.length) {
        const batch = this.#pending.splice(0, BATCH);
        try {
          await this.#append(batch.map((p) => p.entry));
          for (const p of batch) p.resolve();
        } catch (error) {
          for (const p of batch) p.reject(error);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  async #append(entries: AuditEntry[]): Promise<void> {
    const headKey = this.#keys.auditHead();
    for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
      const sealedHead = await this.#kv.get(headKey);
      let link = sealedHead
        ? this.#box.openJson<ChainLink>(sealedHead, headKey)
        : await this.#checkpointLink();
      const sealed = entries.map((entry) => {
        const body = { seq: link.seq + 1, prev: link.hash, ...entry };
        const chained: ChainedEntry = { ...body, hash: entryHash(body) };
        link = { seq: chained.seq, hash: chained.hash };
        return this.#box.sealJson(chained, this.#keys.auditLog());
      });
      const ids = await this.#kv.appendToLog(
        this.#keys.auditLog(),
        headKey,
        sealedHead,
        this.#box.sealJson(link, headKey),
        sealed,
      );
      if (ids) return;
      // Another instance appended first: chain to its head instead, after a short random pause.
      await delay(2 + Math.random() * 10 * Math.min(attempt + 1, 5));
    }
    throw new Error('the audit trail is too busy to append to; try again');
  }

  async #checkpoint(): Promise<{ sealed: string | undefined; checkpoint: AuditCheckpoint | undefined }> {
    const key = this.#keys.auditCheckpoint();
    const sealed = await this.#kv.get(key);
    return { sealed, checkpoint: sealed ? this.#box.openJson<AuditCheckpoint>(sealed, key) : undefined };
  }

  async #checkpointLink(): Promise<ChainLink> {
    const { checkpoint } = await this.#checkpoint();
    return checkpoint ? { seq: checkpoint.seq, hash: checkpoint.hash } : { seq: 0, hash: GENESIS };
  }

  #open(entry: LogEntry): ListedEntry | undefined {
    try {
      const chained = this.#box.openJson<ChainedEntry>(entry.value, this.#keys.auditLog());
      return { id: entry.id, ...chained };
    } catch {
      return undefined;
    }
  }

  /** The newest entries first; an entry that does not open (tampered) is left out: `verify` names it. */
  async recent(count = AUDIT_LIST_DEFAULT): Promise<ListedEntry[]> {
    const raw = await this.#kv.readLogNewest(this.#keys.auditLog(), count);
    return raw.map((e) => this.#open(e)).filter((e): e is ListedEntry => e !== undefined);
  }

  async #readAll(): Promise<LogEntry[]> {
    const all: LogEntry[] = [];
    for (let after: string | undefined; ; ) {
      const page = await this.#kv.readLog(this.#keys.auditLog(), after, PAGE);
      all.push(...page);
      if (page.length < PAGE) return all;
      after = page.at(-1)?.id;
    }
  }

  /**
   * Walks the chain from the checkpoint (or the start) to the head and names the first entry that
   * was changed (does not open, wrong hash or wrong predecessor), removed (a sequence number is
   * missing, the tail included) or reordered (found before an entry that should precede it).
   */
  async verify(): Promise<AuditVerdict> {
    // The head first: entries appended while reading are beyond it and not judged.
    const headKey = this.#keys.auditHead();
    const sealedHead = await this.#kv.get(headKey);
    let head: ChainLink | undefined;
    try {
      head = sealedHead ? this.#box.openJson<ChainLink>(sealedHead, headKey) : undefined;
    } catch {
      head = undefined;
    }
    const { checkpoint } = await this.#checkpoint().catch(() => ({ checkpoint: undefined }));
    const raw = await this.#readAll();
    const opened = raw.map((e) => ({ raw: e, entry: this.#open(e) }));
    const start: ChainLink = checkpoint
      ? { seq: checkpoint.seq, hash: checkpoint.hash }
      : { seq: 0, hash: GENESIS };
    const bad = (seq: number, id: string | null, reason: 'changed' | 'removed' | 'reordered') =>
      ({ ok: false, entries: raw.length, first_bad: { seq, id, reason } }) as const;

    let link = start;
    for (let i = 0; i < opened.length; i++) {
      const { raw: stored, entry } = opened[i] as (typeof opened)[number];
      const expected = link.seq + 1;
      if (!entry) return bad(expected, stored.id, 'changed');
      if (head && entry.seq > head.seq) break;
      if (entry.seq !== expected) {
        const later = opened.slice(i + 1).some((o) => o.entry?.seq === expected);
        return later || entry.seq < expected
          ? bad(entry.seq, stored.id, 'reordered')
          : bad(expected, null, 'removed');
      }
      const { id: _id, hash, ...body } = entry;
      if (entry.prev !== link.hash || hash !== entryHash(body)) return bad(entry.seq, stored.id, 'changed');
      link = { seq: entry.seq, hash };
    }
    if (sealedHead && !head) return bad(link.seq + 1, null, 'changed');
    const end = head ?? start;
    if (end.seq > link.seq) return bad(link.seq + 1, null, 'removed');
    if (end.seq < link.seq || end.hash !== link.hash) return bad(end.seq, null, 'changed');
    return { ok: true, entries: link.seq - start.seq, ...(checkpoint ? { checkpoint } : {}) };
  }

  /**
   * Drops entries older than `maxAgeSeconds`, behind a sealed checkpoint holding the last dropped
   * entry's sequence number and hash, so `verify` still proves the chain from there. Refuses to
   * drop anything when the part it would drop does not verify: retention never hides tampering.
   * Works in batches of at most PAGE entries, one checkpoint each, until nothing old is left. When
   * another instance moves the checkpoint first (its own retention), the batch starts again from
   * there, a bounded number of times.
   */
  async applyRetention(maxAgeSeconds: number, now = this.#now()): Promise<{ dropped: number }> {
    const cutoff = now.getTime() - maxAgeSeconds * 1000;
    let dropped = 0;
    for (let races = 0; races <= RETENTION_RACES; ) {
      const batch = await this.#dropBatch(cutoff, now);
      if (batch === 'raced') {
        races++;
        continue;
      }
      dropped += batch.dropped;
      if (!batch.more) break;
    }
    return { dropped };
  }

  /**
   * One batch of retention: what it dropped, and `more` when the whole batch was old and full (there
   * may be more); 'raced' when another instance moved the checkpoint meanwhile.
   */
  async #dropBatch(cutoff: number, now: Date): Promise<{ dropped: number; more: boolean } | 'raced'> {
    const { sealed, checkpoint } = await this.#checkpoint();
    let link: ChainLink = checkpoint
      ? { seq: checkpoint.seq, hash: checkpoint.hash }
      : { seq: 0, hash: GENESIS };
    let last: ListedEntry | undefined;
    let dropped = 0;
    const page = await this.#kv.readLog(this.#keys.auditLog(), undefined, PAGE);
    for (const stored of page) {
      const entry = this.#open(stored);
      if (!entry) throw new AuditChainError(`entry ${stored.id} does not open: run audit verify`);
      if (Date.parse(entry.at) >= cutoff) break;
      const { id: _id, hash, ...body } = entry;
      if (entry.seq !== link.seq + 1 || entry.prev !== link.hash || hash !== entryHash(body)) {
        // Another instance trimmed between our reads of the checkpoint and the log: not tampering.
        if ((await this.#kv.get(this.#keys.auditCheckpoint())) !== sealed) return 'raced';
        throw new AuditChainError(`the chain is broken at entry ${stored.id}: run audit verify`);
      }
      link = { seq: entry.seq, hash };
      last = entry;
      dropped++;
    }
    if (!last) return { dropped: 0, more: false };
    const next: AuditCheckpoint = {
      seq: link.seq,
      hash: link.hash,
      dropped: (checkpoint?.dropped ?? 0) + dropped,
      through: last.at,
      created_at: now.toISOString(),
    };
    const key = this.#keys.auditCheckpoint();
    const done = await this.#kv.trimLog(
      this.#keys.auditLog(),
      key,
      sealed,
      this.#box.sealJson(next, key),
      last.id,
    );
    return done ? { dropped, more: dropped === PAGE } : 'raced';
  }
}

/** Retention found the part it would drop broken: it drops nothing. */
export class AuditChainError extends ConflictError {}
