import { describe, expect, it } from 'vitest';
import {
  decodeSafetensors,
  encodeSafetensors,
  MAX_HEADER_BYTES,
  SafetensorsError,
  toFloat32,
  toInt32,
  type TensorInput,
} from '../../trainer/safetensors';

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((b) => parseInt(b, 16)));
const ascii = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
};

/** Build a file from a header string and data bytes (for malformed-file tests). */
function file(header: string, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const h = ascii(header);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.byteLength), true);
  return concat(len, h, data);
}

const KAT_TENSORS: Record<string, TensorInput> = {
  a: { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 0.5, -1]) },
  b: { dtype: 'I32', shape: [2], data: new Int32Array([1, -2]) },
  c: { dtype: 'U8', shape: [3], data: new Uint8Array([7, 8, 9]) },
  z: { dtype: 'F64', shape: [1], data: new Float64Array([0.25]) },
};

// Built by hand from the format description. The reference implementation (Python `safetensors`
// 0.8.0, `safetensors.numpy.save` of the same arrays and metadata) writes exactly these 299 bytes:
// __metadata__ first, tensors by descending element size then name, header padded to 8 with spaces.
const KAT_HEADER =
  '{"__metadata__":{"note":"kat"},' +
  '"z":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},' +
  '"a":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},' +
  '"b":{"dtype":"I32","shape":[2],"data_offsets":[24,32]},' +
  '"c":{"dtype":"U8","shape":[3],"data_offsets":[32,35]}}' +
  '       '; // 249 bytes of JSON + 7 spaces = 256
const KAT_BYTES = concat(
  hex('00 01 00 00 00 00 00 00'), // 256, u64 little-endian
  ascii(KAT_HEADER),
  hex('00 00 00 00 00 00 d0 3f'), // z: 0.25 (f64)
  hex('00 00 80 3f  00 00 00 40  00 00 00 3f  00 00 80 bf'), // a: 1, 2, 0.5, -1 (f32)
  hex('01 00 00 00  fe ff ff ff'), // b: 1, -2 (i32)
  hex('07 08 09'), // c (u8)
);

describe('safetensors writer', () => {
  it('writes the hand-built known-answer file byte for byte', () => {
    expect(KAT_BYTES.byteLength).toBe(299);
    const out = encodeSafetensors(KAT_TENSORS, { note: 'kat' });
    expect(Buffer.from(out).toString('hex')).toBe(Buffer.from(KAT_BYTES).toString('hex'));
  });

  it('pads the header to a multiple of 8 and omits empty metadata', () => {
    const out = encodeSafetensors({ x: { dtype: 'F32', shape: [1], data: new Float32Array([3]) } }, {});
    const n = Number(new DataView(out.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = new TextDecoder().decode(out.subarray(8, 8 + n));
    expect(header.trimEnd()).toBe('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    expect(out.byteLength).toBe(8 + n + 4);
  });

  it('keeps integer-like tensor names in layout order (JS objects would hoist them)', () => {
    const out = encodeSafetensors({
      b: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) },
      '10': { dtype: 'U8', shape: [1], data: new Uint8Array([2]) },
      '2': { dtype: 'U8', shape: [1], data: new Uint8Array([3]) },
    });
    const n = Number(new DataView(out.buffer).getBigUint64(0, true));
    const header = new TextDecoder().decode(out.subarray(8, 8 + n));
    // String order: "10" < "2" < "b"; data follows the same order.
    expect(header.indexOf('"10"')).toBeLessThan(header.indexOf('"2"'));
    expect(header.indexOf('"2"')).toBeLessThan(header.indexOf('"b"'));
    expect([...out.subarray(8 + n)]).toEqual([2, 3, 1]);
  });

  it('refuses data whose length does not match dtype × shape, and reserved or empty names', () => {
    expect(() => encodeSafetensors({ x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(
      /needs 12 bytes, got 8/,
    );
    expect(() => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })).toThrow(
      SafetensorsError,
    );
    expect(() => encodeSafetensors({ '': { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })).toThrow(SafetensorsError);
  });
});

describe('safetensors reader', () => {
  it('reads the known-answer file: metadata, shapes, values, data start', () => {
    const d = decodeSafetensors(KAT_BYTES);
    expect(d.metadata).toEqual({ note: 'kat' });
    expect(d.dataStart).toBe(264);
    expect([...d.tensors.keys()]).toEqual(['z', 'a', 'b', 'c']); // file order
    expect(d.tensors.get('a')!.shape).toEqual([2, 2]);
    expect([...toFloat32(d.tensors.get('a')!)]).toEqual([1, 2, 0.5, -1]);
    expect([...toInt32(d.tensors.get('b')!)]).toEqual([1, -2]);
    expect([...d.tensors.get('c')!.bytes]).toEqual([7, 8, 9]);
    expect(() => toFloat32(d.tensors.get('b')!)).toThrow(/expected F32, got I32/);
  });

  it('round-trips scalars, empty tensors and float32 bit patterns exactly', () => {
    const weird = new Float32Array([Math.fround(0.1), -0, 1e-45, 3.4028234663852886e38, Math.fround(Math.PI)]);
    const bytes = encodeSafetensors({
      s: { dtype: 'F32', shape: [], data: new Float32Array([7]) },
      e: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      w: { dtype: 'F32', shape: [5], data: weird },
    });
    const d = decodeSafetensors(bytes);
    expect(toFloat32(d.tensors.get('s')!)[0]).toBe(7);
    expect(d.tensors.get('e')!.shape).toEqual([0, 4]);
    expect(d.tensors.get('e')!.bytes.byteLength).toBe(0);
    expect(Buffer.from(d.tensors.get('w')!.bytes).equals(Buffer.from(weird.buffer))).toBe(true);
  });

  it('reads a file whose bytes start at an odd offset in their buffer (copies, does not alias misaligned)', () => {
    const shifted = new Uint8Array(KAT_BYTES.byteLength + 1);
    shifted.set(KAT_BYTES, 1);
    const d = decodeSafetensors(shifted.subarray(1));
    expect([...toFloat32(d.tensors.get('a')!)]).toEqual([1, 2, 0.5, -1]);
  });

  const bad: [string, Uint8Array, RegExp][] = [
    ['shorter than 8 bytes', new Uint8Array(5), /shorter than the 8-byte header length/],
    ['header length past the end', file('{}', new Uint8Array(0), 100n), /header length 100 runs past the end of the 10-byte file \(truncated\?\)/],
    ['absurd header length', file('{}', new Uint8Array(0), BigInt(MAX_HEADER_BYTES) + 1n), /exceeds/],
    ['header not starting with {', file(' {}'), /does not start with "\{"/],
    ['header not JSON', file('{"a":'), /not valid JSON/],
    ['metadata value not a string', file('{"__metadata__":{"k":1}}'), /__metadata__ "k" is not a string/],
    ['unknown dtype', file('{"x":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), /unknown dtype "F31"/],
    ['negative dimension', file('{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', new Uint8Array(4)), /shape must be/],
    ['offsets reversed', file('{"x":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}', new Uint8Array(4)), /begin <= end/],
    [
      'shape and offsets disagree',
      file('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4)),
      /"x": F32 \[2\] needs 8 bytes but data_offsets \[0, 4\] hold 4/,
    ],
    [
      'gap between tensors',
      file('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"y":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}', new Uint8Array(3)),
      /"y" starts at 2, leaving a gap after byte 1/,
    ],
    [
      'overlapping tensors',
      file('{"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"y":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', new Uint8Array(3)),
      /"y" starts at 1, overlapping the previous tensor/,
    ],
    [
      'data truncated',
      file('{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', new Uint8Array(10)),
      /tensor data ends at byte 16 but the file holds 10 data bytes \(truncated\?\)/,
    ],
    [
      'bytes after the last tensor',
      file('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(3)),
      /2 bytes after the last tensor/,
    ],
    ['shape overflowing', file('{"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}}'), /too large/],
    ['header not UTF-8', concat(hex('02 00 00 00 00 00 00 00'), hex('7b ff')), /not valid UTF-8/],
  ];
  for (const [what, bytes, message] of bad) {
    it(`refuses a file with ${what}`, () => {
      expect(() => decodeSafetensors(bytes)).toThrow(SafetensorsError);
      expect(() => decodeSafetensors(bytes)).toThrow(message);
    });
  }

  it('refuses every truncation of a valid file', () => {
    for (let len = 0; len < KAT_BYTES.byteLength; len++) {
      expect(() => decodeSafetensors(KAT_BYTES.subarray(0, len)), `length ${len}`).toThrow(SafetensorsError);
    }
  });
});
