import type { Config } from '../../config/config.ts';
import { describe } from '../../shared/describe-error.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Store } from '../storage/store.ts';

const HOURLY = 3_600_000;

/**
 * AUDIT_RETENTION_DAYS: at start and hourly, every instance drops audit entries older than that
 * behind a sealed checkpoint; the checkpoint's compare-and-set lets one win. Retention that finds
 * the chain broken drops nothing and says so loudly.
 */
export function scheduleAuditRetention(config: Config, store: Store, logger: Logger): () => void {
  const trim = () =>
    void store.audit
      .applyRetention(config.auditRetentionDays * 86_400)
      .then(({ dropped }) => {
        if (dropped) logger.info({ dropped }, 'audit trail: old entries dropped behind a checkpoint');
      })
      .catch((error) => logger.error({ err: describe(error) }, 'audit trail retention refused or failed'));
  trim();
  const timer = setInterval(trim, HOURLY);
  timer.unref();
  return () => clearInterval(timer);
}
