/**
 * Logit matching: the mean squared error between student and teacher logits at temperature T,
 * (1 / L) sum_i (z_s,i / T - z_t,i / T)^2 over the L compared logits (all C dense, the teacher's top-k
 * sparse). Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?"; Hinton et al. 2015 show that KL
 * at high T approaches this (for zero-mean logits). Symmetric; unlike the probability divergences it
 * also sees a constant shift of the logits. With the objective's T^2 factor it is the MSE of raw logits.
 */
import * as tf from "@tensorflow/tfjs"
import type { Divergence } from "./Divergence.js"

export const mseLogits: Divergence<"mse_logits"> = {
  name: "mse_logits",
  direction: "symmetric, on logits rather than probabilities",
  formula: "(1 / L) sum_i (z_s,i / T - z_t,i / T)^2",
  paper: "Ba & Caruana 2014, Do Deep Nets Really Need to be Deep?",
  uses: [],
  perExample: (buckets) =>
    tf.tidy(() => tf.mean(tf.square(tf.sub(buckets.studentLogits, buckets.teacherLogits)), 1) as tf.Tensor1D)
}
