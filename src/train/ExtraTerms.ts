/**
 * Feature-based and relation-based distillation terms, packaged for the trainer's `extra` hook: each
 * holds its teacher features on the device (uploaded once, gathered per batch by row index) and any
 * variables of its own, and adds `weight * loss` to the objective.
 *
 * - Hint (FitNets, Romero et al. 2015): a student layer (B, Ds) goes through a learned linear
 *   projection r(s) = s W + b, W (Ds, Dt), to the teacher layer's width and is regressed onto the
 *   teacher's activations (B, Dt) with MSE or cosine (losses/hint.ts). W and b are trained jointly
 *   with the student and thrown away afterwards.
 * - Relation (RKD, Park et al. 2019): the student layer's batch geometry (pairwise distances and/or
 *   angles) is matched to the teacher's (losses/rkd.ts); widths may differ, nothing is learned.
 *   `both` is L_D + 2 L_A, the paper's 1 : 2 ratio of distance to angle weights.
 */
import * as tf from "@tensorflow/tfjs"
import { deriveSeed, makeRng } from "../domain/Random.js"
import type { HintKind } from "../losses/hint.js"
import { hintLoss } from "../losses/hint.js"
import { rkdAngleLoss, rkdDistanceLoss } from "../losses/rkd.js"
import type { ExtraLoss } from "./Contract.js"

export type RelationKind = "distance" | "angle" | "both"

/** An extra loss term that owns device memory: call `dispose` once training is over. */
export interface ExtraTerm extends ExtraLoss {
  readonly dispose: () => void
}

/** Teacher features for every training row, aligned with the train rows: (N, D) row-major. */
export interface TeacherFeatures {
  readonly values: Float32Array
  readonly width: number
}

const upload = (t: TeacherFeatures): tf.Tensor2D => {
  const n = t.values.length / t.width
  if (!Number.isInteger(n)) throw new RangeError(`teacher features hold ${t.values.length} values, not a multiple of ${t.width}`)
  return tf.tensor2d(t.values, [n, t.width])
}

const studentLayerOf = (
  forward: { readonly features: Record<string, tf.Tensor2D> },
  layer: string
): tf.Tensor2D => {
  const s = forward.features[layer]
  if (s === undefined) {
    throw new RangeError(`the student has no layer '${layer}'; its layers are: ${Object.keys(forward.features).join(", ")}`)
  }
  return s
}

export interface HintTermOptions {
  readonly teacher: TeacherFeatures
  readonly studentLayer: string
  /** Width Ds of the student layer (the projection's input). */
  readonly studentWidth: number
  readonly loss: HintKind
  readonly weight: number
  /** Seeds the projection's Glorot-uniform initial values. */
  readonly seed: number
}

/** weight * hint(teacher_b, s_b W + b) with a fresh, seeded projection (W, b). */
export const hintTerm = (o: HintTermOptions): ExtraTerm => {
  const [ds, dt] = [o.studentWidth, o.teacher.width]
  const rng = makeRng(deriveSeed(o.seed, "hint-projection"))
  const limit = Math.sqrt(6 / (ds + dt))
  const init = new Float32Array(ds * dt)
  for (let i = 0; i < init.length; i++) init[i] = (2 * rng.next() - 1) * limit
  const teacher = upload(o.teacher)
  // Inside tidy: tf.variable shares the initial tensor's data, so the tensor itself is freed here.
  const kernel = tf.tidy(() => tf.variable(tf.tensor2d(init, [ds, dt]), true))
  const bias = tf.tidy(() => tf.variable(tf.zeros([dt]), true))
  return {
    variables: [kernel, bias],
    loss: (forward, rows) =>
      tf.tidy(() => {
        const s = studentLayerOf(forward, o.studentLayer) // (B, Ds)
        const projected = tf.add(tf.matMul(s, kernel), bias) as tf.Tensor2D // (B, Dt)
        const t = tf.gather(teacher, rows) // (B, Dt) constants: no gradient flows to the teacher
        return tf.mul(hintLoss(o.loss, t, projected), o.weight) as tf.Scalar
      }),
    dispose: () => tf.dispose([teacher, kernel, bias])
  }
}

export interface RelationTermOptions {
  readonly teacher: TeacherFeatures
  readonly studentLayer: string
  readonly loss: RelationKind
  readonly weight: number
}

/** The factor on the angle loss in `both` (Park et al. 2019 use lambda_A = 2 lambda_D). */
export const angleRatio = 2

/** weight * (L_D, L_A or L_D + 2 L_A) over the batch's teacher and student embeddings. */
export const relationTerm = (o: RelationTermOptions): ExtraTerm => {
  const teacher = upload(o.teacher)
  return {
    variables: [],
    loss: (forward, rows) =>
      tf.tidy(() => {
        const s = studentLayerOf(forward, o.studentLayer) // (B, Ds)
        // A batch of one has no pairs: the term is 0 for that (last, short) batch.
        if (s.shape[0] < 2) return tf.scalar(0)
        const t = tf.gather(teacher, rows) // (B, Dt)
        const terms: Array<tf.Scalar> = []
        if (o.loss !== "angle") terms.push(rkdDistanceLoss(t, s))
        if (o.loss !== "distance") terms.push(tf.mul(rkdAngleLoss(t, s), o.loss === "both" ? angleRatio : 1) as tf.Scalar)
        return tf.mul(tf.addN(terms), o.weight) as tf.Scalar
      }),
    dispose: () => teacher.dispose()
  }
}

/** Several terms as one: their sum, their variables together; undefined when there are none. */
export const combineTerms = (terms: ReadonlyArray<ExtraTerm>): ExtraTerm | undefined => {
  if (terms.length === 0) return undefined
  if (terms.length === 1) return terms[0]
  return {
    variables: terms.flatMap((t) => t.variables),
    loss: (forward, rows) => tf.tidy(() => tf.addN(terms.map((t) => t.loss(forward, rows))) as tf.Scalar),
    dispose: () => terms.forEach((t) => t.dispose())
  }
}
