/**
 * The 16,384 registers of a Redis HLL value, whatever its encoding. A merged key and a key fed
 * everything directly may differ in encoding (PFADD keeps a small HLL sparse; a merge of dense
 * sources is dense), so "identical registers" means the decoded registers are equal, not the
 * bytes. Layout (redis/src/hyperloglog.c): "HYLL", encoding byte (0 dense, 1 sparse), 3 unused
 * bytes, 8 bytes of cached cardinality, then the registers.
 */

export const HLL_REGISTERS = 16_384;
const HEADER_BYTES = 16;
const DENSE = 0;
const SPARSE = 1;
const DENSE_BITS = 6;

export type HllEncoding = "dense" | "sparse";

export function hllEncoding(value: Buffer): HllEncoding {
  assertHll(value);
  return value[4] === DENSE ? "dense" : "sparse";
}

/** The registers of an HLL value; throws on anything that is not a well-formed HLL. */
export function hllRegisters(value: Buffer): Uint8Array {
  assertHll(value);
  const body = value.subarray(HEADER_BYTES);
  return value[4] === DENSE ? denseRegisters(body) : sparseRegisters(body);
}

/** True when both values hold the same registers (encodings may differ). */
export function sameRegisters(a: Buffer, b: Buffer): boolean {
  return Buffer.from(hllRegisters(a)).equals(Buffer.from(hllRegisters(b)));
}

function assertHll(value: Buffer): void {
  if (value.length < HEADER_BYTES || value.subarray(0, 4).toString("latin1") !== "HYLL") {
    throw new RangeError("the value is not a Redis HLL (no HYLL header)");
  }
  if (value[4] !== DENSE && value[4] !== SPARSE) {
    throw new RangeError(`the HLL has an unknown encoding byte ${value[4]}`);
  }
}

/** 6-bit registers packed little-endian: register i starts at bit 6i. */
function denseRegisters(body: Buffer): Uint8Array {
  const needed = (HLL_REGISTERS * DENSE_BITS) / 8;
  if (body.length !== needed) {
    throw new RangeError(`a dense HLL has ${needed} bytes of registers, this one ${body.length}`);
  }
  const out = new Uint8Array(HLL_REGISTERS);
  for (let i = 0; i < HLL_REGISTERS; i++) {
    const bit = i * DENSE_BITS;
    const byte = bit >> 3;
    const shift = bit & 7;
    const lo = body[byte] ?? 0;
    const hi = body[byte + 1] ?? 0;
    out[i] = ((lo >> shift) | (hi << (8 - shift))) & 0x3f;
  }
  return out;
}

/**
 * Sparse opcodes: ZERO `00xxxxxx` (x+1 zero registers), XZERO `01xxxxxx yyyyyyyy` (14-bit
 * length+1 zero registers), VAL `1vvvvvxx` (x+1 registers of value v+1).
 */
function sparseRegisters(body: Buffer): Uint8Array {
  const out = new Uint8Array(HLL_REGISTERS);
  let index = 0;
  let p = 0;
  while (p < body.length) {
    const op = body[p] ?? 0;
    if ((op & 0xc0) === 0x00) {
      index += (op & 0x3f) + 1;
      p += 1;
    } else if ((op & 0xc0) === 0x40) {
      index += (((op & 0x3f) << 8) | (body[p + 1] ?? 0)) + 1;
      p += 2;
    } else {
      const value = ((op >> 2) & 0x1f) + 1;
      const run = (op & 0x03) + 1;
      if (index + run > HLL_REGISTERS) break;
      out.fill(value, index, index + run);
      index += run;
      p += 1;
    }
  }
  if (index !== HLL_REGISTERS) {
    throw new RangeError(`a sparse HLL must cover ${HLL_REGISTERS} registers, this one ${index}`);
  }
  return out;
}
