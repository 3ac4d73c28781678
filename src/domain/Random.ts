/**
 * A small seeded random number generator (splitmix32 seeding an xorshift128+-style state), used
 * wherever results must be reproducible from a seed: dataset splits, shuffling, initialisation seeds.
 * `Math.random` is never used for anything that reaches a result.
 */

export interface Rng {
  /** Uniform float in [0, 1). */
  readonly next: () => number
  /** Uniform integer in [0, n). */
  readonly int: (n: number) => number
  /** Standard normal sample (Box-Muller). */
  readonly normal: () => number
  /** A fresh 31-bit seed, for seeding tfjs ops or child generators. */
  readonly seed: () => number
}

const splitmix32 = (a: number) => () => {
  a |= 0
  a = (a + 0x9e3779b9) | 0
  let t = a ^ (a >>> 16)
  t = Math.imul(t, 0x21f0aaad)
  t = t ^ (t >>> 15)
  t = Math.imul(t, 0x735a2d97)
  return ((t = t ^ (t >>> 15)) >>> 0) / 4294967296
}

/** Combines a seed with a string or number salt, so that sub-streams (per node, per epoch) are independent. */
export const deriveSeed = (seed: number, ...salt: ReadonlyArray<string | number>): number => {
  let h = (seed ^ 0x811c9dc5) >>> 0
  for (const part of salt) {
    const s = String(part)
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i)
      h = Math.imul(h, 0x01000193) >>> 0
    }
    h ^= 0xff
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h & 0x7fffffff
}

export const makeRng = (seed: number): Rng => {
  const next = splitmix32(seed)
  let spare: number | undefined
  return {
    next,
    int: (n) => Math.floor(next() * n),
    normal: () => {
      if (spare !== undefined) {
        const s = spare
        spare = undefined
        return s
      }
      let u = 0
      while (u === 0) u = next()
      const v = next()
      const r = Math.sqrt(-2 * Math.log(u))
      spare = r * Math.sin(2 * Math.PI * v)
      return r * Math.cos(2 * Math.PI * v)
    },
    seed: () => Math.floor(next() * 0x7fffffff)
  }
}

/** Fisher-Yates shuffle of 0..n-1 (or of the given indices) with a seeded generator. */
export const permutation = (n: number, rng: Rng): Int32Array => {
  const p = new Int32Array(n)
  for (let i = 0; i < n; i++) p[i] = i
  shuffleInPlace(p, rng)
  return p
}

export const shuffleInPlace = (a: Int32Array | Array<number>, rng: Rng): void => {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    const t = a[i]!
    a[i] = a[j]!
    a[j] = t
  }
}
