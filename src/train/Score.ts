/**
 * The validation bookkeeping every loop shares: mean cross-entropy and accuracy over the labelled rows
 * (label -1 = none), summed on the device in a (3) tensor [ce, correct, count] and read once. The
 * generic loop scores a model's forward pass; a backend's fused step scores the logits it computed.
 */
import * as tf from "@tensorflow/tfjs"
import type { TrainableModel } from "./ModelFamily.js"
import { nextTick, throwIfAborted } from "./Loop.js"

export interface Score {
  readonly loss: number
  readonly accuracy: number
}

/** (3) [sum of -log p(label), correct, labelled] over a batch: logits (B, ..., C), labels (B, ...) int32. */
const labelledSums = (logits: tf.Tensor, labels: tf.Tensor): tf.Tensor1D => {
  const numClasses = logits.shape[logits.rank - 1]!
  const z = logits.rank === 2 ? (logits as tf.Tensor2D) : tf.reshape(logits, [-1, numClasses]) as tf.Tensor2D // (R, C)
  const y = labels.rank === 1 ? (labels as tf.Tensor1D) : tf.reshape(labels, [-1]) as tf.Tensor1D // (R)
  const labelled = tf.cast(tf.greaterEqual(y, 0), "float32") // (R) 1 where a label exists
  // (R) -log p(label); oneHot of a clamped -1 is masked out by `labelled`.
  const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(z), tf.oneHot(tf.maximum(y, tf.zerosLike(y)), numClasses)), 1))
  const correct = tf.cast(tf.equal(tf.argMax(z, 1), y), "float32") // never equal to -1
  return tf.stack([tf.sum(tf.mul(nll, labelled)), tf.sum(correct), tf.sum(labelled)]) as tf.Tensor1D
}

/**
 * Scores `n` rows `batchSize` at a time, `logitsOf(start, rows)` giving a batch's logits (called in a
 * tidy); yields and checks the signal between batches. Undefined when no row is labelled.
 */
const scoreBatches = async (
  labels: tf.Tensor,
  batchSize: number,
  signal: AbortSignal | undefined,
  logitsOf: (start: number, rows: number) => tf.Tensor
): Promise<Score | undefined> => {
  const n = labels.shape[0]!
  let sums: tf.Tensor1D = tf.zeros([3])
  try {
    for (let start = 0; start < n; start += batchSize) {
      const rows = Math.min(batchSize, n - start)
      const next = tf.tidy(
        () => tf.add(sums, labelledSums(logitsOf(start, rows), tf.slice(labels, start, rows))) as tf.Tensor1D
      )
      sums.dispose()
      sums = next
      await nextTick()
      throwIfAborted(signal)
    }
    const [ce, correct, count] = (await sums.data()) as Float32Array
    return count! > 0 ? { loss: ce! / count!, accuracy: correct! / count! } : undefined
  } finally {
    sums.dispose()
  }
}

/** Mean cross-entropy and accuracy of `model` over the labelled rows of a split already on the device. */
export const evaluate = <X extends tf.Tensor>(
  model: Pick<TrainableModel<X>, "forward">,
  x: X,
  y: tf.Tensor,
  batchSize: number,
  signal: AbortSignal | undefined
): Promise<Score | undefined> =>
  scoreBatches(y, batchSize, signal, (start, rows) => model.forward(tf.slice(x, start, rows) as X, { training: false }).logits)

/** The same score from logits already computed: (M, C) row-major, labels (M) int32 on the device. */
export const scoreLogits = (logits: Float32Array, y: tf.Tensor1D, signal: AbortSignal | undefined): Promise<Score | undefined> => {
  const m = y.shape[0]
  return scoreBatches(y, Math.max(1, m), signal, () => tf.tensor2d(logits, [m, logits.length / Math.max(1, m)]))
}
