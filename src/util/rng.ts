// Seeded pseudo-random numbers for data generation and augmentation (not the tensor engine's RNG).
// Streams are derived from (seed, ...keys), so a sample's randomness depends only on its identity
// (seed, epoch, index), never on what ran before: loaders stay deterministic across workers and resumes.

/** splitmix64-style 32-bit hash mixing, used to derive stream seeds from keys. */
function mix(h: number, v: number): number {
  h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** A stream determined by a seed and any number of integer keys (e.g. epoch, sample index). */
  constructor(seed: number, ...keys: number[]) {
    let h = mix(0x9e3779b9, seed);
    for (const k of keys) h = mix(h, k);
    this.s0 = mix(h, 1);
    this.s1 = mix(h, 2);
    this.s2 = mix(h, 3);
    this.s3 = mix(h, 4) | 1;
  }

  /** xoshiro128** step: uniform 32-bit integer. */
  nextUint32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  /** Standard normal (Box–Muller). */
  normal(mean = 0, std = 1): number {
    const u = 1 - this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }
  /** Fisher–Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
  /** A permutation of 0..n-1 without fixed points (n ≥ 2), uniform over derangements: shuffles until none is left. */
  derangement(n: number): number[] {
    if (!Number.isInteger(n) || n < 2) throw new Error(`Rng.derangement: needs n ≥ 2 (got ${n})`);
    for (;;) {
      const p = this.shuffle(Array.from({ length: n }, (_, i) => i));
      if (p.every((j, i) => j !== i)) return p;
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
