// Small seeded pseudo-random number generator for the pure domain code, the simulator,
// synthetic data and tests. `Math.random()` is banned in src/domain: everything that needs
// randomness takes an `Rng` (or a seed) so runs are reproducible.
//
// Generator: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 128-bit state,
// passes PractRand/BigCrush), seeded through splitmix32 so that nearby seeds give
// unrelated streams. Distributions: uniform, integer, normal (Box-Muller, polar form),
// gamma (Marsaglia-Tsang), Poisson (inversion for small means, PTRS-free normal
// approximation with continuity correction above 64), log-normal, shuffle, pick.

import { fnv1a32 } from "./fnv.ts";

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
  /** Uniform in [min, max). */
  uniform(min: number, max: number): number;
  /** Standard normal (mean 0, sd 1). */
  normal(): number;
  /** Gamma(shape, scale); mean = shape * scale. */
  gamma(shape: number, scale?: number): number;
  /** Poisson with the given mean (non-negative integer). */
  poisson(mean: number): number;
  /** exp(N(mu, sigma)). */
  logNormal(mu: number, sigma: number): number;
  /** Fisher-Yates shuffle of a copy. */
  shuffle<T>(items: readonly T[]): T[];
  /** A new independent generator derived from this one's stream and a label. */
  fork(label: number): Rng;
}

/** splitmix32 step: returns [output, nextState]. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [z >>> 0, next];
}

/** Hash an arbitrary finite number (or string) into a 32-bit seed. */
export function seedFrom(value: number | string): number {
  return fnv1a32(typeof value === "number" ? value.toString() : value);
}

class Sfc32 implements Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal: number | null = null;

  constructor(seed: number) {
    let s = seed | 0;
    let out: number;
    [out, s] = splitmix32(s);
    this.a = out;
    [out, s] = splitmix32(s);
    this.b = out;
    [out, s] = splitmix32(s);
    this.c = out;
    [out] = splitmix32(s);
    this.d = out | 1;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  private nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  next(): number {
    return this.nextUint32() / 4294967296;
  }

  int(maxExclusive: number): number {
    if (!(maxExclusive >= 1)) throw new Error(`Rng.int: maxExclusive must be >= 1, got ${maxExclusive}`);
    return Math.floor(this.next() * Math.floor(maxExclusive));
  }

  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    for (;;) {
      const u = 2 * this.next() - 1;
      const v = 2 * this.next() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) {
        const f = Math.sqrt((-2 * Math.log(s)) / s);
        this.spareNormal = v * f;
        return u * f;
      }
    }
  }

  gamma(shape: number, scale = 1): number {
    if (!(shape > 0) || !(scale > 0)) throw new Error(`Rng.gamma: shape and scale must be > 0, got ${shape}, ${scale}`);
    if (shape < 1) {
      // Boost: Gamma(a) = Gamma(a + 1) * U^(1/a).
      const u = this.next();
      return this.gamma(shape + 1, scale) * Math.pow(u === 0 ? Number.MIN_VALUE : u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.next();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v * scale;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v * scale;
    }
  }

  poisson(mean: number): number {
    if (!(mean >= 0)) throw new Error(`Rng.poisson: mean must be >= 0, got ${mean}`);
    if (mean === 0) return 0;
    if (mean < 64) {
      // Inversion by sequential search.
      let k = 0;
      let p = Math.exp(-mean);
      let cumulative = p;
      const u = this.next();
      while (u > cumulative && k < 10_000) {
        k += 1;
        p *= mean / k;
        cumulative += p;
      }
      return k;
    }
    return Math.max(0, Math.round(mean + Math.sqrt(mean) * this.normal()));
  }

  logNormal(mu: number, sigma: number): number {
    return Math.exp(mu + sigma * this.normal());
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const tmp = out[i] as T;
      out[i] = out[j] as T;
      out[j] = tmp;
    }
    return out;
  }

  fork(label: number): Rng {
    return new Sfc32((this.nextUint32() ^ seedFrom(label)) >>> 0);
  }
}

/** A seeded generator; the same seed always gives the same stream. */
export function createRng(seed: number): Rng {
  return new Sfc32(seed >>> 0);
}
