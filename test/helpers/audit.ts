/** Test helper: the stored audit event of a request, once the writer has flushed it. */
import type { AuditEvent } from '../../src/audit/event.js';
import type { AuditModule } from '../../src/audit/module.js';
import { waitFor } from '../identity/util.js';

/** Flushes the writer until the event of `requestId` is stored (up to 5 s) and returns it. */
export async function auditEventOf(audit: AuditModule, requestId: string): Promise<AuditEvent> {
  let ev: AuditEvent | undefined;
  await waitFor(async () => {
    await audit.flush();
    ev = (await audit.store.search({ requestId, limit: 5 })).data[0];
    return !!ev;
  }, 5000);
  return ev!;
}
