/**
 * The batch source of on-policy distillation (Agarwal et al. 2024, GKD; TRL's `GKDTrainer` keeps the
 * same phases apart): a seeded draw per micro-batch chooses data or student samples; for the latter,
 * each row's prompt is continued by the current student with the KV-cache decoder (no gradient), and
 * the result is laid out as a pack (inputs, targets shifted by one) whose targets are -1 everywhere but
 * at the generated positions, so a token-level divergence masked by `targets >= 0` sees only the
 * student's own tokens. The teacher's scoring and the divergence are the caller's.
 *
 * A row's prompt: the tokens before its first counted target when it starts with uncounted ones (the
 * prompt of prompt/completion data: inputs x[0..k] when targets y[0..k-1] are -1), else its first
 * `promptTokens` tokens (packed plain text); at most T tokens, so that each row generates at least one.
 * Rows of one prompt length are decoded together: one prefill, then one step per new token for all of
 * them. A row of T + 1 tokens in the pack (T inputs, the last target) is regenerated from its prompt
 * up to T + 1 tokens, or `maxNewTokens` past the prompt when that is fewer; shorter rows are padded
 * with token 0 and target -1 (the models are causal: padding after a position does not change it).
 */
import { deriveSeed, makeRng, type Rng } from "../domain/Random.js"
import { makeDecoder } from "../generation/Decode.js"
import type { SamplerSettings } from "../generation/Sampler.js"
import { sample } from "../generation/Sampler.js"
import type { Transformer } from "../models/Transformer.js"

export interface OnPolicySettings {
  /** The share of micro-batches drawn from the student, in [0, 1]. */
  readonly lambda: number
  /** The prompt of a row that does not start with uncounted targets. */
  readonly promptTokens: number
  readonly sampler: SamplerSettings
  /** At most this many tokens generated per row (absent: up to the sequence length). */
  readonly maxNewTokens?: number
}

/** Whether micro-batch `batch` of round `round` is on-policy: one seeded draw below lambda (0: never, 1: always). */
export const isOnPolicy = (seed: number, lambda: number, round: number, batch: number): boolean =>
  lambda > 0 && makeRng(deriveSeed(seed, "on-policy", round, batch)).next() < lambda

/** The prompt length of one packed row from its T targets (see the module comment). */
export const promptLength = (targets: ArrayLike<number>, promptTokens: number): number => {
  let k = 0
  while (k < targets.length && targets[k]! < 0) k++
  return Math.min(k > 0 ? k + 1 : promptTokens, targets.length)
}

/** A micro-batch of student samples, as a pack. */
export interface OnPolicyBatch {
  readonly rows: number
  /** Tokens per row: the longest row's prompt + generated tokens, less one. */
  readonly length: number
  /** (B, L) prompt then sampled tokens, 0 past a row's end. */
  readonly inputs: Int32Array
  /** (B, L) the next token where the student generated it, else -1. */
  readonly targets: Int32Array
  /** Tokens generated, all rows together. */
  readonly generated: number
}

/**
 * Continues the prompts of B packed rows (inputs and targets (B, T), row-major) with `model`'s samples
 * drawn by `rng`: rows grouped by prompt length, shortest first, rows in order within a group.
 * Every tensor made here is freed before it returns.
 */
export const sampleOnPolicyBatch = (
  model: Transformer,
  pack: { readonly length: number; readonly inputs: Int32Array; readonly targets: Int32Array },
  settings: OnPolicySettings,
  rng: Rng
): OnPolicyBatch => {
  const T = pack.length
  const B = pack.inputs.length / T
  const prompts = Array.from({ length: B }, (_, r) => promptLength(pack.targets.subarray(r * T, (r + 1) * T), settings.promptTokens))
  const ends = prompts.map((p) => Math.min(T + 1, p + (settings.maxNewTokens ?? T + 1))) // tokens per row after generation
  const sequences = prompts.map((p, r) => {
    const s = new Int32Array(ends[r]!)
    for (let t = 0; t < p; t++) s[t] = pack.inputs[r * T + t]!
    return s
  })
  const byPrompt = new Map<number, Array<number>>()
  prompts.forEach((p, r) => {
    const group = byPrompt.get(p) ?? []
    group.push(r)
    byPrompt.set(p, group)
  })
  let generated = 0
  for (const p of [...byPrompt.keys()].sort((a, b) => a - b)) {
    const rows = byPrompt.get(p)!
    const n = ends[rows[0]!]! - p
    const decoder = makeDecoder(model)
    try {
      let logits = decoder.prefill(rows.map((r) => sequences[r]!.subarray(0, p))) // (G, V) at position p - 1
      for (let i = 0; ; i++) {
        const V = logits.shape[1]
        let values: Float32Array // (G·V)
        try {
          // A synchronous read: the training loop's micro-batch step is synchronous.
          values = logits.dataSync() as Float32Array
        } finally {
          logits.dispose()
        }
        const tokens = rows.map((r, g) => {
          const token = sample(values.subarray(g * V, (g + 1) * V), settings.sampler, rng)
          sequences[r]![p + i] = token
          return token
        })
        generated += rows.length
        if (i + 1 === n) break
        logits = decoder.step(tokens) // (G, V) at position p + i
      }
    } finally {
      decoder.dispose()
    }
  }
  const L = Math.max(...ends) - 1
  const inputs = new Int32Array(B * L)
  const targets = new Int32Array(B * L).fill(-1)
  sequences.forEach((s, r) => {
    for (let t = 0; t + 1 < s.length; t++) {
      inputs[r * L + t] = s[t]!
      if (t + 1 >= prompts[r]!) targets[r * L + t] = s[t + 1]!
    }
  })
  return { rows: B, length: L, inputs, targets, generated }
}
