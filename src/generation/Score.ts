/**
 * Teacher-forced scoring of continuations: one forward pass over prompt + continuation gives, at every
 * continuation position, the scorer's top-k next-token log-probabilities, the log of the probability
 * left to the other V - k tokens (the tail bucket) and the log-probability of the token that is there.
 * The one implementation behind lm_generate's scorer, lm_score and lm_evaluate's teacher NLL of samples.
 */
import * as tf from "@tensorflow/tfjs"
import type { Transformer } from "../models/Transformer.js"

export interface ScoreRow {
  readonly prompt: Int32Array
  /** The continuation scored, position by position. */
  readonly tokens: Int32Array
}

/** Flat over the rows' continuation positions, in row order: P = the sum of their lengths. */
export interface TokenScores {
  readonly k: number
  /** (P, k) token ids, most likely first. */
  readonly indices: Int32Array
  /** (P, k) their log-probabilities. */
  readonly logProbs: Float32Array
  /** (P) log(1 - the top k's probability), in float64 before rounding; -Infinity when k = V or when the top k hold all of it. */
  readonly tailLogProb: Float32Array
  /** (P) log p(the token there). */
  readonly tokenLogProb: Float32Array
}

/**
 * Scores every row's continuation under `model` at temperature 1. A sequence longer than the context
 * loses its first prompt tokens; a continuation needs a prompt token before it and fewer tokens than
 * the context. Rows whose kept prompt and continuation lengths agree share a forward pass, `batchSize`
 * at most. Frees every tensor it makes.
 */
export const scoreRows = async (model: Transformer, rows: ReadonlyArray<ScoreRow>, topK: number, batchSize: number): Promise<TokenScores> => {
  const { context, vocabSize: V } = model.spec
  const k = Math.min(topK, V)
  const starts = new Int32Array(rows.length + 1)
  for (const [i, r] of rows.entries()) {
    if (r.tokens.length > 0 && r.prompt.length === 0) throw new Error(`row ${i}: a continuation needs at least one prompt token before it`)
    if (r.tokens.length >= context) throw new Error(`row ${i}: ${r.tokens.length} continuation tokens do not fit the scorer's context of ${context}`)
    for (const t of [...r.prompt, ...r.tokens]) if (!(t >= 0 && t < V)) throw new Error(`row ${i}: token ${t} is outside the scorer's vocabulary of ${V}`)
    starts[i + 1] = starts[i]! + r.tokens.length
  }
  const P = starts[rows.length]!
  const indices = new Int32Array(P * k)
  const logProbs = new Float32Array(P * k)
  const tailLogProb = new Float32Array(P)
  const tokenLogProb = new Float32Array(P)
  // Batches: rows of one (kept prompt length, continuation length), in row order.
  const groups = new Map<string, Array<number>>()
  for (const [i, r] of rows.entries()) {
    if (r.tokens.length === 0) continue
    const kept = Math.min(r.prompt.length, context - r.tokens.length)
    const key = `${kept}:${r.tokens.length}`
    groups.set(key, [...(groups.get(key) ?? []), i])
  }
  for (const group of groups.values()) {
    for (let s = 0; s < group.length; s += batchSize) {
      const batch = group.slice(s, s + batchSize)
      const B = batch.length
      const n = rows[batch[0]!]!.tokens.length
      const kept = Math.min(rows[batch[0]!]!.prompt.length, context - n)
      const L = kept + n - 1 // the last token is only a target
      const input = new Int32Array(B * L)
      const targets = new Int32Array(B * n)
      batch.forEach((i, b) => {
        const { prompt, tokens } = rows[i]!
        input.set(prompt.subarray(prompt.length - kept), b * L)
        input.set(tokens.subarray(0, n - 1), b * L + kept)
        targets.set(tokens, b * n)
      })
      const out = tf.tidy(() => {
        const logits = model.forward(tf.tensor2d(input, [B, L], "int32"), { training: false }).logits // (B, L, V)
        // (B, n, V): the positions whose next token is a continuation token
        const lp = tf.logSoftmax(tf.slice(logits, [0, kept - 1, 0], [B, n, V]))
        const top = tf.topk(lp, k) // (B, n, k) values and indices, largest first
        const own = tf.sum(tf.mul(lp, tf.oneHot(tf.tensor2d(targets, [B, n], "int32"), V)), -1) // (B, n)
        return [top.values, top.indices, own]
      })
      const [values, ids, own] = (await Promise.all(out.map((t) => t.data()))) as [Float32Array, Int32Array, Float32Array]
      tf.dispose(out)
      batch.forEach((i, b) => {
        const at = starts[i]!
        logProbs.set(values.subarray(b * n * k, (b + 1) * n * k), at * k)
        indices.set(ids.subarray(b * n * k, (b + 1) * n * k), at * k)
        tokenLogProb.set(own.subarray(b * n, (b + 1) * n), at)
        for (let p = 0; p < n; p++) {
          let mass = 0
          for (let j = 0; j < k; j++) mass += Math.exp(values[(b * n + p) * k + j]!)
          tailLogProb[at + p] = k === V || mass >= 1 ? -Infinity : Math.log1p(-mass)
        }
      })
    }
  }
  return { k, indices, logProbs, tailLogProb, tokenLogProb }
}
