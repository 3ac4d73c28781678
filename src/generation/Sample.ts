/**
 * Batched sampling: many prompts continued at once through one KV-cache decoder per batch. Each row
 * draws from its own seeded Rng, so a row's tokens depend on its prompt, its seed and the model only,
 * never on which rows share its batch or in which order batches run. Rows of one prompt length share
 * a batch (the decoder has no padding); a row that has finished rides along until its batch ends,
 * its further tokens ignored. Also records each token's log-probability under the model's own
 * untempered, unfiltered distribution (the sampler's settings change what is drawn, not how it is scored).
 */
import { makeRng } from "../domain/Random.js"
import type { Transformer } from "../models/Transformer.js"
import { makeDecoder } from "./Decode.js"
import type { SamplerSettings } from "./Sampler.js"
import { sample } from "./Sampler.js"

export interface SampleRow {
  /** The prompt: at least one token, fewer than the model's context. */
  readonly prompt: Int32Array
  readonly seed: number
}

export interface SampleOptions {
  readonly maxNewTokens: number
  readonly sampler: SamplerSettings
  /** Rows continued together (at most; rows of different prompt lengths never share a batch). */
  readonly batchSize: number
  /** Tokens that end a sample (kept as its last token), e.g. `<eos>`. */
  readonly stopTokens?: ReadonlyArray<number>
  /** Whether a row's tokens so far end it (e.g. its decoded text holds a stop string); the last token is kept. */
  readonly stopped?: (tokens: ReadonlyArray<number>) => boolean
  /** Called after each batch with the rows done so far. */
  readonly onBatch?: (done: number, total: number) => void
}

export interface Sampled {
  /** The new tokens, without the prompt. */
  readonly tokens: Int32Array
  /** log p(token) of each new token under the model's softmax at temperature 1. */
  readonly logProbs: Float32Array
  /** "stop": a stop token or `stopped`; "length": maxNewTokens; "context": prompt and output fill the context. */
  readonly finishReason: "stop" | "length" | "context"
}

/** Log-softmax of one row of logits at one index, in float64. */
const logSoftmaxAt = (logits: Float32Array, offset: number, V: number, index: number): number => {
  let max = -Infinity
  for (let i = 0; i < V; i++) max = Math.max(max, logits[offset + i]!)
  let total = 0
  for (let i = 0; i < V; i++) total += Math.exp(logits[offset + i]! - max)
  return logits[offset + index]! - max - Math.log(total)
}

/** Continues every row; results in row order. Every tensor made here is freed before it returns. */
export const sampleRows = async (model: Transformer, rows: ReadonlyArray<SampleRow>, opts: SampleOptions): Promise<Array<Sampled>> => {
  const { context, vocabSize: V } = model.spec
  for (const [i, r] of rows.entries()) {
    if (r.prompt.length === 0 || r.prompt.length >= context) {
      throw new Error(`row ${i}: a prompt needs 1 to ${context - 1} tokens (the model's context is ${context}), got ${r.prompt.length}`)
    }
  }
  const out: Array<Sampled | undefined> = new Array(rows.length).fill(undefined)
  const stopTokens = new Set(opts.stopTokens ?? [])
  // Batches: row indices grouped by prompt length, in row order, cut at batchSize.
  const byLength = new Map<number, Array<number>>()
  for (const [i, r] of rows.entries()) {
    const group = byLength.get(r.prompt.length) ?? []
    group.push(i)
    byLength.set(r.prompt.length, group)
  }
  const batches: Array<Array<number>> = []
  for (const group of byLength.values()) {
    for (let s = 0; s < group.length; s += opts.batchSize) batches.push(group.slice(s, s + opts.batchSize))
  }
  let done = 0
  for (const batch of batches) {
    const P = rows[batch[0]!]!.prompt.length
    const rngs = batch.map((i) => makeRng(rows[i]!.seed))
    const tokens = batch.map((): Array<number> => [])
    const logProbs = batch.map((): Array<number> => [])
    const finished: Array<Sampled["finishReason"] | undefined> = batch.map(() => undefined)
    if (opts.maxNewTokens < 1) finished.fill("length")
    const decoder = makeDecoder(model)
    try {
      let logits = finished.every((f) => f !== undefined) ? undefined : decoder.prefill(batch.map((i) => rows[i]!.prompt))
      while (logits !== undefined) {
        const values = (await logits.data()) as Float32Array // (B, V)
        logits.dispose()
        logits = undefined
        const next = batch.map((_, b) => {
          if (finished[b] !== undefined) return 0
          const row = values.subarray(b * V, (b + 1) * V)
          const token = sample(row, opts.sampler, rngs[b]!)
          tokens[b]!.push(token)
          logProbs[b]!.push(logSoftmaxAt(values, b * V, V, token))
          const n = tokens[b]!.length
          finished[b] = stopTokens.has(token) || opts.stopped?.(tokens[b]!) === true
            ? "stop"
            : n >= opts.maxNewTokens
            ? "length"
            : P + n >= context
            ? "context"
            : undefined
          return token
        })
        if (finished.some((f) => f === undefined)) logits = decoder.step(next)
      }
    } finally {
      decoder.dispose()
    }
    batch.forEach((i, b) => {
      out[i] = { tokens: Int32Array.from(tokens[b]!), logProbs: Float32Array.from(logProbs[b]!), finishReason: finished[b]! }
    })
    done += batch.length
    opts.onBatch?.(done, rows.length)
  }
  return out as Array<Sampled>
}
