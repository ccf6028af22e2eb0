/**
 * A blob stored in two packs (a backup copied it out of a condemned pack) stays
 * indexed when one pack is condemned, whichever index object was read first —
 * otherwise garbage collection "rescues" the condemned pack forever.
 */
import { describe, expect, it } from 'vitest';
import { MasterIndex, type PackRecord } from '../../engine/index';

const hex = (c: string) => c.repeat(64);
const pack = (id: string, blobs: string[]): PackRecord => ({
  id,
  ciphertextBytes: 100,
  plaintextBytes: 80,
  headerBytes: 20,
  blobs: blobs.map((b, i) => ({ id: b, type: 'data', offset: i * 10, length: 10 })),
});

describe('MasterIndex.removePacks with copies of a blob', () => {
  for (const order of ['condemned first', 'copy first'] as const) {
    it(`keeps the blob at its surviving copy (${order})`, () => {
      const condemned = pack(hex('a'), [hex('1'), hex('2')]);
      const copy = pack(hex('b'), [hex('3'), hex('1')]);
      const idx = new MasterIndex();
      for (const p of order === 'condemned first' ? [condemned, copy] : [copy, condemned]) idx.addIndexFile(`i-${p.id.slice(0, 4)}`, [p]);
      const removed = idx.removePacks([condemned.id]);
      expect(idx.has(hex('1'))).toBe(true);
      expect(idx.lookup(hex('1'))).toEqual({ packId: copy.id, type: 'data', offset: 10, length: 10 });
      expect(idx.has(hex('2'))).toBe(false);
      expect(idx.pack(condemned.id)).toBeUndefined();
      // What the condemned pack held is still reported (a running backup may copy from it).
      expect(removed.packs.map((p) => p.id)).toEqual([condemned.id]);
      expect(removed.blobs.map(([id]) => id).sort()).toEqual(order === 'condemned first' ? [hex('1'), hex('2')] : [hex('2')]);
    });
  }
});
