/**
 * The distillation objective a train node minimises, its params, and what is recorded about it.
 *
 *   loss = alpha * w_T * mean_b D(p_T,b, q_T,b) + (1 - alpha) * CE
 *
 * - p_T, q_T: teacher and student distributions at temperature T over the buckets of Buckets.ts (the
 *   C classes for a dense teacher, the top-k classes plus one tail bucket for a sparse one).
 * - w_T = T^2 when `scaleT2` (Hinton et al. 2015: the soft-target gradients shrink as 1 / T^2, so this
 *   keeps their size comparable to the hard-label gradients when T changes), else 1.
 * - Batch reduction: D is averaged uniformly over all B rows, labelled or not (the teacher covers the
 *   unlabelled ones). CE = -log softmax(z_s)[label] at T = 1, averaged over the labelled rows only
 *   (label >= 0; -1 marks an unlabelled row); a batch without labelled rows contributes CE = 0, and the
 *   distillation term is not renormalised in that case.
 * - alpha weighs the distillation term and 1 - alpha the hard labels. Without a teacher batch, or with
 *   divergence "none", the loss is the CE alone (weight 1).
 */
import * as tf from "@tensorflow/tfjs"
import { type TeacherBatch, toBuckets } from "./Buckets.js"
import type { DivergenceParams } from "./Divergence.js"
import { getDivergence } from "./Divergences.js"
import type { ObjectiveSpec } from "./ObjectiveSpec.js"

export type { TeacherBatch } from "./Buckets.js"

export { divergenceNames, ObjectiveSpec } from "./ObjectiveSpec.js"

const divergenceParams = (spec: ObjectiveSpec): DivergenceParams => ({
  beta: spec.beta,
  skew: spec.skew,
  space: spec.space
})

/** The factor on mean_b D before alpha: T^2 when scaleT2, else 1. */
export const temperatureFactor = (spec: ObjectiveSpec): number =>
  spec.scaleT2 ? spec.temperature * spec.temperature : 1

/**
 * (B) the divergence D(p_T, q_T) per example, without T^2 or alpha (e.g. for per-example rows); zeros
 * for divergence "none".
 */
export const divergencePerExample = (
  spec: ObjectiveSpec,
  studentLogits: tf.Tensor2D,
  teacher: TeacherBatch
): tf.Tensor1D =>
  tf.tidy(() =>
    spec.divergence === "none"
      ? tf.zeros([studentLogits.shape[0]])
      : getDivergence(spec.divergence).perExample(
          toBuckets(teacher, studentLogits, spec.temperature),
          divergenceParams(spec)
        )
  )

/** () mean over labelled rows of -log softmax(z)[label] at T = 1; 0 when no row is labelled. */
export const hardLabelCrossEntropy = (studentLogits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar =>
  tf.tidy(() => {
    const numClasses = studentLogits.shape[1]
    const labelsInt = labels.dtype === "int32" ? labels : tf.cast(labels, "int32")
    const labelled = tf.cast(tf.greaterEqual(labelsInt, 0), "float32") // (B) 1 for a labelled row
    // oneHot gives an all-zero row for -1, so unlabelled rows pick no log-prob; it is built as int32 and
    // cast because the wasm OneHot kernel writes int32 bits whatever dtype is asked for
    const target = tf.cast(tf.oneHot(labelsInt, numClasses), "float32") // (B, C)
    const nll = tf.neg(tf.sum(tf.mul(target, tf.logSoftmax(studentLogits)), 1)) // (B)
    return tf.div(tf.sum(tf.mul(nll, labelled)), tf.maximum(tf.sum(labelled), 1)) as tf.Scalar
  })

/**
 * alpha * (T^2 if scaleT2) * mean_b D(p_T, q_T) + (1 - alpha) * CE(labels); without a teacher or with
 * divergence "none": CE only. labels (B) int32, -1 = unlabelled (excluded from CE; CE averaged over
 * labelled rows; if a batch has none, the CE term is 0).
 */
export const objectiveLoss = (
  spec: ObjectiveSpec,
  studentLogits: tf.Tensor2D,
  labels: tf.Tensor1D,
  teacher?: TeacherBatch
): tf.Scalar =>
  tf.tidy(() => {
    const ce = hardLabelCrossEntropy(studentLogits, labels)
    if (teacher === undefined || spec.divergence === "none") return ce
    const distill = tf.mul(tf.mean(divergencePerExample(spec, studentLogits, teacher)), temperatureFactor(spec))
    return tf.add(tf.mul(distill, spec.alpha), tf.mul(ce, 1 - spec.alpha)) as tf.Scalar
  })

/**
 * What gets recorded with every train node: divergence name, direction in words, formula, temperature,
 * alpha, beta/skew/space when the divergence reads them, and the weight of each term as numbers
 * (`distillWeight` multiplies mean_b D, `ceWeight` the CE; both assume a teacher batch is given).
 */
export const describeObjective = (spec: ObjectiveSpec): Record<string, string | number | boolean> => {
  if (spec.divergence === "none") {
    return {
      divergence: "none",
      direction: "none: hard labels only",
      formula: "CE(labels)",
      loss: "CE(labels at T = 1, mean over labelled rows)",
      distillWeight: 0,
      ceWeight: 1
    }
  }
  const divergence = getDivergence(spec.divergence)
  const factor = temperatureFactor(spec)
  const distillWeight = spec.alpha * factor
  const ceWeight = 1 - spec.alpha
  const used: Record<string, string | number> = {}
  for (const key of divergence.uses) used[key] = spec[key]
  return {
    divergence: divergence.name,
    direction: divergence.direction,
    formula: divergence.formula,
    paper: divergence.paper,
    temperature: spec.temperature,
    alpha: spec.alpha,
    scaleT2: spec.scaleT2,
    ...used,
    temperatureFactor: factor,
    distillWeight,
    ceWeight,
    loss: `${distillWeight} * mean_b ${divergence.name}(p_T, q_T) + ${ceWeight} * CE(labels)`
  }
}
