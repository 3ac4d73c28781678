/**
 * Forward KL, KL(teacher || student) = sum_i p_i (log p_i - log q_i) at temperature T: the classic
 * distillation loss of Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network".
 * Mass-covering: wherever the teacher puts mass the student is punished by log(p / q), so a student
 * too weak to match the teacher spreads out to cover every mode.
 */
import * as tf from "@tensorflow/tfjs"
import { type Divergence, klFromLogProbs } from "./Divergence.js"

export const forwardKl: Divergence<"forward_kl"> = {
  name: "forward_kl",
  direction: "KL(teacher || student): mass-covering, the student spreads to cover every teacher mode",
  formula: "sum_i p_i (log p_i - log q_i)",
  paper: "Hinton, Vinyals & Dean 2015, Distilling the Knowledge in a Neural Network",
  uses: [],
  perExample: (buckets) => tf.tidy(() => klFromLogProbs(buckets.teacherLogProbs, buckets.studentLogProbs))
}
