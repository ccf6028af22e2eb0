/** docs/COMPLIANCE.md names real tests only, and every integration test appears in it. */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LIFELINE_ROOT } from '../../config/root';

const map = readFileSync(join(LIFELINE_ROOT, 'docs', 'COMPLIANCE.md'), 'utf8');
const named = [...new Set([...map.matchAll(/([a-z0-9-]+\.test\.ts)/g)].map((m) => m[1]!))];
const exists = (f: string) => existsSync(join(LIFELINE_ROOT, 'test', 'unit', f)) || existsSync(join(LIFELINE_ROOT, 'test', 'integration', f));

describe('compliance map', () => {
  it('names only tests that exist', () => {
    expect(named.length).toBeGreaterThan(30);
    expect(named.filter((f) => !exists(f))).toEqual([]);
  });

  it('names every integration test', () => {
    const integration = readdirSync(join(LIFELINE_ROOT, 'test', 'integration')).filter((f) => f.endsWith('.test.ts'));
    expect(integration.filter((f) => !named.includes(f))).toEqual([]);
  });
});
