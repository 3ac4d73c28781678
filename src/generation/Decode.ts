/**
 * Incremental decoding with a transformer: `prefill` runs the prompt through the model once and fills
 * the KV cache, then each `step` runs one new token per row against the cache (llama2.c's `forward`
 * called per position, with `sample` apart in Sampler.ts). `generate` strings the two together for
 * one prompt. Every tensor made here is freed by the time a call returns, except the logits handed to
 * the caller.
 */
import * as tf from "@tensorflow/tfjs"
import { makeRng } from "../domain/Random.js"
import type { Transformer } from "../models/Transformer.js"
import type { KvCache } from "./KvCache.js"
import { makeKvCache } from "./KvCache.js"
import type { SamplerSettings } from "./Sampler.js"
import { sample } from "./Sampler.js"

export interface Decoder {
  /** Tokens cached per row: the position the next token takes. */
  readonly position: number
  /** rows: B token sequences of one length T -> (B, V) logits at the last position. The caller disposes them. */
  readonly prefill: (rows: ReadonlyArray<ArrayLike<number>>) => tf.Tensor2D
  /** tokens: one next token per row (B) -> (B, V) logits for the position after it. The caller disposes them. */
  readonly step: (tokens: ArrayLike<number>) => tf.Tensor2D
  /** Frees the cache. */
  readonly dispose: () => void
}

/** A decoder with an empty cache over `model` (inference mode: no dropout). */
export const makeDecoder = (model: Transformer): Decoder => {
  const cache: KvCache = makeKvCache(model.spec.layers, model.spec.context)
  const { vocabSize } = model.spec

  const run = (flat: Int32Array, B: number, T: number): tf.Tensor2D => {
    for (const t of flat) {
      if (!(t >= 0 && t < vocabSize)) throw new Error(`token ${t} is outside the vocabulary of ${vocabSize}`)
    }
    const logits = tf.tidy(() => {
      const all = model.forward(tf.tensor2d(flat, [B, T], "int32"), { training: false, cache }).logits // (B, T, V)
      return tf.reshape(tf.slice(all, [0, T - 1, 0], [B, 1, vocabSize]), [B, vocabSize]) as tf.Tensor2D // (B, V) last position
    })
    cache.commit(T)
    return logits
  }

  return {
    get position() {
      return cache.length
    },
    prefill: (rows) => {
      const B = rows.length
      const T = rows[0]?.length ?? 0
      if (B === 0 || T === 0) throw new Error("prefill needs at least one row of at least one token")
      if (rows.some((r) => r.length !== T)) throw new Error(`prefill rows must have one length; the first has ${T}`)
      const flat = new Int32Array(B * T)
      rows.forEach((r, b) => flat.set(Array.from(r), b * T))
      return run(flat, B, T)
    },
    step: (tokens) => run(Int32Array.from(tokens), tokens.length, 1),
    dispose: () => cache.dispose()
  }
}

export interface GenerateOptions {
  readonly maxNewTokens: number
  readonly sampler: SamplerSettings
  /** Seeds the sampler's draws: the same seed, prompt and model give the same tokens. */
  readonly seed: number
  /** Stop after emitting any of these tokens (included in the output). */
  readonly stopTokens?: ReadonlyArray<number>
}

export interface Generation {
  /** The new tokens, without the prompt. */
  readonly tokens: Int32Array
  /** "stop": a stop token; "length": maxNewTokens; "context": prompt and output fill the model's context. */
  readonly finishReason: "stop" | "length" | "context"
}

/** Continues one non-empty prompt token by token with the KV cache. */
export const generate = async (model: Transformer, prompt: ArrayLike<number>, opts: GenerateOptions): Promise<Generation> => {
  if (!(opts.maxNewTokens >= 1)) return { tokens: new Int32Array(0), finishReason: "length" }
  const rng = makeRng(opts.seed)
  const stop = new Set(opts.stopTokens ?? [])
  const out: Array<number> = []
  const decoder = makeDecoder(model)
  try {
    let logits = decoder.prefill([prompt])
    for (;;) {
      const row = (await logits.data()) as Float32Array // (V)
      logits.dispose()
      const token = sample(row, opts.sampler, rng)
      out.push(token)
      const finishReason =
        stop.has(token)
          ? "stop"
          : out.length >= opts.maxNewTokens
            ? "length"
            : prompt.length + out.length >= model.spec.context
              ? "context"
              : undefined
      if (finishReason !== undefined) return { tokens: Int32Array.from(out), finishReason }
      logits = decoder.step([token])
    }
  } finally {
    decoder.dispose()
  }
}
