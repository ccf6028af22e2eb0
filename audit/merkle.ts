/**
 * RFC 6962 / RFC 9162 Merkle tree hashing, pure functions (no I/O).
 *
 *   leaf hash   = SHA-256(0x00 ‖ entry bytes)
 *   node hash   = SHA-256(0x01 ‖ left ‖ right)
 *   MTH({})     = SHA-256("")
 *   MTH(D[n])   = node(MTH(D[0:k]), MTH(D[k:n])), k = the largest power of two < n
 *
 * Inclusion and consistency proofs follow RFC 6962 §2.1.1 / §2.1.2 (PATH and
 * PROOF/SUBPROOF), with the verification algorithms of RFC 9162 §2.1.3.2 and
 * §2.1.4.2. A *frontier* (compact range [0, n)) is the list of roots of the
 * perfect subtrees that make up a tree of n leaves, largest first — one per set
 * bit of n. It is all an appender needs to extend a tree and compute its root.
 *
 * Hashes are 32-byte Buffers. Every function that takes a size or index
 * refuses values that are not safe non-negative integers.
 */
import { createHash } from 'node:crypto';

export const HASH_SIZE = 32;

export type Hash = Buffer;

/** The root of the empty tree: SHA-256 of nothing. */
export const EMPTY_ROOT: Hash = createHash('sha256').digest();

export class MerkleError extends Error {
  override name = 'MerkleError';
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new MerkleError(`${what} must be a non-negative integer, got ${n}`);
}

function checkHash(h: Uint8Array, what: string): void {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) throw new MerkleError(`${what} must be a ${HASH_SIZE}-byte hash`);
}

export function leafHash(entry: Uint8Array): Hash {
  return createHash('sha256').update(Buffer.from([0x00])).update(entry).digest();
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Hash {
  return createHash('sha256').update(Buffer.from([0x01])).update(left).update(right).digest();
}

/** The largest power of two strictly smaller than n (n ≥ 2). */
export function splitPoint(n: number): number {
  if (n < 2) throw new MerkleError(`cannot split a tree of ${n} leaves`);
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * Hash of the subtree [lo, hi) given a way to get leaf hashes — the source of
 * every other function here. `node(lo, hi)` may return a known hash of that
 * exact subtree (e.g. from a frontier) to cut the recursion short.
 */
export type SubtreeSource = (lo: number, hi: number) => Hash | undefined;

function subtree(lo: number, hi: number, leaves: readonly Hash[] | undefined, known?: SubtreeSource): Hash {
  const k = known?.(lo, hi);
  if (k) return k;
  const n = hi - lo;
  if (n === 0) return EMPTY_ROOT;
  if (n === 1) {
    const leaf = leaves?.[lo];
    if (!leaf) throw new MerkleError(`leaf ${lo} is not available`);
    return leaf;
  }
  const s = splitPoint(n);
  return nodeHash(subtree(lo, lo + s, leaves, known), subtree(lo + s, hi, leaves, known));
}

/** MTH of a list of leaf hashes (not entries: hash them with {@link leafHash} first). */
export function rootOf(leafHashes: readonly Hash[]): Hash {
  leafHashes.forEach((h, i) => checkHash(h, `leaf hash ${i}`));
  return subtree(0, leafHashes.length, leafHashes);
}

// ---- inclusion -----------------------------------------------------------------

/** PATH(index, D[n]) of RFC 6962 §2.1.1, for the tree of the given leaf hashes. */
export function inclusionProof(index: number, leafHashes: readonly Hash[]): Hash[] {
  checkCount(index, 'index');
  const n = leafHashes.length;
  if (index >= n) throw new MerkleError(`index ${index} is outside a tree of ${n} leaves`);
  const out: Hash[] = [];
  const path = (m: number, lo: number, hi: number): void => {
    if (hi - lo <= 1) return;
    const k = splitPoint(hi - lo);
    if (m < k) {
      path(m, lo, lo + k);
      out.push(subtree(lo + k, hi, leafHashes));
    } else {
      path(m - k, lo + k, hi);
      out.push(subtree(lo, lo + k, leafHashes));
    }
  };
  path(index, 0, n);
  return out;
}

/** RFC 9162 §2.1.3.2: does `proof` show that `leaf` is leaf `index` of the tree of `size` leaves with `root`? */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  checkCount(index, 'index');
  checkCount(size, 'size');
  if (index >= size || leaf.length !== HASH_SIZE || root.length !== HASH_SIZE) return false;
  if (proof.some((p) => p.length !== HASH_SIZE)) return false;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

// ---- consistency ---------------------------------------------------------------

/**
 * PROOF(m, D[n]) of RFC 6962 §2.1.2 between the tree of the first `m` leaves
 * and the tree of `n` leaves. Subtree hashes come from `leafHashes` (indexes
 * [0, n)) or from `known` — which lets an appender that holds only the
 * frontier of m and the leaves after it produce the proof (see
 * {@link consistencyProofFromFrontier}).
 */
export function consistencyProof(m: number, n: number, leafHashes: readonly Hash[] | undefined, known?: SubtreeSource): Hash[] {
  checkCount(m, 'old size');
  checkCount(n, 'new size');
  if (m > n) throw new MerkleError(`old size ${m} is larger than new size ${n}`);
  if (m === 0 || m === n) return [];
  const out: Hash[] = [];
  const sub = (mm: number, lo: number, hi: number, complete: boolean): void => {
    const size = hi - lo;
    if (mm === size) {
      if (!complete) out.push(subtree(lo, hi, leafHashes, known));
      return;
    }
    const k = splitPoint(size);
    if (mm <= k) {
      sub(mm, lo, lo + k, complete);
      out.push(subtree(lo + k, hi, leafHashes, known));
    } else {
      sub(mm - k, lo + k, hi, false);
      out.push(subtree(lo, lo + k, leafHashes, known));
    }
  };
  sub(m, 0, n, true);
  return out;
}

/**
 * RFC 9162 §2.1.4.2: does `proof` show that the tree of `m` leaves with
 * `oldRoot` is a prefix of the tree of `n` leaves with `newRoot`?
 */
export function verifyConsistency(m: number, n: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: readonly Uint8Array[]): boolean {
  checkCount(m, 'old size');
  checkCount(n, 'new size');
  if (oldRoot.length !== HASH_SIZE || newRoot.length !== HASH_SIZE || proof.some((p) => p.length !== HASH_SIZE)) return false;
  if (m > n) return false;
  if (m === n) return proof.length === 0 && Buffer.from(oldRoot).equals(newRoot);
  if (m === 0) return proof.length === 0; // the empty tree is a prefix of every tree
  if (proof.length === 0) return false;
  const path: Uint8Array[] = [...proof];
  // If m is an exact power of two, the old root is itself the first node of the path.
  if (Number.isInteger(Math.log2(m))) path.unshift(oldRoot);
  let fn = m - 1;
  let sn = n - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(oldRoot) && sr.equals(newRoot);
}

// ---- frontiers (compact ranges [0, n)) -----------------------------------------------

/** Sizes of the perfect subtrees of a tree of n leaves, largest first (one per set bit of n). */
export function frontierSizes(n: number): number[] {
  checkCount(n, 'size');
  const out: number[] = [];
  for (let bit = 2 ** Math.floor(Math.log2(Math.max(n, 1))); bit >= 1; bit /= 2) if (Math.floor(n / bit) % 2 === 1) out.push(bit);
  return out;
}

/** The frontier of the tree of the given leaf hashes. */
export function frontierOf(leafHashes: readonly Hash[]): Hash[] {
  let f: Hash[] = [];
  for (let i = 0; i < leafHashes.length; i++) f = frontierPush(f, i, leafHashes[i]!);
  return f;
}

/** The frontier of size+1 leaves from the frontier of `size` leaves and the next leaf hash. */
export function frontierPush(frontier: readonly Hash[], size: number, leaf: Uint8Array): Hash[] {
  checkCount(size, 'size');
  checkHash(leaf, 'leaf hash');
  if (frontier.length !== frontierSizes(size).length) throw new MerkleError(`a frontier of ${size} leaves has ${frontierSizes(size).length} hashes, got ${frontier.length}`);
  const out = frontier.slice();
  let acc: Hash = Buffer.from(leaf);
  // Each trailing 1 bit of size is a perfect subtree the new leaf completes.
  for (let s = size; s % 2 === 1; s = Math.floor(s / 2)) acc = nodeHash(out.pop()!, acc);
  out.push(acc);
  return out;
}

/** The root of the tree whose frontier this is. */
export function frontierRoot(frontier: readonly Uint8Array[]): Hash {
  if (frontier.length === 0) return EMPTY_ROOT;
  let acc: Hash = Buffer.from(frontier[frontier.length - 1]!);
  for (let i = frontier.length - 2; i >= 0; i--) acc = nodeHash(frontier[i]!, acc);
  return acc;
}

/**
 * A consistency proof from size m to size n when only the frontier of m and
 * the leaf hashes [m, n) are known (what an appender holds). The proof is the
 * same as {@link consistencyProof} over all n leaves: RFC 6962's proof only
 * uses subtrees that are whole frontier nodes of m or lie at or after m.
 */
export function consistencyProofFromFrontier(m: number, frontierM: readonly Hash[], newLeaves: readonly Hash[]): Hash[] {
  checkCount(m, 'old size');
  const sizes = frontierSizes(m);
  if (frontierM.length !== sizes.length) throw new MerkleError(`a frontier of ${m} leaves has ${sizes.length} hashes, got ${frontierM.length}`);
  const ranges = new Map<string, Hash>();
  let lo = 0;
  sizes.forEach((s, i) => {
    ranges.set(`${lo}:${lo + s}`, frontierM[i]!);
    lo += s;
  });
  const n = m + newLeaves.length;
  const leaves: Hash[] = new Array<Hash>(n);
  newLeaves.forEach((h, i) => {
    checkHash(h, `leaf hash ${m + i}`);
    leaves[m + i] = h;
  });
  return consistencyProof(m, n, leaves, (a, b) => ranges.get(`${a}:${b}`));
}
