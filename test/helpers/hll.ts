/**
 * docs/contract.md: HLL equality: two HLL values are the same when their encoding byte and their
 * registers (bytes 16 onward) are equal. Bytes 8-15 cache a count that PFCOUNT rewrites.
 */

const HEADER = 16;
const ENCODING_BYTE = 4;

export function hllSame(a: Buffer | null, b: Buffer | null): boolean {
  if (a === null || b === null) return false;
  if (a.subarray(0, 4).toString() !== "HYLL" || b.subarray(0, 4).toString() !== "HYLL")
    return false;
  return a[ENCODING_BYTE] === b[ENCODING_BYTE] && a.subarray(HEADER).equals(b.subarray(HEADER));
}

/** Standard error of Redis's HLL (16384 registers): 1.04 / sqrt(16384). */
export const HLL_STANDARD_ERROR = 0.0081;
