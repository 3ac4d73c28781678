/**
 * Cosine distance between teacher and student outputs, 1 - <u, v> / (|u| |v|), with u, v the
 * probabilities at temperature T (space "probs", over the compared buckets) or the logits (space
 * "logits", over the compared logits; scale-free, so T has no effect there). Symmetric and in [0, 2]
 * ([0, 1] on probabilities). Related to the Pearson-correlation loss of Huang et al. 2022, "Knowledge
 * Distillation from A Stronger Teacher" (DIST), which is the cosine of mean-centred vectors.
 */
import * as tf from "@tensorflow/tfjs"
import { cosineDistance, type Divergence } from "./Divergence.js"

export const cosine: Divergence<"cosine"> = {
  name: "cosine",
  direction: "symmetric, compares the direction of the teacher and student output vectors",
  formula: "1 - <u, v> / (|u| |v|), u, v = p, q (space probs) or z_t / T, z_s / T (space logits)",
  paper: "Huang et al. 2022, Knowledge Distillation from A Stronger Teacher (DIST, related)",
  uses: ["space"],
  perExample: (buckets, { space }) =>
    tf.tidy(() =>
      space === "logits"
        ? cosineDistance(buckets.teacherLogits, buckets.studentLogits)
        : cosineDistance(tf.exp(buckets.teacherLogProbs), tf.exp(buckets.studentLogProbs))
    )
}
