/**
 * The safetensors format (Hugging Face), read and written without dependencies.
 *
 *   [8 bytes]  N, the header length, unsigned 64-bit little-endian
 *   [N bytes]  UTF-8 JSON: {"__metadata__": {str: str}?, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}
 *   [rest]     the tensors' bytes, little-endian, row-major; offsets are relative to the end of the header
 *
 * The writer does what the reference implementation does, so files are
 * byte-compatible with it: header padded with spaces to a multiple of 8,
 * `__metadata__` first, tensors laid out contiguously by descending element size
 * then name (every tensor stays aligned to its element size).
 *
 * The reader treats the file as untrusted (a checkpoint restored from backup, or
 * a half-written one): every number in the header is checked before it is used,
 * and any inconsistency is a {@link SafetensorsError} naming the problem — never
 * an out-of-range read or a silently wrong tensor.
 */

export const DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;

export type Dtype = keyof typeof DTYPE_SIZES;

/** The reference implementation's limit: a larger header is certainly not ours. */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** A tensor to write: its bytes are taken as they are in memory (little-endian on every platform Node runs on here). */
export interface TensorInput {
  dtype: Dtype;
  shape: readonly number[];
  data: Uint8Array | Float32Array | Int32Array | Float64Array;
}

export interface Tensor {
  dtype: Dtype;
  shape: number[];
  /** A view of the file's bytes (not a copy). */
  bytes: Uint8Array;
}

export interface Decoded {
  metadata: Record<string, string>;
  /** In file (offset) order. */
  tensors: Map<string, Tensor>;
  /** Where the data section starts in the file (8 + header length). */
  dataStart: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

/** Element count × element size, refusing anything that is not an exact safe integer. */
export function byteLength(dtype: Dtype, shape: readonly number[]): number {
  let n = DTYPE_SIZES[dtype];
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new SafetensorsError(`shape dimension ${d} is not a non-negative integer`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new SafetensorsError(`shape [${shape.join(', ')}] is too large`);
  }
  return n;
}

function asBytes(data: TensorInput['data']): Uint8Array {
  if (!LITTLE_ENDIAN) throw new SafetensorsError('big-endian platforms are not supported');
  return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Serialise tensors (and optional string metadata) to safetensors bytes. */
export function encodeSafetensors(tensors: Record<string, TensorInput>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors);
  for (const name of names) {
    if (name === '__metadata__' || name.length === 0) throw new SafetensorsError(`invalid tensor name "${name}"`);
  }
  // Descending element size, then name: the reference implementation's order, which keeps every tensor aligned.
  names.sort((a, b) => {
    const d = DTYPE_SIZES[tensors[b]!.dtype] - DTYPE_SIZES[tensors[a]!.dtype];
    return d !== 0 ? d : a < b ? -1 : a > b ? 1 : 0;
  });

  // The JSON is assembled by hand, not from an object: JS objects put integer-like keys ("0", "1") first,
  // which would reorder the header relative to the data and to the reference writer.
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const kv: string[] = [];
    for (const k of Object.keys(metadata).sort()) {
      const v = metadata[k];
      if (typeof v !== 'string') throw new SafetensorsError(`metadata "${k}" must be a string`);
      kv.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${kv.join(',')}}`);
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    if (!isDtype(t.dtype)) throw new SafetensorsError(`tensor "${name}": unknown dtype ${String(t.dtype)}`);
    const bytes = asBytes(t.data);
    const expected = byteLength(t.dtype, t.shape);
    if (bytes.byteLength !== expected) {
      throw new SafetensorsError(
        `tensor "${name}": ${t.dtype} [${t.shape.join(', ')}] needs ${expected} bytes, got ${bytes.byteLength}`,
      );
    }
    const info = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + expected] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    chunks.push(bytes);
    offset += expected;
  }

  let json = `{${parts.join(',')}}`;
  let headerBytes = new TextEncoder().encode(json);
  const pad = (8 - (headerBytes.byteLength % 8)) % 8;
  if (pad > 0) {
    json += ' '.repeat(pad);
    headerBytes = new TextEncoder().encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Parse and validate safetensors bytes. Throws {@link SafetensorsError} on any inconsistency. */
export function decodeSafetensors(file: Uint8Array): Decoded {
  if (file.byteLength < 8) {
    throw new SafetensorsError(`file is ${file.byteLength} bytes, shorter than the 8-byte header length (truncated?)`);
  }
  const n64 = new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`header length ${n64} exceeds ${MAX_HEADER_BYTES} bytes`);
  const n = Number(n64);
  if (8 + n > file.byteLength) {
    throw new SafetensorsError(`header length ${n} runs past the end of the ${file.byteLength}-byte file (truncated?)`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(file.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw new SafetensorsError('header does not start with "{"');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError('header is not a JSON object');
  }

  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new SafetensorsError('__metadata__ is not an object');
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(`__metadata__ "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (name.length === 0) throw new SafetensorsError('empty tensor name');
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof info !== 'object' || info === null || Array.isArray(info)) {
      throw new SafetensorsError(`tensor "${name}": entry is not an object`);
    }
    if (!isDtype(info.dtype)) throw new SafetensorsError(`tensor "${name}": unknown dtype ${JSON.stringify(info.dtype)}`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`tensor "${name}": shape must be an array of non-negative integers`);
    }
    const off = info.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      (off[0] as number) > (off[1] as number)
    ) {
      throw new SafetensorsError(`tensor "${name}": data_offsets must be [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = off as [number, number];
    let need: number;
    try {
      need = byteLength(info.dtype, shape as number[]);
    } catch (e) {
      throw new SafetensorsError(`tensor "${name}": ${(e as Error).message}`);
    }
    if (end - begin !== need) {
      throw new SafetensorsError(
        `tensor "${name}": ${info.dtype} [${shape.join(', ')}] needs ${need} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    entries.push({ name, dtype: info.dtype, shape: shape as number[], begin, end });
  }

  // Offsets must tile the data section exactly: start at 0, no gap, no overlap, end at the end of the file.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataStart = 8 + n;
  const dataLength = file.byteLength - dataStart;
  let expected = 0;
  for (const e of entries) {
    if (e.begin !== expected) {
      throw new SafetensorsError(
        e.begin > expected
          ? `tensor "${e.name}" starts at ${e.begin}, leaving a gap after byte ${expected}`
          : `tensor "${e.name}" starts at ${e.begin}, overlapping the previous tensor (ends at ${expected})`,
      );
    }
    expected = e.end;
  }
  if (expected > dataLength) {
    throw new SafetensorsError(`tensor data ends at byte ${expected} but the file holds ${dataLength} data bytes (truncated?)`);
  }
  if (expected < dataLength) {
    throw new SafetensorsError(`the file holds ${dataLength - expected} bytes after the last tensor`);
  }

  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: file.subarray(dataStart + e.begin, dataStart + e.end) });
  }
  return { metadata, tensors, dataStart };
}

/** A copy of an F32 tensor's values (a copy, because the file's bytes need not be 4-byte aligned). */
export function toFloat32(t: Tensor): Float32Array {
  if (t.dtype !== 'F32') throw new SafetensorsError(`expected F32, got ${t.dtype}`);
  if (!LITTLE_ENDIAN) throw new SafetensorsError('big-endian platforms are not supported');
  const out = new Float32Array(t.bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(t.bytes);
  return out;
}

/** A copy of an I32 tensor's values. */
export function toInt32(t: Tensor): Int32Array {
  if (t.dtype !== 'I32') throw new SafetensorsError(`expected I32, got ${t.dtype}`);
  if (!LITTLE_ENDIAN) throw new SafetensorsError('big-endian platforms are not supported');
  const out = new Int32Array(t.bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(t.bytes);
  return out;
}
