/**
 * Plain-array facts about a teacher's outputs for one example (prediction, confidence, entropy), for
 * dense logits and for top-k logits with their tail bucket. Used by generate, filter and evaluate to
 * describe examples; the training math itself lives in losses/.
 */
import type { SoftLabels } from "./Artifact.js"

export interface RowStats {
  readonly prediction: number
  readonly confidence: number
  /** Shannon entropy in nats of the teacher distribution (top-k: over k classes plus the tail bucket). */
  readonly entropy: number
}

/** Softmax statistics of one row of logits (length C), stable in the presence of large logits. */
export const logitStats = (logits: ArrayLike<number>, offset = 0, length = logits.length): RowStats => {
  let max = -Infinity
  let arg = 0
  for (let c = 0; c < length; c++) {
    const v = logits[offset + c]!
    if (v > max) {
      max = v
      arg = c
    }
  }
  let z = 0
  for (let c = 0; c < length; c++) z += Math.exp(logits[offset + c]! - max)
  const logZ = Math.log(z)
  let entropy = 0
  for (let c = 0; c < length; c++) {
    const logp = logits[offset + c]! - max - logZ
    entropy -= Math.exp(logp) * logp
  }
  return { prediction: arg, confidence: 1 / z, entropy }
}

/** Statistics of example `i` of a SoftLabels artifact. */
export const softLabelStats = (soft: SoftLabels, i: number): RowStats => {
  const C = soft.numClasses
  if (soft.logits !== undefined) return logitStats(soft.logits, i * C, C)
  const topk = soft.topk!
  const k = topk.k
  // Top-k values are sorted, so the first is the prediction; the tail bucket joins the normaliser.
  const tail = topk.tailLogSumExp[i]!
  const values = Array.from(topk.values.subarray(i * k, (i + 1) * k))
  const all = Number.isFinite(tail) ? [...values, tail] : values
  const max = Math.max(...all)
  const logZ = max + Math.log(all.reduce((acc, v) => acc + Math.exp(v - max), 0))
  const entropy = all.reduce((acc, v) => acc - Math.exp(v - logZ) * (v - logZ), 0)
  return { prediction: topk.indices[i * k]!, confidence: Math.exp(values[0]! - logZ), entropy }
}
