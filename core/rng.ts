/** The whole state of an `Rng`: four 32-bit integers, so checkpoints can store it. */
export type RngState = readonly [number, number, number, number];

/** The splitmix32 / murmur3 finaliser: a bijection on 32-bit integers that mixes every bit. */
function mix32(x: number): number {
  let t = x ^ (x >>> 16);
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  return (t ^ (t >>> 15)) >>> 0;
}

/**
 * A small seeded random number generator (sfc32, seeded through splitmix32).
 * Pure 32-bit integer arithmetic, so the same seed gives the same sequence on every
 * JavaScript engine; its whole state is four integers, so checkpoints can store it.
 *
 * @example const rng = new Rng(42); const u = rng.uniform(-1, 1);
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number | RngState) {
    if (typeof seed === 'number') {
      if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
      // The low and high 32-bit words of the seed (two's complement, so -1 ≠ 0) each go
      // through a bijective mixer into their own half of the state: distinct seeds give
      // distinct states, and even 0 gives a well-mixed one.
      const lo = seed >>> 0;
      const hi = Math.floor(seed / 0x100000000) >>> 0;
      this.a = mix32(lo);
      this.b = mix32((lo + 0x9e3779b9) | 0);
      this.c = mix32(hi ^ 0x85ebca6b);
      this.d = mix32((hi + 0x3c6ef372) | 0);
      for (let i = 0; i < 12; i++) this.nextUint32(); // warm up, as sfc32's authors advise
    } else {
      [this.a, this.b, this.c, this.d] = seed;
    }
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform double in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** A standard normal deviate (Box–Muller; one of the pair is dropped so the state stays four integers). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  state(): RngState {
    return [this.a, this.b, this.c, this.d];
  }
}
