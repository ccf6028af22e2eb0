/** README's configuration reference must name every config key and env override that exists, and no other. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENV_OVERRIDES } from '../../config/load';
import { LIFELINE_ROOT } from '../../config/root';
import { LifelineConfigSchema } from '../../config/schema';

const readme = readFileSync(join(LIFELINE_ROOT, 'README.md'), 'utf8');

/** Leaf key paths of the schema (a secret reference counts as a leaf). */
function keyPaths(schema: any, prefix = ''): string[] {
  let s = schema;
  for (let i = 0; i < 10; i++) {
    const def = s?._zod?.def;
    if (def?.innerType) s = def.innerType;
    else if (def?.type === 'pipe' && def.in?._zod?.def?.type === 'object') s = def.in;
    else break;
  }
  // A map section (tenants, nodes, assets, policies) is documented as `section.NAME.key`.
  if (s?._zod?.def?.type === 'record') {
    const inner = keyPaths(s._zod.def.valueType, `${prefix}.NAME`);
    // A map of plain values (labels) is one key.
    return inner.length === 1 && inner[0] === `${prefix}.NAME` ? [prefix] : inner;
  }
  if (!s?.shape) return [prefix];
  return Object.entries(s.shape).flatMap(([k, v]) => keyPaths(v, prefix ? `${prefix}.${k}` : k));
}

describe('README configuration reference', () => {
  const documentedKeys = [...readme.matchAll(/^\| `([a-zA-Z.]+)` \|/gm)].map((m) => m[1]!).filter((k) => k.includes('.') && !/\.(ts|js|mjs|json|md|ya?ml)$/.test(k)); // not file names (README's module tables)

  it('documents every config key, and only real ones', () => {
    const keys = keyPaths(LifelineConfigSchema);
    expect(keys.length).toBeGreaterThan(15);
    expect(documentedKeys.sort()).toEqual(keys.sort());
  });

  it('documents every environment override with the key it sets', () => {
    for (const o of ENV_OVERRIDES) {
      expect(readme, o.name).toMatch(new RegExp(`^\\| \`${o.name}\` \\| \`${o.path.replace(/\./g, '\\.')}\``, 'm'));
    }
  });
});
