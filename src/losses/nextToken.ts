/**
 * Next-token cross-entropy, the language-modelling loss (Bengio et al. 2003; GPT): the mean over
 * counted target positions of -log softmax(logits)[target]. A target of -1 is not counted: the
 * prompt tokens of prompt/completion data, so only the completion is learned (as TRL's
 * DataCollatorForCompletionOnlyLM masks with -100). The reduction is per token, not per sequence.
 *
 *   L = sum_{b,t: y[b,t] >= 0} -log p(y[b,t] | x[b, <=t]) / #{b,t: y[b,t] >= 0}
 *
 * The weighted variant (per-task loss weights of a multi-task corpus, lm_tasks) multiplies each
 * position's term by its weight w[b,t] and keeps the same denominator, so all-ones weights give the
 * unweighted loss exactly:
 *
 *   L_w = sum_{b,t: y[b,t] >= 0} w[b,t] * -log p(y[b,t] | x[b, <=t]) / #{b,t: y[b,t] >= 0}
 */
import * as tf from "@tensorflow/tfjs"

/** (B, T) -log p(target) at each position, 0 where the target is -1. logits (B, T, V), targets (B, T) int32. */
export const nextTokenNll = (logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Tensor2D => {
  const [B, T, V] = logits.shape
  const z = tf.reshape(logits, [B * T, V]) // (B·T, V)
  const y = tf.reshape(targets, [B * T]) as tf.Tensor1D // (B·T)
  const counted = tf.cast(tf.greaterEqual(y, 0), "float32") // (B·T) 1 where the target counts
  // oneHot of a clamped -1 picks token 0; `counted` zeroes it.
  const picked = tf.sum(tf.mul(tf.logSoftmax(z), tf.oneHot(tf.maximum(y, tf.zerosLike(y)), V)), 1) // (B·T) log p(target)
  return tf.reshape(tf.mul(tf.neg(picked), counted), [B, T]) as tf.Tensor2D
}

/** The mean of `nextTokenNll` over counted positions (0 when none counts). */
export const nextTokenLoss = (logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Scalar => {
  const count = tf.sum(tf.cast(tf.greaterEqual(targets, 0), "float32")) // () counted targets
  return tf.div(tf.sum(nextTokenNll(logits, targets)), tf.maximum(count, 1)) as tf.Scalar
}

/** The weighted mean: sum of w * `nextTokenNll` over counted positions / their count (0 when none counts). weights (B, T) float32. */
export const weightedNextTokenLoss = (logits: tf.Tensor3D, targets: tf.Tensor2D, weights: tf.Tensor2D): tf.Scalar => {
  const count = tf.sum(tf.cast(tf.greaterEqual(targets, 0), "float32")) // () counted targets
  return tf.div(tf.sum(tf.mul(nextTokenNll(logits, targets), weights)), tf.maximum(count, 1)) as tf.Scalar
}
