/**
 * Multi-teacher distillation: several teachers' logits, each (B, C) at T = 1, combined into the logits
 * of one teacher, with weights w_i normalised to sum to 1:
 *   average_logits: z = sum_i w_i z_i
 *   average_probs:  z = log sum_i w_i softmax(z_i)   (log-probs are logits whose softmax is the mixture)
 * The combination happens at T = 1; the objective then applies its temperature to the combined logits,
 * which for average_probs is not the same as mixing the teachers' softened distributions (You, Xu, Xu &
 * Tao 2017, "Learning from Multiple Teacher Networks", average at the distillation temperature).
 */
import * as tf from "@tensorflow/tfjs"

export type EnsembleMode = "average_probs" | "average_logits"

/** (B, C) combined teacher logits; weights are non-negative, one per teacher, not all zero. */
export const ensembleTeachers = (
  logitsList: ReadonlyArray<tf.Tensor2D>,
  weights: ReadonlyArray<number>,
  mode: EnsembleMode
): tf.Tensor2D =>
  tf.tidy(() => {
    if (logitsList.length === 0) throw new RangeError("ensembleTeachers needs at least one teacher")
    if (weights.length !== logitsList.length) {
      throw new RangeError(`ensembleTeachers got ${logitsList.length} teachers but ${weights.length} weights`)
    }
    const [batch, numClasses] = logitsList[0]!.shape
    for (const logits of logitsList) {
      if (logits.shape[0] !== batch || logits.shape[1] !== numClasses) {
        const got = logits.shape.join(", ")
        throw new RangeError(`ensembleTeachers needs equal shapes: (${batch}, ${numClasses}) vs (${got})`)
      }
    }
    const total = weights.reduce((a, b) => a + b, 0)
    if (weights.some((w) => !(w >= 0)) || !(total > 0)) {
      const got = weights.join(", ")
      throw new RangeError(`ensembleTeachers needs non-negative weights with a positive sum, got [${got}]`)
    }
    const normalised = weights.map((w) => w / total)
    if (mode === "average_logits") {
      return tf.addN(logitsList.map((logits, i) => tf.mul(logits, normalised[i]!))) as tf.Tensor2D
    }
    // (N, B, C) log w_i + log softmax(z_i); teachers with weight 0 drop out of the mixture
    const weighted = logitsList.flatMap((logits, i) =>
      normalised[i]! > 0 ? [tf.add(tf.logSoftmax(logits), Math.log(normalised[i]!))] : []
    )
    return tf.logSumExp(tf.stack(weighted), 0) as tf.Tensor2D
  })
