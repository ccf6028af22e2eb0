import { describe, expect, it } from 'vitest';
import { Xoshiro128 } from '../../trainer/rng';

describe('xoshiro128**', () => {
  it('matches the reference C implementation (Blackman & Vigna) from state {1, 2, 3, 4}', () => {
    // Printed by the reference next() of xoshiro128starstar.c (public domain), compiled with gcc.
    const rng = Xoshiro128.fromWords([1, 2, 3, 4]);
    const out = Array.from({ length: 8 }, () => rng.nextU32());
    expect(out).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
    expect(rng.save().state).toEqual([857776784, 3957087773, 2428778008, 3837013768]);
  });

  it('continues the same stream after save → restore (what a checkpoint relies on)', () => {
    const a = Xoshiro128.fromSeed(42);
    for (let i = 0; i < 1000; i++) a.nextU32();
    const saved = JSON.parse(JSON.stringify(a.save())) as unknown;
    const b = Xoshiro128.restore(saved);
    const fromA = Array.from({ length: 100 }, () => a.nextU32());
    const fromB = Array.from({ length: 100 }, () => b.nextU32());
    expect(fromB).toEqual(fromA);
  });

  it('gives different streams for different seeds and the same stream for the same seed', () => {
    const s = (seed: number) => {
      const r = Xoshiro128.fromSeed(seed);
      return Array.from({ length: 4 }, () => r.nextU32());
    };
    expect(s(7)).toEqual(s(7));
    expect(s(7)).not.toEqual(s(8));
    expect(s(0)).not.toEqual([0, 0, 0, 0]);
  });

  it('refuses malformed saved states', () => {
    expect(() => Xoshiro128.restore({ algorithm: 'mt19937', state: [1, 2, 3, 4] })).toThrow(/algorithm/);
    expect(() => Xoshiro128.restore({ algorithm: 'xoshiro128**', state: [1, 2, 3] })).toThrow(/four unsigned/);
    expect(() => Xoshiro128.restore({ algorithm: 'xoshiro128**', state: [1, 2, 3, 2 ** 32] })).toThrow(/four unsigned/);
    expect(() => Xoshiro128.restore({ algorithm: 'xoshiro128**', state: [0, 0, 0, 0] })).toThrow(/all zero/);
    expect(() => Xoshiro128.restore(null)).toThrow();
    expect(() => Xoshiro128.fromSeed(-1)).toThrow(/seed/);
  });

  it('nextFloat is in [0, 1) and exactly representable in float32; nextBelow stays in range and covers it', () => {
    const r = Xoshiro128.fromSeed(1);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 6000; i++) {
      const f = r.nextFloat();
      expect(f >= 0 && f < 1 && Math.fround(f) === f).toBe(true);
      const k = r.nextBelow(6);
      counts[k]! += 1;
    }
    // 1000 expected per bucket; a broken reduction (say, always 0) is far outside ±200.
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(200);
  });

  it('shuffle is a permutation and depends on the state', () => {
    const order = Int32Array.from({ length: 50 }, (_, i) => i);
    const r = Xoshiro128.fromSeed(3);
    const again = r.clone();
    r.shuffle(order);
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect([...order]).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    const order2 = Int32Array.from({ length: 50 }, (_, i) => i);
    again.shuffle(order2);
    expect([...order2]).toEqual([...order]);
  });
});
