/**
 * Total variation distance, TVD(p, q) = 0.5 sum_i |p_i - q_i| at temperature T, one of the
 * f-divergences compared for distillation by Wen, Li, Du & Mou 2023, "f-Divergence Minimization for
 * Sequence-Level Knowledge Distillation". Symmetric and bounded by 1.
 */
import * as tf from "@tensorflow/tfjs"
import type { Divergence } from "./Divergence.js"

export const tvd: Divergence<"tvd"> = {
  name: "tvd",
  direction: "symmetric between teacher and student, bounded by 1",
  formula: "0.5 sum_i |p_i - q_i|",
  paper: "Wen, Li, Du & Mou 2023, f-Divergence Minimization for Sequence-Level Knowledge Distillation",
  uses: [],
  perExample: (buckets) =>
    tf.tidy(
      () =>
        tf.mul(
          tf.sum(tf.abs(tf.sub(tf.exp(buckets.teacherLogProbs), tf.exp(buckets.studentLogProbs))), 1),
          0.5
        ) as tf.Tensor1D
    )
}
