/**
 * Jensen-Shannon divergence, JSD(p, q) = 0.5 KL(p || m) + 0.5 KL(q || m) with m = (p + q) / 2, at
 * temperature T (Lin 1991, "Divergence measures based on the Shannon entropy"). Symmetric in teacher and
 * student and bounded by log 2; generalized_jsd with beta = 0.5 is 4 times this.
 */
import * as tf from "@tensorflow/tfjs"
import { type Divergence, klFromLogProbs, logMixture } from "./Divergence.js"

export const jsd: Divergence<"jsd"> = {
  name: "jsd",
  direction: "symmetric between teacher and student, bounded by log 2",
  formula: "0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2",
  paper: "Lin 1991, Divergence Measures Based on the Shannon Entropy",
  uses: [],
  perExample: (buckets) =>
    tf.tidy(() => {
      const logM = logMixture(buckets.teacherLogProbs, buckets.studentLogProbs, 0.5) // (B, K) log m
      return tf.mul(
        tf.add(klFromLogProbs(buckets.teacherLogProbs, logM), klFromLogProbs(buckets.studentLogProbs, logM)),
        0.5
      ) as tf.Tensor1D
    })
}
