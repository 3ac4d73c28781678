/**
 * Token-level knowledge distillation for language models (Hinton et al. 2015 applied per position, as
 * in Kim & Rush 2016's word-level KD and MiniLLM / GKD's token-level terms): at every counted target
 * position the student's next-token distribution is pulled toward the teacher's by any divergence of
 * the registry, mixed with the next-token cross-entropy on the data:
 *
 *   L = alpha * w_T * sum_{b,t: y[b,t] >= 0} D(p_T[b,t], q_T[b,t]) / #{b,t: y[b,t] >= 0}
 *       + (1 - alpha) * CE_next_token
 *
 * p_T = softmax(teacher logits / T), q_T = softmax(student logits / T), dense over the vocabulary; w_T =
 * T^2 when scaleT2. D is the registry's per-example divergence taken on the (B·T, V) rows, so every
 * divergence (forward_kl = KL(teacher || student), reverse_kl = KL(student || teacher), jsd, ...) works
 * unchanged. Reduction: per token, not per sequence: the positions whose target is -1 (the prompt of
 * prompt/completion data) count in neither term, and every counted token weighs the same whatever the
 * length of its sequence.
 */
import * as tf from "@tensorflow/tfjs"
import { nextTokenLoss } from "./nextToken.js"
import { describeObjective, divergencePerExample, temperatureFactor } from "./Objective.js"
import type { ObjectiveSpec } from "./ObjectiveSpec.js"

/** (B, T) D(p_T, q_T) at each position, 0 where the target is -1. Logits (B, T, V), targets (B, T) int32. */
export const tokenDivergence = (spec: ObjectiveSpec, studentLogits: tf.Tensor3D, teacherLogits: tf.Tensor3D, targets: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => {
    const [B, T, V] = studentLogits.shape
    const student = tf.reshape(studentLogits, [B * T, V]) as tf.Tensor2D // (B·T, V)
    const teacher = tf.reshape(teacherLogits, [B * T, V]) as tf.Tensor2D // (B·T, V), constant
    const d = divergencePerExample(spec, student, { logits: teacher }) // (B·T)
    const counted = tf.cast(tf.greaterEqual(tf.reshape(targets, [B * T]), 0), "float32") // (B·T)
    return tf.reshape(tf.mul(d, counted), [B, T]) as tf.Tensor2D
  })

/**
 * The LM objective above; without teacher logits, or with divergence "none", the next-token CE alone.
 * Logits (B, T, V), targets (B, T) int32 with -1 where not counted.
 */
export const tokenDistillationLoss = (
  spec: ObjectiveSpec,
  studentLogits: tf.Tensor3D,
  targets: tf.Tensor2D,
  teacherLogits?: tf.Tensor3D
): tf.Scalar =>
  tf.tidy(() => {
    const ce = nextTokenLoss(studentLogits, targets)
    if (teacherLogits === undefined || spec.divergence === "none") return ce
    const count = tf.maximum(tf.sum(tf.cast(tf.greaterEqual(targets, 0), "float32")), 1) // () counted targets
    const distill = tf.div(tf.sum(tokenDivergence(spec, studentLogits, teacherLogits, targets)), count) // () mean per token
    return tf.add(tf.mul(distill, spec.alpha * temperatureFactor(spec)), tf.mul(ce, 1 - spec.alpha)) as tf.Scalar
  })

/** describeObjective in an LM's terms: the per-token reduction and the next-token CE. */
export const describeTokenObjective = (spec: ObjectiveSpec): Record<string, string | number | boolean> => {
  const base = describeObjective(spec)
  if (spec.divergence === "none") {
    return { ...base, formula: "next-token CE", loss: "next-token CE, mean per counted target token", reduction: "per token" }
  }
  return {
    ...base,
    reduction: "per token",
    loss: `${base.distillWeight} * mean over counted target tokens of ${spec.divergence}(p_T, q_T) + ${base.ceWeight} * next-token CE (mean per counted target token)`
  }
}
