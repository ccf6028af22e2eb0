/**
 * The blob index: where each blob lives (pack, offset, length), so restores and
 * deduplication never scan the bucket.
 *
 * Index objects (`index/<id>`, age files) hold plain text, one record a line,
 * so break-glass recovery needs only grep and awk (FORMAT.md):
 *
 *     # lifeline-index v1
 *     P <packId> <ciphertextBytes> <plaintextBytes> <headerBytes>
 *     B <blobId> <D|T> <packId> <offset> <length>
 *
 * Offsets and lengths are in the pack's plaintext. D = data chunk, T = tree.
 */
import { IntegrityError } from './errors';

export type BlobType = 'data' | 'tree';

export interface PackInfo {
  id: string;
  ciphertextBytes: number;
  plaintextBytes: number;
  headerBytes: number;
}

export interface BlobLocation {
  packId: string;
  type: BlobType;
  offset: number;
  length: number;
}

export interface PackRecord extends PackInfo {
  blobs: Array<{ id: string; type: BlobType; offset: number; length: number }>;
}

const HEADER = '# lifeline-index v1';
const HEX64 = /^[0-9a-f]{64}$/;

export function encodeIndex(packs: PackRecord[]): Buffer {
  const lines = [HEADER];
  for (const p of packs) {
    lines.push(`P ${p.id} ${p.ciphertextBytes} ${p.plaintextBytes} ${p.headerBytes}`);
    for (const b of p.blobs) lines.push(`B ${b.id} ${b.type === 'data' ? 'D' : 'T'} ${p.id} ${b.offset} ${b.length}`);
  }
  return Buffer.from(lines.join('\n') + '\n', 'utf8');
}

export function decodeIndex(data: Buffer, where: string): PackRecord[] {
  const lines = data.toString('utf8').split('\n');
  if (lines[0] !== HEADER) throw new IntegrityError(`${where}: not a lifeline index (bad header line)`);
  const packs = new Map<string, PackRecord>();
  const num = (s: string | undefined, line: number): number => {
    const n = Number(s);
    if (s === undefined || !/^\d+$/.test(s) || !Number.isSafeInteger(n)) throw new IntegrityError(`${where}: line ${line}: bad number`);
    return n;
  };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const f = line.split(' ');
    if (f[0] === 'P' && f.length === 5 && HEX64.test(f[1]!)) {
      packs.set(f[1]!, {
        id: f[1]!,
        ciphertextBytes: num(f[2], i + 1),
        plaintextBytes: num(f[3], i + 1),
        headerBytes: num(f[4], i + 1),
        blobs: [],
      });
    } else if (f[0] === 'B' && f.length === 6 && HEX64.test(f[1]!) && (f[2] === 'D' || f[2] === 'T')) {
      const pack = packs.get(f[3]!);
      if (!pack) throw new IntegrityError(`${where}: line ${i + 1}: blob refers to a pack not declared before it`);
      const offset = num(f[4], i + 1);
      const length = num(f[5], i + 1);
      if (offset + length > pack.plaintextBytes) throw new IntegrityError(`${where}: line ${i + 1}: blob lies outside its pack`);
      pack.blobs.push({ id: f[1]!, type: f[2] === 'D' ? 'data' : 'tree', offset, length });
    } else {
      throw new IntegrityError(`${where}: line ${i + 1}: malformed record`);
    }
  }
  return [...packs.values()];
}

/** All index objects of a repository merged in memory. */
export class MasterIndex {
  private readonly blobs = new Map<string, BlobLocation>();
  private readonly packs = new Map<string, PackRecord>();
  /** index object id → packs it lists (needed to rewrite indexes when packs are collected) */
  private readonly files = new Map<string, string[]>();

  addIndexFile(indexId: string, packs: PackRecord[]): void {
    this.files.set(indexId, packs.map((p) => p.id));
    for (const p of packs) this.addPack(p);
  }

  addPack(p: PackRecord): void {
    this.packs.set(p.id, p);
    for (const b of p.blobs) {
      if (!this.blobs.has(b.id)) this.blobs.set(b.id, { packId: p.id, type: b.type, offset: b.offset, length: b.length });
    }
  }

  /**
   * Forget packs (condemned by garbage collection): their blobs no longer count
   * as stored. Returns what was removed, so a running backup can still copy a
   * blob out of a condemned pack before the pack is deleted.
   */
  removePacks(packIds: Iterable<string>): { packs: PackRecord[]; blobs: Array<[string, BlobLocation]> } {
    const gone = new Set(packIds);
    const removed: { packs: PackRecord[]; blobs: Array<[string, BlobLocation]> } = { packs: [], blobs: [] };
    if (gone.size === 0) return removed;
    for (const id of gone) {
      const p = this.packs.get(id);
      if (p) removed.packs.push(p);
      this.packs.delete(id);
    }
    for (const [blobId, loc] of this.blobs) {
      if (gone.has(loc.packId)) {
        removed.blobs.push([blobId, loc]);
        this.blobs.delete(blobId);
      }
    }
    // A blob can live in several packs (a backup copies blobs out of condemned packs), but
    // `addPack` keeps only the first location seen: point such blobs at a surviving copy.
    if (removed.blobs.length > 0) {
      const lost = new Set(removed.blobs.map(([id]) => id));
      for (const p of this.packs.values()) {
        for (const b of p.blobs) {
          if (lost.has(b.id) && !this.blobs.has(b.id)) this.blobs.set(b.id, { packId: p.id, type: b.type, offset: b.offset, length: b.length });
        }
      }
    }
    return removed;
  }

  has(blobId: string): boolean {
    return this.blobs.has(blobId);
  }

  lookup(blobId: string): BlobLocation | undefined {
    return this.blobs.get(blobId);
  }

  pack(packId: string): PackRecord | undefined {
    return this.packs.get(packId);
  }

  forgetIndexFiles(ids: Iterable<string>): void {
    for (const id of ids) this.files.delete(id);
  }

  /**
   * Index objects that no longer exist in storage (garbage collection replaced
   * them): forget them, and drop the packs that no remaining index lists, so a
   * long-lived process stops reusing data that may have been deleted.
   */
  dropIndexFilesNotIn(listed: ReadonlySet<string>): string[] {
    const gone = [...this.files.keys()].filter((id) => !listed.has(id));
    if (gone.length === 0) return [];
    const candidates = new Set(gone.flatMap((id) => this.files.get(id) ?? []));
    for (const id of gone) this.files.delete(id);
    for (const packIds of this.files.values()) for (const p of packIds) candidates.delete(p);
    this.removePacks(candidates);
    return [...candidates];
  }

  packIds(): IterableIterator<string> {
    return this.packs.keys();
  }

  indexFiles(): ReadonlyMap<string, string[]> {
    return this.files;
  }

  blobEntries(): IterableIterator<[string, BlobLocation]> {
    return this.blobs.entries();
  }

  get blobCount(): number {
    return this.blobs.size;
  }

  get packCount(): number {
    return this.packs.size;
  }
}
