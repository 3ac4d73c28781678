/**
 * Skew reverse KL of Ko et al. 2024, "DistiLLM: Towards Streamlined Distillation for Large Language
 * Models": SRKL_a(p, q) = KL(q || a q + (1 - a) p) at temperature T, with p = teacher, q = student and
 * skew a. Reverse KL in direction (mode-seeking), with the teacher's side mixed with a share a of the
 * student so that log(q / m) <= log(1 / a). a -> 0 recovers KL(q || p); a = 1 gives 0.
 */
import * as tf from "@tensorflow/tfjs"
import { type Divergence, klFromLogProbs, logMixture } from "./Divergence.js"

export const skewReverseKl: Divergence<"skew_reverse_kl"> = {
  name: "skew_reverse_kl",
  direction: "KL(student || skew student + (1 - skew) teacher): mode-seeking, bounded by log(1 / skew)",
  formula: "sum_i q_i (log q_i - log(a q_i + (1 - a) p_i)), a = skew",
  paper: "Ko et al. 2024, DistiLLM: Towards Streamlined Distillation for Large Language Models",
  uses: ["skew"],
  perExample: (buckets, { skew }) =>
    tf.tidy(() => {
      if (!(skew > 0 && skew < 1)) throw new RangeError(`skew_reverse_kl needs 0 < skew < 1, got ${skew}`)
      const logM = logMixture(buckets.studentLogProbs, buckets.teacherLogProbs, skew) // (B, K) log(a q + (1-a) p)
      return klFromLogProbs(buckets.studentLogProbs, logM)
    })
}
