/**
 * The README's configuration reference is checked against the config schema, so it cannot drift:
 * every variable the schema reads has a row, every row names a variable the schema reads, and each
 * default shown is the schema's own.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { envSchema } from '../../src/config/config.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** Rows of the table under `### Configuration reference`: variable name and default cell. */
function referenceRows(): Array<{ name: string; defaultCell: string }> {
  const section = readme.split('### Configuration reference')[1]?.split(/\n#{2,3} /)[0];
  if (!section) throw new Error('README has no "### Configuration reference" section');
  return section
    .split('\n')
    .filter((line) => /^\| `[A-Z0-9_]+` \|/.test(line))
    .map((line) => {
      const [, name, defaultCell] = line.split('|').map((cell) => cell.trim());
      return { name: name!.replace(/`/g, ''), defaultCell: defaultCell! };
    });
}

/** What the README must show for a schema default. */
function expectedCell(value: unknown): string {
  return value === '' ? 'empty' : `\`${String(value)}\``;
}

describe('README configuration reference', () => {
  const rows = referenceRows();
  const shape = envSchema.shape as Record<string, { safeParse(v: unknown): { success: boolean; data?: unknown } }>;

  test('lists every variable the config schema reads, once, and nothing else', () => {
    const names = rows.map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual(Object.keys(shape).sort());
  });

  test('shows each default exactly as the schema has it (and none for variables without one)', () => {
    for (const { name, defaultCell } of rows) {
      const parsed = shape[name]!.safeParse(undefined);
      expect(parsed.success, `${name} must be optional or defaulted`).toBe(true);
      if (parsed.data === undefined) {
        expect(defaultCell.startsWith('`') && defaultCell.endsWith('`') && !defaultCell.includes(' '), `${name} has no schema default but the README shows one literally: ${defaultCell}`).toBe(false);
      } else {
        expect(defaultCell, name).toBe(expectedCell(parsed.data));
      }
    }
  });
});
