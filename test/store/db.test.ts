/** The embedded SQLite database: page size of new files, existing files left as they are. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { openDb } from '../../src/store/db.js';

test('a new SQLite database file gets 16 KiB pages; an existing 4 KiB one keeps its pages and its data', async () => {
  const fresh = mkdtempSync(join(tmpdir(), 'pcl-db-new-'));
  const old = mkdtempSync(join(tmpdir(), 'pcl-db-old-'));
  try {
    const db = await openDb({ dataDir: fresh });
    assert.equal(db.sqlite!.pragma('page_size', { simple: true }), 16_384);
    assert.equal(db.sqlite!.pragma('journal_mode', { simple: true }), 'wal');
    await db.close();

    // A database created before (SQLite's default 4 KiB pages, WAL): reopening must not try to change it.
    const raw = new SqliteDatabase(join(old, 'portcullis.db'));
    raw.pragma('journal_mode = WAL');
    raw.exec('CREATE TABLE before_upgrade (x INTEGER); INSERT INTO before_upgrade VALUES (42);');
    assert.equal(raw.pragma('page_size', { simple: true }), 4096);
    raw.close();
    const reopened = await openDb({ dataDir: old });
    assert.equal(reopened.sqlite!.pragma('page_size', { simple: true }), 4096);
    assert.deepEqual(reopened.sqlite!.prepare('SELECT x FROM before_upgrade').all(), [{ x: 42 }]);
    assert.ok(await reopened.ping());
    await reopened.close();
  } finally {
    rmSync(fresh, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
});
