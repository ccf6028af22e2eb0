/**
 * ransomware: overwrites every file of the node's assets (or the named ones)
 * with unreadable bytes, as ransomware encrypting a node would. Before
 * anything is touched, each file is copied into the fault's state folder and
 * the list is recorded; the overwrite is an AES-256-CTR keystream under a key
 * kept in the state, so revert can recognise a file still holding it. Revert:
 * every file that still holds the keystream gets its original bytes back;
 * files a recovery replaced (or moved aside) are left alone.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, openSync, closeSync, readSync, readdirSync, writeSync, ftruncateSync, fstatSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { resolveAsset } from '../../backups/asset';
import type { FaultContext, FaultInjector, RevertedFault } from '../fault';
import type { FaultSpec } from '../scenario';
import { FaultNotApplicable, readFaultState, writeFaultState, type BaseFaultState } from './state';

type Spec = Extract<FaultSpec, { kind: 'ransomware' }>;
interface State extends BaseFaultState {
  /** hex; not a secret: it only makes the drill's garbage recognisable */
  key: string;
  files: Array<{ path: string; copy: string; size: number }>;
  overwritten: number;
}

/** Only the first 64 MiB of a file are overwritten: enough to destroy it, bounded work per file. */
const MAX_OVERWRITE = 64 * 1024 * 1024;

function garbage(key: Buffer, index: number, length: number): Buffer {
  const iv = createHash('sha256').update(`file-${index}`).digest().subarray(0, 16);
  return createCipheriv('aes-256-ctr', key, iv).update(Buffer.alloc(length));
}

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
}

const overwriteLength = (size: number) => Math.max(16, Math.min(size, MAX_OVERWRITE));

function holdsGarbage(path: string, expected: Buffer): boolean {
  if (!existsSync(path)) return false;
  const fd = openSync(path, 'r');
  try {
    if (fstatSync(fd).size < expected.length) return false;
    const buf = Buffer.alloc(expected.length);
    readSync(fd, buf, 0, buf.length, 0);
    return buf.equals(expected);
  } finally {
    closeSync(fd);
  }
}

function assetsOf(ctx: FaultContext, spec: Spec): string[] {
  return spec.assets ?? Object.keys(ctx.config.assets).filter((a) => ctx.config.assets[a]!.node === spec.node);
}

export const ransomware: FaultInjector<Spec> = {
  kind: 'ransomware',
  placement: (spec) => ({ on: 'node', node: spec.node }),
  async inject(ctx, spec, faultId) {
    let st = readFaultState<State>(ctx);
    if (!st) {
      const files: string[] = [];
      for (const a of assetsOf(ctx, spec)) {
        const root = resolveAsset(ctx.config, a).root;
        if (existsSync(root)) walk(root, files);
      }
      if (files.length === 0) throw new FaultNotApplicable(`ransomware: the assets of node ${spec.node} hold no files to overwrite`);
      const copies = join(ctx.stateDir, 'originals');
      mkdirSync(copies, { recursive: true, mode: 0o700 });
      const entries = files.map((path, i) => {
        const copy = join(copies, String(i));
        copyFileSync(path, copy);
        return { path, copy, size: fstatSizeOf(copy) };
      });
      st = { injectedAt: new Date().toISOString(), key: randomBytes(32).toString('hex'), files: entries, overwritten: 0 };
      writeFaultState(ctx, st);
    }
    const key = Buffer.from(st.key, 'hex');
    let bytes = 0;
    for (const [i, f] of st.files.entries()) {
      if (!existsSync(f.path)) continue;
      const g = garbage(key, i, overwriteLength(f.size));
      const fd = openSync(f.path, 'r+');
      try {
        writeSync(fd, g, 0, g.length, 0);
        if (f.size < g.length) ftruncateSync(fd, g.length);
      } finally {
        closeSync(fd);
      }
      bytes += g.length;
      if (i % 100 === 0) ctx.progress?.(`${i + 1}/${st.files.length} files overwritten`);
    }
    writeFaultState(ctx, { ...st, overwritten: st.files.length });
    return { faultId, kind: 'ransomware', injectedAt: st.injectedAt, detail: { node: spec.node, assets: assetsOf(ctx, spec).length, files: st.files.length, bytes } };
  },
  async revert(ctx, spec, faultId): Promise<RevertedFault> {
    const st = readFaultState<State>(ctx);
    const now = new Date().toISOString();
    if (!st) return { faultId, reverted: false, revertedAt: now, detail: { node: spec.node, note: 'never injected' } };
    const key = Buffer.from(st.key, 'hex');
    let restored = 0;
    for (const [i, f] of st.files.entries()) {
      if (!holdsGarbage(f.path, garbage(key, i, overwriteLength(f.size)))) continue;
      mkdirSync(dirname(f.path), { recursive: true });
      copyFileSync(f.copy, f.path);
      restored++;
    }
    writeFaultState(ctx, { ...st, revertedAt: st.revertedAt ?? now });
    return { faultId, reverted: restored > 0, revertedAt: now, detail: { node: spec.node, filesPutBack: restored, files: st.files.length } };
  },
  async active(ctx) {
    const st = readFaultState<State>(ctx);
    if (!st) return false;
    const key = Buffer.from(st.key, 'hex');
    return st.files.some((f, i) => holdsGarbage(f.path, garbage(key, i, overwriteLength(f.size))));
  },
};

function fstatSizeOf(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}
