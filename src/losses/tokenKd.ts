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
 *
 * Stored scores (a Generations artifact's top-k + tail, no teacher model at training time): at each
 * counted position the teacher is its k largest next-token log-probs and the log of the mass of the
 * V - k others, and D is taken on the k + 1 buckets of Buckets.ts's top-k rule (the student's tail is
 * the log-sum-exp of its other V - k logits at T), with the same alpha mix and per-token mean. The
 * scorer's logits are known only up to their normaliser, so the student's logits are log-softmaxed
 * first: the probability-space divergences do not see the shift, and the logit-space ones (mse_logits,
 * cosine on logits) compare log-probabilities. With k = V the loss is the dense loss of the
 * log-softmaxed logits of both (for probability-space divergences, of the raw logits).
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

/** A scorer's stored next-token distribution at every position of a batch, at T = 1. */
export interface TokenTopk {
  /** (B, T, k) int32 the k most likely token ids. */
  readonly indices: tf.Tensor3D
  /** (B, T, k) their log-probs. */
  readonly logProbs: tf.Tensor3D
  /** (B, T) log of the mass of the V - k other tokens; -Infinity when k = V. */
  readonly tailLogProb: tf.Tensor2D
}

/**
 * (B, T) D(p_T, q_T) at each position on the k + 1 buckets of the stored top-k + tail, 0 where the target
 * is -1. Logits (B, T, V), targets (B, T) int32.
 */
export const topkTokenDivergence = (spec: ObjectiveSpec, studentLogits: tf.Tensor3D, topk: TokenTopk, targets: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => {
    const [B, T, V] = studentLogits.shape
    const k = topk.indices.shape[2]
    // (B·T, V) student log-probs: the stored side is log-probs, i.e. logits shifted by their normaliser
    const student = tf.logSoftmax(tf.reshape(studentLogits, [B * T, V])) as tf.Tensor2D
    const teacher = {
      topk: {
        indices: tf.reshape(topk.indices, [B * T, k]) as tf.Tensor2D, // (B·T, k)
        values: tf.reshape(topk.logProbs, [B * T, k]) as tf.Tensor2D, // (B·T, k) log-probs as logits at T = 1
        tailLogSumExp: tf.reshape(topk.tailLogProb, [B * T]) as tf.Tensor1D // (B·T) the tail's log-mass
      }
    }
    const d = divergencePerExample(spec, student, teacher) // (B·T)
    const counted = tf.cast(tf.greaterEqual(tf.reshape(targets, [B * T]), 0), "float32") // (B·T)
    return tf.reshape(tf.mul(d, counted), [B, T]) as tf.Tensor2D
  })

/** () the mean of a (B, T) per-position divergence over the counted positions (targets >= 0); 0 when none is counted. */
const meanOverCounted = (perPosition: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar =>
  tf.tidy(() => {
    const count = tf.maximum(tf.sum(tf.cast(tf.greaterEqual(targets, 0), "float32")), 1) // () counted targets
    return tf.div(tf.sum(perPosition), count) as tf.Scalar // () mean per token
  })

/** () the mean of D(p_T, q_T) over the counted positions (targets >= 0); 0 when none is counted. */
const meanTokenDivergence = (spec: ObjectiveSpec, studentLogits: tf.Tensor3D, teacherLogits: tf.Tensor3D, targets: tf.Tensor2D): tf.Scalar =>
  tf.tidy(() => meanOverCounted(tokenDivergence(spec, studentLogits, teacherLogits, targets), targets))

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
 * The objective above against stored top-k + tail scores: alpha * w_T * the mean over counted positions
 * of D on the k + 1 buckets + (1 - alpha) * next-token CE; with divergence "none", the CE alone. Logits
 * (B, T, V), targets (B, T) int32 with -1 where not counted (the prompt and the padding).
 */
export const topkTokenDistillationLoss = (spec: ObjectiveSpec, studentLogits: tf.Tensor3D, targets: tf.Tensor2D, topk: TokenTopk): tf.Scalar =>
  tf.tidy(() => {
    const ce = nextTokenLoss(studentLogits, targets)
    if (spec.divergence === "none") return ce
    const distill = meanOverCounted(topkTokenDivergence(spec, studentLogits, topk, targets), targets)
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

/** describeTokenObjective for stored top-k scores: the buckets and the positions counted. */
export const describeTopkTokenObjective = (spec: ObjectiveSpec, k: number): Record<string, string | number | boolean> => {
  const base = describeTokenObjective(spec)
  if (spec.divergence === "none") return base
  return {
    ...base,
    teacher: `stored scores: top-${k} log-probs + one tail bucket per generated position (the k + 1 bucket rule)`,
    loss: `${base.distillWeight} * mean over scored generated tokens of ${spec.divergence}(p_T, q_T) on the top-${k} + tail buckets + ${base.ceWeight} * next-token CE of the generated tokens (mean per counted token)`
  }
}
