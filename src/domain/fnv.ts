// FNV-1a, the one non-cryptographic string hash of the codebase (content versions, seeds).
// Not for anything an attacker chooses to collide: it only detects change and spreads seeds.

const encoder = new TextEncoder();

/** FNV-1a 64-bit of a string's UTF-8 bytes, as 16 lowercase hex digits (content hashes). */
export function fnv1a64(text: string): string {
  const bytes = encoder.encode(text);
  // 64-bit state as four 16-bit limbs (h0 lowest); offset basis 0xcbf29ce484222325.
  let h0 = 0x2325;
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  for (const byte of bytes) {
    h0 ^= byte;
    // Multiply by the FNV prime 0x00000100000001b3 modulo 2^64.
    const t0 = h0 * 0x1b3;
    const t1 = h1 * 0x1b3 + (t0 >>> 16);
    const t2 = h2 * 0x1b3 + h0 * 0x100 + (t1 >>> 16);
    const t3 = h3 * 0x1b3 + h1 * 0x100 + Math.floor(t2 / 65536);
    h0 = t0 & 0xffff;
    h1 = t1 & 0xffff;
    h2 = t2 & 0xffff;
    h3 = t3 & 0xffff;
  }
  const hex = (v: number): string => v.toString(16).padStart(4, "0");
  return hex(h3) + hex(h2) + hex(h1) + hex(h0);
}

/**
 * FNV-1a 32-bit over a string's UTF-16 code units, as an unsigned integer (seeds; see rng.ts).
 * Kept at 32 bits over code units because every simulator seed is derived from it: changing it
 * would change every benchmark number.
 */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
