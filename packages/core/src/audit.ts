import type { Clock } from './clock.js';
import type { AuditEventType, AuditRecord, Store } from './store.js';

/** Receives every audit event (e.g. a pino logger); must not throw. */
export type AuditSink = (event: AuditRecord) => void;

/**
 * Audit events of checklist C-216 (fields of C-143), written to the store and to an optional sink.
 * Per-request events (`proxy_request`) go to the sink only unless `persistProxyRequests`, so the
 * hot path never waits on a database write.
 */
export class Auditor {
  constructor(
    private readonly store: Pick<Store, 'appendAudit'>,
    private readonly clock: Clock,
    private readonly sink?: AuditSink,
    private readonly persistProxyRequests = false,
  ) {}

  async emit(event: AuditEventType, fields: Omit<AuditRecord, 'timestamp' | 'event'>): Promise<void> {
    const record: AuditRecord = { timestamp: new Date(this.clock.now()).toISOString(), event, ...fields };
    try {
      this.sink?.(record);
    } catch {
      // A broken log sink must not fail the protocol decision it records.
    }
    if (event !== 'proxy_request' || this.persistProxyRequests) await this.store.appendAudit(record);
  }
}
