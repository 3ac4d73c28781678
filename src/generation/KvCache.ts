/**
 * The keys and values a transformer has computed for the tokens so far, one pair per layer, so that a
 * decoding step runs the model on the new token only (llama2.c's `RunState` key/value cache). It is
 * the model's `KvHook`: each layer hands in its new rotated keys and values and attends over all of
 * them. Storage grows by one concat per layer and token: a copy the size of the keys the step's
 * attention reads anyway, so a step costs the weights' matmuls plus attention over the S cached
 * positions, and nothing else grows with S. Tensors are immutable in tfjs, so a preallocated
 * (B, G, context, hd) buffer would cost a full-buffer copy per update instead.
 */
import * as tf from "@tensorflow/tfjs"
import type { KvHook } from "../models/Transformer.js"

export interface KvCache extends KvHook {
  /** Tokens cached per row (the next token's position). */
  readonly length: number
  /** Records that the forward pass that just ran appended `tokens` positions in every layer. */
  readonly commit: (tokens: number) => void
  /** Frees the cached tensors; the cache is empty afterwards. */
  readonly dispose: () => void
}

/** An empty cache for `layers` layers holding at most `context` positions. */
export const makeKvCache = (layers: number, context: number): KvCache => {
  const keys: Array<tf.Tensor4D | undefined> = new Array(layers).fill(undefined)
  const values: Array<tf.Tensor4D | undefined> = new Array(layers).fill(undefined)
  let length = 0

  const append = (store: Array<tf.Tensor4D | undefined>, layer: number, x: tf.Tensor4D): tf.Tensor4D => {
    const past = store[layer]
    const all = past === undefined ? x : tf.concat([past, x], 2) // (B, G, S, hd): along time
    // Kept beyond the caller's tidy; the previous tensor is no longer needed once copied.
    tf.keep(all)
    past?.dispose()
    store[layer] = all
    return all
  }

  return {
    get start() {
      return length
    },
    get length() {
      return length
    },
    extend: (layer, k, v) => {
      if (layer < 0 || layer >= layers) throw new Error(`layer ${layer} is outside the cache's ${layers} layers`)
      if (length + k.shape[2] > context) {
        throw new Error(`${length + k.shape[2]} positions exceed the cache's context of ${context}`)
      }
      return { k: append(keys, layer, k), v: append(values, layer, v) }
    },
    commit: (tokens) => {
      length += tokens
    },
    dispose: () => {
      tf.dispose([...keys, ...values].filter((t): t is tf.Tensor4D => t !== undefined))
      keys.fill(undefined)
      values.fill(undefined)
      length = 0
    }
  }
}
