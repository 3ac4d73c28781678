/**
 * Skew KL of Ko et al. 2024, "DistiLLM: Towards Streamlined Distillation for Large Language Models":
 * SKL_a(p, q) = KL(p || a p + (1 - a) q) at temperature T, with p = teacher, q = student and skew a.
 * Forward KL in direction (mass-covering), but the student's side is mixed with a share a of the
 * teacher, so log(p / m) <= log(1 / a): the loss and its gradients stay bounded where the student puts
 * almost no mass. a -> 0 recovers KL(p || q); a = 1 gives 0.
 */
import * as tf from "@tensorflow/tfjs"
import { type Divergence, klFromLogProbs, logMixture } from "./Divergence.js"

export const skewKl: Divergence<"skew_kl"> = {
  name: "skew_kl",
  direction: "KL(teacher || skew teacher + (1 - skew) student): mass-covering, bounded by log(1 / skew)",
  formula: "sum_i p_i (log p_i - log(a p_i + (1 - a) q_i)), a = skew",
  paper: "Ko et al. 2024, DistiLLM: Towards Streamlined Distillation for Large Language Models",
  uses: ["skew"],
  perExample: (buckets, { skew }) =>
    tf.tidy(() => {
      if (!(skew > 0 && skew < 1)) throw new RangeError(`skew_kl needs 0 < skew < 1, got ${skew}`)
      const logM = logMixture(buckets.teacherLogProbs, buckets.studentLogProbs, skew) // (B, K) log(a p + (1-a) q)
      return klFromLogProbs(buckets.teacherLogProbs, logM)
    })
}
