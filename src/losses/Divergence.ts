/**
 * The shape of one divergence D(teacher p, student q) and the stable tensor helpers the divergence
 * modules share. A divergence reads the `Buckets` built in Buckets.ts (dense classes or the top-k + tail
 * buckets of a sparse teacher) and returns one value per example; the batch reduction, the T^2 factor
 * and the hard-label mix are the objective's business (Objective.ts).
 */
import * as tf from "@tensorflow/tfjs"
import type { Buckets } from "./Buckets.js"

/** The knobs some divergences read; each divergence lists the ones it uses in `uses`. */
export interface DivergenceParams {
  /** generalized_jsd: weight of the teacher in the mixture, in [0, 1]. */
  readonly beta: number
  /** skew_kl / skew_reverse_kl: weight a of the skewed side in the mixture, in (0, 1]. */
  readonly skew: number
  /** cosine: compare logits or probabilities. */
  readonly space: "logits" | "probs"
}

export const defaultDivergenceParams: DivergenceParams = { beta: 0.5, skew: 0.1, space: "probs" }

export interface Divergence<Name extends string = string> {
  readonly name: Name
  /** Which way the divergence looks, in words, e.g. "KL(teacher || student): mass-covering". */
  readonly direction: string
  /** The formula with p = teacher and q = student at temperature T. */
  readonly formula: string
  readonly paper: string
  /** The params it reads, so that only those are recorded with a train node. */
  readonly uses: ReadonlyArray<keyof DivergenceParams>
  /** (B) D(p_b, q_b) per example; differentiable w.r.t. the student tensors of `buckets`. */
  readonly perExample: (buckets: Buckets, params: DivergenceParams) => tf.Tensor1D
}

/** (B) KL(a || b) = sum_i a_i (log a_i - log b_i), from (B, K) log-probs; a_i = 0 terms vanish. */
export const klFromLogProbs = (logA: tf.Tensor2D, logB: tf.Tensor2D): tf.Tensor1D =>
  tf.tidy(() => tf.sum(tf.mul(tf.exp(logA), tf.sub(logA, logB)), 1) as tf.Tensor1D)

/**
 * (B, K) log(w a + (1 - w) b) from log-probs, for 0 < w < 1, by log-sum-exp so that a bucket with tiny
 * mass on both sides keeps its precision (log of the mixed probabilities would underflow to -Infinity).
 */
export const logMixture = (logA: tf.Tensor2D, logB: tf.Tensor2D, w: number): tf.Tensor2D =>
  tf.tidy(
    () => tf.logSumExp(tf.stack([tf.add(logA, Math.log(w)), tf.add(logB, Math.log1p(-w))]), 0) as tf.Tensor2D
  )

/** Floor on vector norms so that the cosine of a zero vector is 0 rather than NaN. */
const normFloor = 1e-12

/** (B) 1 - cos(a_b, b_b) for (B, K) rows. */
export const cosineDistance = (a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D =>
  tf.tidy(() => {
    const dot = tf.sum(tf.mul(a, b), 1)
    // sqrt(max(|x|^2, floor^2)) keeps the gradient finite at a zero row
    const na = tf.sqrt(tf.maximum(tf.sum(tf.square(a), 1), normFloor * normFloor))
    const nb = tf.sqrt(tf.maximum(tf.sum(tf.square(b), 1), normFloor * normFloor))
    return tf.sub(1, tf.div(dot, tf.mul(na, nb))) as tf.Tensor1D
  })
