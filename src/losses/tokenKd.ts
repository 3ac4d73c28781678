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
 *
 * On-policy distillation (Agarwal et al. 2024, GKD; train/OnPolicy.ts makes the batches): on a batch of
 * the student's own samples the targets are -1 but at the generated positions, and the loss is the
 * divergence alone, w_T * the mean over generated positions of D(p_T, q_T): the data's CE is not
 * defined on student samples, so alpha does not apply there (off-policy batches keep the mix above).
 * GKD's objective is divergence generalized_jsd with its beta; beta -> 1 (or reverse_kl) on every batch
 * is the on-policy reverse KL closest to MiniLLM.
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

/** () the mean of D(p_T, q_T) over the counted positions (targets >= 0); 0 when none is counted. */
const meanTokenDivergence = (spec: ObjectiveSpec, studentLogits: tf.Tensor3D, teacherLogits: tf.Tensor3D, targets: tf.Tensor2D): tf.Scalar =>
  tf.tidy(() => {
    const count = tf.maximum(tf.sum(tf.cast(tf.greaterEqual(targets, 0), "float32")), 1) // () counted targets
    return tf.div(tf.sum(tokenDivergence(spec, studentLogits, teacherLogits, targets)), count) as tf.Scalar // () mean per token
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
    const distill = meanTokenDivergence(spec, studentLogits, teacherLogits, targets)
    return tf.add(tf.mul(distill, spec.alpha * temperatureFactor(spec)), tf.mul(ce, 1 - spec.alpha)) as tf.Scalar
  })

/**
 * The on-policy objective above: w_T * the mean over generated positions (targets >= 0) of D(p_T, q_T),
 * no CE and no alpha. Logits (B, L, V), targets (B, L) int32, -1 at the prompt and past a row's end.
 */
export const onPolicyDistillationLoss = (spec: ObjectiveSpec, studentLogits: tf.Tensor3D, targets: tf.Tensor2D, teacherLogits: tf.Tensor3D): tf.Scalar =>
  tf.tidy(() => tf.mul(meanTokenDivergence(spec, studentLogits, teacherLogits, targets), temperatureFactor(spec)) as tf.Scalar)

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
