/**
 * Generalized Jensen-Shannon divergence of Agarwal et al. 2024, "On-Policy Distillation of Language
 * Models: Learning from Self-Generated Mistakes" (GKD), rescaled so that it interpolates between the two
 * KLs. With p = teacher, q = student at temperature T and m = beta p + (1 - beta) q:
 *
 *   GJSD_beta(p, q) = [beta KL(p || m) + (1 - beta) KL(q || m)] / (beta (1 - beta))    for 0 < beta < 1
 *   GJSD_0 = KL(p || q) (forward KL),   GJSD_1 = KL(q || p) (reverse KL)
 *
 * Why the rescaling: the bracket alone (GKD's eq. 1, and TRL's `GKDTrainer.generalized_jsd_loss` for
 * 0 < beta < 1) tends to 0 at both ends, while TRL returns forward KL at beta = 0 and reverse KL at
 * beta = 1 exactly, a jump. As beta -> 0, KL(p || m) -> KL(p || q) and KL(q || m) = O(beta^2), so the
 * bracket is beta KL(p || q) + O(beta^2); symmetrically it is (1 - beta) KL(q || p) + O((1 - beta)^2) as
 * beta -> 1. Dividing by beta (1 - beta) makes the family continuous, with TRL's endpoints: beta -> 0
 * gives forward KL(teacher || student), beta -> 1 gives reverse KL(student || teacher). The value is
 * TRL's divided by beta (1 - beta) (4 x jsd at beta = 0.5), so gradients point the same way but are
 * larger by that factor; keep this in mind when comparing learning rates with TRL.
 */
import * as tf from "@tensorflow/tfjs"
import { type Divergence, klFromLogProbs, logMixture } from "./Divergence.js"

export const generalizedJsd: Divergence<"generalized_jsd"> = {
  name: "generalized_jsd",
  direction:
    "from KL(teacher || student) at beta -> 0 (mass-covering) to KL(student || teacher) at beta -> 1 (mode-seeking)",
  formula: "[beta KL(p || m) + (1 - beta) KL(q || m)] / (beta (1 - beta)), m = beta p + (1 - beta) q",
  paper: "Agarwal et al. 2024, On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes (GKD)",
  uses: ["beta"],
  perExample: (buckets, { beta }) =>
    tf.tidy(() => {
      if (!(beta >= 0 && beta <= 1)) throw new RangeError(`generalized_jsd needs 0 <= beta <= 1, got ${beta}`)
      const logP = buckets.teacherLogProbs
      const logQ = buckets.studentLogProbs
      if (beta === 0) return klFromLogProbs(logP, logQ)
      if (beta === 1) return klFromLogProbs(logQ, logP)
      const logM = logMixture(logP, logQ, beta) // (B, K) log(beta p + (1 - beta) q)
      const bracket = tf.add(tf.mul(klFromLogProbs(logP, logM), beta), tf.mul(klFromLogProbs(logQ, logM), 1 - beta))
      return tf.div(bracket, beta * (1 - beta)) as tf.Tensor1D
    })
}
