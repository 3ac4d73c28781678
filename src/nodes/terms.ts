/**
 * The train node's feature- and relation-based terms (params `hint` and `relation`, declared in
 * train.ts): the check that a `Features` artifact covers every training row (aligned by example id),
 * and what is recorded about them with the objective. The tensor side lives in train/ExtraTerms.ts.
 */
import { rowsOf, takeRows } from "../domain/Rows.js"
import type { Features, SplitName } from "../domain/Artifact.js"
import { featureSize } from "../domain/Artifact.js"
import { angleRatio } from "../train/ExtraTerms.js"
import type { HintParams, RelationParams } from "./train.js"


/**
 * (N, D) rows of `features` for the training rows (`ids` from `split`), or why they cannot be had: a
 * different split, or an id the features do not cover.
 */
export const alignFeatures = (
  features: Features,
  split: SplitName,
  ids: Int32Array
): { readonly values: Float32Array; readonly width: number } | { readonly problem: string } => {
  const width = featureSize(features.shape)
  if (features.split !== split) {
    return { problem: `they cover the ${features.split} split but the student trains on the ${split} split; set the features node's split: ${split}` }
  }
  const found = rowsOf(features.ids, ids)
  if ("missing" in found) return { problem: `they have no row for example ${found.missing} of the ${split} split` }
  return { values: takeRows(features.values, width, found.rows), width }
}

const hintFormula = (h: HintParams, teacherLayer: string): string =>
  h.loss === "mse"
    ? `mean_bj (s_b W + b - t_b)_j^2 with t = teacher ${teacherLayer}, s = student ${h.studentLayer}`
    : `mean_b (1 - cos(t_b, s_b W + b)) with t = teacher ${teacherLayer}, s = student ${h.studentLayer}`

const relationFormula = (r: RelationParams): string =>
  r.loss === "distance" ? "RKD-D(t, s)" : r.loss === "angle" ? "RKD-A(t, s)" : `RKD-D(t, s) + ${angleRatio} RKD-A(t, s)`

/** What is recorded about a hint: the layers, the projection, the loss and its weight. */
export const describeHint = (h: HintParams, teacher: Features, studentWidth: number): Record<string, string | number> => ({
  paper: "Romero et al. 2015, FitNets: Hints for Thin Deep Nets",
  teacherModel: teacher.model ?? "unknown",
  teacherLayer: teacher.layer,
  studentLayer: h.studentLayer,
  projection: `linear ${studentWidth} -> ${featureSize(teacher.shape)} (learned jointly, discarded)`,
  loss: h.loss,
  weight: h.weight,
  formula: hintFormula(h, teacher.layer)
})

/** What is recorded about a relation term. */
export const describeRelation = (r: RelationParams, teacher: Features): Record<string, string | number> => ({
  paper: "Park et al. 2019, Relational Knowledge Distillation",
  teacherModel: teacher.model ?? "unknown",
  teacherLayer: teacher.layer,
  studentLayer: r.layer,
  loss: r.loss,
  weight: r.weight,
  ...(r.loss === "both" ? { angleRatio } : {}),
  formula: `${relationFormula(r)} over each batch, t = teacher ${teacher.layer}, s = student ${r.layer}`
})

/** The objective's `loss` line with the extra terms appended. */
export const totalLoss = (base: string, hint?: HintParams, relation?: RelationParams): string =>
  [
    base,
    ...(hint !== undefined ? [`${hint.weight} * hint_${hint.loss}(teacher, student ${hint.studentLayer} projected)`] : []),
    ...(relation !== undefined ? [`${relation.weight} * (${relationFormula(relation)})`] : [])
  ].join(" + ")
