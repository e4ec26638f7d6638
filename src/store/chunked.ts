/** Deleting many rows without holding the event loop (better-sqlite3 runs each statement on it). */
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Repeats until fewer than `chunk` ids come back: `selectIds(chunk)` picks up to `chunk` ids,
 * `remove(ids)` deletes them and answers how many rows it counted; the event loop takes a turn
 * between rounds. Returns the sum of those counts.
 */
export async function deleteInChunks<Id>(chunk: number, selectIds: (limit: number) => Promise<Id[]>, remove: (ids: Id[]) => Promise<number>): Promise<number> {
  let n = 0;
  for (;;) {
    const ids = await selectIds(chunk);
    if (ids.length > 0) n += await remove(ids);
    if (ids.length < chunk) return n;
    await nextTurn();
  }
}
