/**
 * xoshiro128** 1.1 (Blackman & Vigna), the trainer's only source of randomness.
 *
 * Why this generator: its whole state is four 32-bit words, so a checkpoint can
 * store it exactly in JSON and a resumed run continues the very same stream
 * (Math.random cannot be saved or seeded). All arithmetic is 32-bit integer
 * math (Math.imul, shifts), so the stream is the same on every platform.
 */

export const RNG_ALGORITHM = 'xoshiro128**';

export interface RngState {
  algorithm: typeof RNG_ALGORITHM;
  /** The four state words, unsigned 32-bit. */
  state: [number, number, number, number];
}

const TWO_POW_32 = 2 ** 32;

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * murmur3's 32-bit finaliser over a Weyl sequence (a "splitmix32"): spreads a
 * small integer seed over all four state words, so seeds 1 and 2 give
 * unrelated streams and the state is never all zero in practice.
 */
function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Xoshiro128 {
  private readonly s = new Uint32Array(4);

  private constructor(words: ArrayLike<number>) {
    for (let i = 0; i < 4; i++) this.s[i] = words[i]! >>> 0;
    if (this.s[0] === 0 && this.s[1] === 0 && this.s[2] === 0 && this.s[3] === 0) {
      // The all-zero state is the generator's one fixed point: it would emit zeros forever.
      throw new Error('xoshiro128** state must not be all zero');
    }
  }

  /** A generator seeded from a 32-bit integer (the CLI's --seed). */
  static fromSeed(seed: number): Xoshiro128 {
    if (!Number.isSafeInteger(seed) || seed < 0 || seed >= TWO_POW_32) {
      throw new Error(`seed must be an integer in [0, 2^32), got ${seed}`);
    }
    const sm = splitmix32(seed);
    return new Xoshiro128([sm(), sm(), sm(), sm()]);
  }

  /** The generator exactly as saved by {@link save} (validated: a checkpoint is untrusted input). */
  static restore(saved: unknown): Xoshiro128 {
    const s = saved as Partial<RngState> | null;
    if (!s || typeof s !== 'object' || s.algorithm !== RNG_ALGORITHM) {
      throw new Error(`RNG state: expected algorithm "${RNG_ALGORITHM}"`);
    }
    const words = s.state;
    if (
      !Array.isArray(words) ||
      words.length !== 4 ||
      !words.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32)
    ) {
      throw new Error('RNG state: expected four unsigned 32-bit integers');
    }
    return new Xoshiro128(words);
  }

  /** Reference constructor for the raw state words (tests compare with the C reference). */
  static fromWords(words: readonly [number, number, number, number]): Xoshiro128 {
    return new Xoshiro128(words);
  }

  save(): RngState {
    return { algorithm: RNG_ALGORITHM, state: [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!] };
  }

  clone(): Xoshiro128 {
    return new Xoshiro128(this.s);
  }

  /** Next unsigned 32-bit output. */
  nextU32(): number {
    const s = this.s;
    const s0 = s[0]!;
    const s1 = s[1]!;
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s[2] = s[2]! ^ s0;
    s[3] = s[3]! ^ s1;
    s[1] = s1 ^ s[2]!;
    s[0] = s0 ^ s[3]!;
    s[2] = s[2]! ^ t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 24 random bits: every value is exactly a float32. */
  nextFloat(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }

  /** Uniform integer in [0, n), unbiased (rejects the top sliver of the 2^32 range). */
  nextBelow(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) throw new Error(`nextBelow: bad bound ${n}`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal by Box–Muller (used only to make the data set). */
  nextNormal(): number {
    const u1 = 1 - this.nextFloat(); // (0, 1]: log(0) never happens
    const u2 = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** In-place Fisher–Yates shuffle of `order`. */
  shuffle(order: Int32Array | Uint32Array): void {
    for (let i = order.length - 1; i > 0; i--) {
      const j = this.nextBelow(i + 1);
      const tmp = order[i]!;
      order[i] = order[j]!;
      order[j] = tmp;
    }
  }
}
