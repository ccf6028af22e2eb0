/**
 * audit/merkle.ts against (a) known answers produced by an independent
 * implementation — transparency-dev/merkle (Go), over the RFC 6962 test
 * vectors of certificate-transparency (fixtures/audit-kat.json) — and (b) a
 * brute-force reference written straight from RFC 6962 §2.1 (array slicing,
 * no index arithmetic) for every tree size up to 64.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_ROOT,
  consistencyProof,
  consistencyProofFromFrontier,
  frontierOf,
  frontierPush,
  frontierRoot,
  frontierSizes,
  inclusionProof,
  leafHash,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from '../../audit/merkle';

const kat = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'audit-kat.json'), 'utf8')) as {
  leaves: string[];
  roots: string[];
  inclusion: Record<string, string[]>;
  consistency: Record<string, string[]>;
};
const hex = (b: Buffer) => b.toString('hex');
const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();

// ---- reference, from the RFC's definitions ---------------------------------------------

const refLeaf = (d: Buffer) => sha(Buffer.from([0]), d);
function largestPow2Below(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
function MTH(D: Buffer[]): Buffer {
  if (D.length === 0) return sha();
  if (D.length === 1) return refLeaf(D[0]!);
  const k = largestPow2Below(D.length);
  return sha(Buffer.from([1]), MTH(D.slice(0, k)), MTH(D.slice(k)));
}
function PATH(m: number, D: Buffer[]): Buffer[] {
  if (D.length === 1) return [];
  const k = largestPow2Below(D.length);
  return m < k ? [...PATH(m, D.slice(0, k)), MTH(D.slice(k))] : [...PATH(m - k, D.slice(k)), MTH(D.slice(0, k))];
}
function SUBPROOF(m: number, D: Buffer[], b: boolean): Buffer[] {
  const n = D.length;
  if (m === n) return b ? [] : [MTH(D)];
  const k = largestPow2Below(n);
  return m <= k ? [...SUBPROOF(m, D.slice(0, k), b), MTH(D.slice(k))] : [...SUBPROOF(m - k, D.slice(k), false), MTH(D.slice(0, k))];
}
const PROOF = (m: number, D: Buffer[]) => SUBPROOF(m, D, true);

/** 64 distinct entries of varied lengths. */
const DATA = Array.from({ length: 64 }, (_, i) => Buffer.from(`entry-${i}-${'x'.repeat(i % 7)}`));
const LEAVES = DATA.map(leafHash);

function flip(b: Buffer, bit = 0): Buffer {
  const c = Buffer.from(b);
  c[bit >> 3]! ^= 1 << (bit & 7);
  return c;
}

describe('RFC 6962 hashing', () => {
  it('leaf and node hashes are domain-separated SHA-256', () => {
    const d = Buffer.from('hello');
    expect(leafHash(d)).toEqual(sha(Buffer.from([0]), d));
    expect(nodeHash(LEAVES[0]!, LEAVES[1]!)).toEqual(sha(Buffer.from([1]), LEAVES[0]!, LEAVES[1]!));
    expect(hex(EMPTY_ROOT)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(rootOf([])).toEqual(EMPTY_ROOT);
  });

  it('matches the known roots of the RFC 6962 test vectors (transparency-dev/merkle)', () => {
    const leaves = kat.leaves.map((h) => leafHash(Buffer.from(h, 'hex')));
    expect(kat.roots).toHaveLength(8);
    for (let n = 1; n <= 8; n++) expect(hex(rootOf(leaves.slice(0, n))), `size ${n}`).toBe(kat.roots[n - 1]);
    // The well-known first and last values, so the fixture itself cannot drift.
    expect(kat.roots[0]).toBe('6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
    expect(kat.roots[7]).toBe('5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328');
  });

  it('matches the known inclusion and consistency proofs, which verify', () => {
    const leaves = kat.leaves.map((h) => leafHash(Buffer.from(h, 'hex')));
    let checked = 0;
    for (const [k, want] of Object.entries(kat.inclusion)) {
      const [i, n] = k.split('/').map(Number) as [number, number];
      const proof = inclusionProof(i, leaves.slice(0, n));
      expect(proof.map(hex), `inclusion ${k}`).toEqual(want);
      expect(verifyInclusion(i, n, leaves[i]!, proof, Buffer.from(kat.roots[n - 1]!, 'hex'))).toBe(true);
      checked++;
    }
    for (const [k, want] of Object.entries(kat.consistency)) {
      const [m, n] = k.split('/').map(Number) as [number, number];
      const proof = consistencyProof(m, n, leaves.slice(0, n));
      expect(proof.map(hex), `consistency ${k}`).toEqual(want);
      expect(verifyConsistency(m, n, Buffer.from(kat.roots[m - 1]!, 'hex'), Buffer.from(kat.roots[n - 1]!, 'hex'), proof)).toBe(true);
      checked++;
    }
    expect(checked).toBe(36 + 36);
  });

  it('roots equal the brute-force MTH for every size up to 64', () => {
    for (let n = 0; n <= 64; n++) expect(rootOf(LEAVES.slice(0, n)), `size ${n}`).toEqual(MTH(DATA.slice(0, n)));
  });
});

describe('inclusion proofs, all sizes up to 64', () => {
  it('equal PATH(m, D[n]) and verify; any change to leaf, index, root or proof fails (the size is authenticated by the checkpoint)', () => {
    for (let n = 1; n <= 64; n++) {
      const leaves = LEAVES.slice(0, n);
      const root = rootOf(leaves);
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(i, leaves);
        expect(proof, `${i}/${n}`).toEqual(PATH(i, DATA.slice(0, n)));
        expect(verifyInclusion(i, n, leaves[i]!, proof, root)).toBe(true);
        expect(verifyInclusion(i, n, flip(leaves[i]!), proof, root)).toBe(false);
        expect(verifyInclusion(i, n, leaves[i]!, proof, flip(root, 255))).toBe(false);
        if (n > 1) expect(verifyInclusion((i + 1) % n, n, leaves[i]!, proof, root)).toBe(false);
        for (let j = 0; j < proof.length; j++) {
          const bad = proof.slice();
          bad[j] = flip(bad[j]!, 100);
          expect(verifyInclusion(i, n, leaves[i]!, bad, root)).toBe(false);
        }
        if (proof.length) expect(verifyInclusion(i, n, leaves[i]!, proof.slice(0, -1), root)).toBe(false);
        expect(verifyInclusion(i, n, leaves[i]!, [...proof, LEAVES[0]!], root)).toBe(false);
      }
    }
  });

  it('refuses an index outside the tree', () => {
    expect(() => inclusionProof(3, LEAVES.slice(0, 3))).toThrow(/outside/);
    expect(verifyInclusion(3, 3, LEAVES[0]!, [], rootOf(LEAVES.slice(0, 3)))).toBe(false);
  });
});

describe('consistency proofs, all sizes up to 64', () => {
  it('equal PROOF(m, D[n]) and verify; any change to roots, sizes or proof fails', () => {
    let pairs = 0;
    for (let n = 1; n <= 64; n++) {
      const newRoot = rootOf(LEAVES.slice(0, n));
      for (let m = 1; m <= n; m++) {
        const oldRoot = rootOf(LEAVES.slice(0, m));
        const proof = consistencyProof(m, n, LEAVES.slice(0, n));
        expect(proof, `${m}/${n}`).toEqual(m === n ? [] : PROOF(m, DATA.slice(0, n)));
        expect(verifyConsistency(m, n, oldRoot, newRoot, proof), `${m}/${n}`).toBe(true);
        pairs++;
        if (m === n) {
          expect(verifyConsistency(m, n, oldRoot, flip(newRoot), proof)).toBe(false);
          continue;
        }
        // A forked history: the old tree differs in any one leaf.
        const forked = LEAVES.slice(0, m);
        forked[(m * 7) % m] = leafHash(Buffer.from(`forged-${m}`));
        expect(verifyConsistency(m, n, rootOf(forked), newRoot, proof), `fork ${m}/${n}`).toBe(false);
        expect(verifyConsistency(m, n, oldRoot, flip(newRoot, 9), proof)).toBe(false);
        if (m > 1) expect(verifyConsistency(m - 1, n, oldRoot, newRoot, proof)).toBe(false);
        for (let j = 0; j < proof.length; j++) {
          const bad = proof.slice();
          bad[j] = flip(bad[j]!, 200);
          expect(verifyConsistency(m, n, oldRoot, newRoot, bad), `${m}/${n} element ${j}`).toBe(false);
        }
        expect(verifyConsistency(m, n, oldRoot, newRoot, proof.slice(0, -1))).toBe(false);
        expect(verifyConsistency(m, n, oldRoot, newRoot, [...proof, LEAVES[1]!])).toBe(false);
        expect(verifyConsistency(n, m, newRoot, oldRoot, proof)).toBe(false);
      }
    }
    expect(pairs).toBe((64 * 65) / 2);
  });

  it('the empty tree is consistent with every tree; equal sizes need equal roots', () => {
    expect(consistencyProof(0, 5, LEAVES.slice(0, 5))).toEqual([]);
    expect(verifyConsistency(0, 5, EMPTY_ROOT, rootOf(LEAVES.slice(0, 5)), [])).toBe(true);
    expect(verifyConsistency(4, 4, rootOf(LEAVES.slice(0, 4)), rootOf(LEAVES.slice(0, 4)), [])).toBe(true);
    expect(verifyConsistency(4, 4, rootOf(LEAVES.slice(0, 4)), rootOf(LEAVES.slice(1, 5)), [])).toBe(false);
    expect(() => consistencyProof(5, 4, LEAVES.slice(0, 5))).toThrow(/larger/);
  });
});

describe('frontiers', () => {
  it('fold to the root for every size up to 64, one hash per set bit of the size', () => {
    let f: Buffer[] = [];
    for (let n = 0; n <= 64; n++) {
      expect(frontierRoot(f), `size ${n}`).toEqual(rootOf(LEAVES.slice(0, n)));
      expect(f.length).toBe(n.toString(2).split('').filter((c) => c === '1').length);
      expect(frontierSizes(n).reduce((a, b) => a + b, 0)).toBe(n);
      expect(f).toEqual(frontierOf(LEAVES.slice(0, n)));
      if (n < 64) f = frontierPush(f, n, LEAVES[n]!);
    }
  });

  it('give the same consistency proof as the whole tree, for every m < n ≤ 64', () => {
    for (let n = 1; n <= 64; n++) {
      for (let m = 0; m < n; m++) {
        const fromFrontier = consistencyProofFromFrontier(m, frontierOf(LEAVES.slice(0, m)), LEAVES.slice(m, n));
        expect(fromFrontier, `${m}/${n}`).toEqual(consistencyProof(m, n, LEAVES.slice(0, n)));
      }
    }
  });

  it('refuse a frontier of the wrong length', () => {
    expect(() => frontierPush([], 3, LEAVES[0]!)).toThrow(/frontier of 3 leaves has 2 hashes/);
    expect(() => consistencyProofFromFrontier(5, [LEAVES[0]!], [LEAVES[5]!])).toThrow(/frontier/);
  });
});
