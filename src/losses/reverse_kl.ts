/**
 * Reverse KL, KL(student || teacher) = sum_i q_i (log q_i - log p_i) at temperature T, as used for
 * language models by Gu, Dong, Wei & Huang 2023, "MiniLLM: Knowledge Distillation of Large Language
 * Models". Mode-seeking: the student pays log(q / p) for mass where the teacher has little, so a weak
 * student settles on one teacher mode instead of smearing mass between modes.
 */
import * as tf from "@tensorflow/tfjs"
import { type Divergence, klFromLogProbs } from "./Divergence.js"

export const reverseKl: Divergence<"reverse_kl"> = {
  name: "reverse_kl",
  direction: "KL(student || teacher): mode-seeking, the student locks onto one teacher mode",
  formula: "sum_i q_i (log q_i - log p_i)",
  paper: "Gu, Dong, Wei & Huang 2023, MiniLLM: Knowledge Distillation of Large Language Models",
  uses: [],
  perExample: (buckets) => tf.tidy(() => klFromLogProbs(buckets.studentLogProbs, buckets.teacherLogProbs))
}
