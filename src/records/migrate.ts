/**
 * Applies the migrations a database has not seen yet, all in one transaction behind a
 * transaction-scoped advisory lock, so nodes starting together take turns and the second finds
 * everything applied. Running it again changes nothing.
 */
import type { SqlDatabase } from './sql.js';
import { migrations as allMigrations, type Migration } from './migrations.js';

/** An arbitrary constant shared by every Chorus node: the key of the migration lock. */
const LOCK_KEY = 0x63686f72; // "chor"

export async function migrate(db: SqlDatabase, migrations: readonly Migration[] = allMigrations): Promise<{ applied: number[] }> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = new Set((await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
    const applied: number[] = [];
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      applied.push(migration.version);
    }
    return { applied };
  });
}
