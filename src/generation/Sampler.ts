/**
 * Choosing the next token from one row of logits: temperature, then top-k, top-p (nucleus; Holtzman
 * et al. 2020) and min-p (Nguyen et al. 2024) in that order, as HF transformers' logits warpers apply
 * them; each filter sees the distribution the previous ones left, renormalised. Pure functions over a
 * Float32Array (V) and a seeded Rng: the same seed gives the same tokens.
 */
import type { Rng } from "../domain/Random.js"

export interface SamplerSettings {
  /** 0 picks the most likely token (greedy); 1 samples the model's distribution as is. */
  readonly temperature: number
  /** Keep the k most likely tokens (0 or absent: all). */
  readonly topK?: number
  /** Keep the fewest most likely tokens whose probabilities sum to at least p (1 or absent: all). */
  readonly topP?: number
  /** Keep tokens at least minP times as likely as the most likely one (0 or absent: all). */
  readonly minP?: number
}

/** Index of the largest logit (the first on ties). */
export const argmax = (logits: ArrayLike<number>): number => {
  let best = 0
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i
  return best
}

/** Token ids by descending probability, ties by id. */
const byProbability = (p: Float64Array): Array<number> =>
  Array.from(p.keys())
    .filter((i) => p[i]! > 0)
    .sort((a, b) => p[b]! - p[a]! || a - b)

const normalise = (p: Float64Array): Float64Array => {
  let total = 0
  for (const x of p) total += x
  for (let i = 0; i < p.length; i++) p[i]! /= total
  return p
}

/**
 * The distribution the sampler draws from: softmax(logits / temperature) with the filtered tokens set
 * to 0 and the rest renormalised (float64). Needs temperature > 0.
 */
export const distribution = (logits: ArrayLike<number>, settings: SamplerSettings): Float64Array => {
  const { temperature, topK = 0, topP = 1, minP = 0 } = settings
  if (!(temperature > 0)) throw new Error(`distribution needs a positive temperature, got ${temperature}`)
  const max = logits[argmax(logits)]!
  // Subtracting the max keeps exp in range; the max itself maps to 1.
  let p = normalise(Float64Array.from({ length: logits.length }, (_, i) => Math.exp((logits[i]! - max) / temperature)))
  if (topK > 0 && topK < p.length) {
    const order = byProbability(p)
    for (const i of order.slice(topK)) p[i] = 0
    p = normalise(p)
  }
  if (topP < 1) {
    let cumulative = 0
    for (const i of byProbability(p)) {
      if (cumulative >= topP) p[i] = 0
      else cumulative += p[i]!
    }
    p = normalise(p)
  }
  if (minP > 0) {
    const cut = minP * Math.max(...p)
    for (let i = 0; i < p.length; i++) if (p[i]! < cut) p[i] = 0
    p = normalise(p)
  }
  return p
}

/** The next token: argmax at temperature 0 (no draw), else one draw from `distribution`. */
export const sample = (logits: ArrayLike<number>, settings: SamplerSettings, rng: Rng): number => {
  if (settings.temperature === 0) return argmax(logits)
  const p = distribution(logits, settings)
  const u = rng.next()
  let cumulative = 0
  let last = 0
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) continue
    cumulative += p[i]!
    last = i
    if (u < cumulative) return i
  }
  // Rounding left the total just under 1 and u above it: the last kept token.
  return last
}
