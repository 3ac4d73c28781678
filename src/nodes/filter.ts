/**
 * The `filter` node kind: keeps the transfer-set examples worth learning from, by teacher confidence,
 * entropy, agreement with the ground truth, or the most confident fraction. Every keep/drop decision is
 * recorded per example with its reason, so that SQL can ask what was dropped and why.
 */
import { Effect, Schema } from "effect"
import type { SoftLabels } from "../domain/Artifact.js"
import { softLabelStats } from "../domain/SoftLabels.js"
import type { ExampleRow } from "./NodeKind.js"
import { defineKind } from "./NodeKind.js"

const Probability = Schema.Number.pipe(Schema.between(0, 1))

export const FilterParams = Schema.Union(
  Schema.Struct({
    by: Schema.propertySignature(Schema.Literal("confidence")).annotations({
      description: "Keep examples whose teacher confidence (top probability) is at least min"
    }),
    min: Schema.optionalWith(Probability, { default: () => 0.9 }).annotations({
      description: "The smallest teacher confidence kept"
    })
  }),
  Schema.Struct({
    by: Schema.propertySignature(Schema.Literal("entropy")).annotations({
      description: "Keep examples whose teacher entropy is at most max"
    }),
    max: Schema.propertySignature(Schema.Number.pipe(Schema.nonNegative())).annotations({
      description: "The largest teacher entropy kept, in nats"
    })
  }),
  Schema.Struct({
    by: Schema.propertySignature(Schema.Literal("agreement")).annotations({
      description: "Keep examples whose teacher prediction equals the label (and unlabelled ones)"
    })
  }),
  Schema.Struct({
    by: Schema.propertySignature(Schema.Literal("top_fraction")).annotations({
      description: "Keep the most confident fraction of the examples"
    }),
    fraction: Schema.propertySignature(Probability).annotations({
      description: "The share of examples kept, most confident first"
    })
  })
)
export type FilterParams = typeof FilterParams.Type

/** Keep flags and reasons for every example of `soft`. */
export const decide = (
  params: FilterParams,
  soft: SoftLabels
): ReadonlyArray<{ readonly keep: boolean; readonly reason: string }> => {
  const n = soft.ids.length
  const stats = Array.from({ length: n }, (_, i) => softLabelStats(soft, i))
  const f = (v: number) => v.toFixed(3)
  switch (params.by) {
    case "confidence":
      return stats.map((s) => ({
        keep: s.confidence >= params.min,
        reason: `confidence ${f(s.confidence)} ${s.confidence >= params.min ? ">=" : "<"} ${params.min}`
      }))
    case "entropy":
      return stats.map((s) => ({
        keep: s.entropy <= params.max,
        reason: `entropy ${f(s.entropy)} ${s.entropy <= params.max ? "<=" : ">"} ${params.max}`
      }))
    case "agreement":
      return stats.map((s, i) => {
        const label = soft.labels[i]!
        if (label < 0) return { keep: true, reason: "unlabelled: kept" }
        return s.prediction === label
          ? { keep: true, reason: `teacher agrees with label ${label}` }
          : { keep: false, reason: `teacher predicts ${s.prediction}, label is ${label}` }
      })
    case "top_fraction": {
      const keepCount = Math.round(params.fraction * n)
      // Most confident first; ties by position so the choice is deterministic.
      const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => stats[b]!.confidence - stats[a]!.confidence || a - b)
      const rank = new Int32Array(n)
      order.forEach((i, r) => (rank[i] = r))
      return stats.map((s, i) => ({
        keep: rank[i]! < keepCount,
        reason: `confidence ${f(s.confidence)} ranks ${rank[i]! + 1} of ${n}; ${rank[i]! < keepCount ? "within" : "outside"} the top ${keepCount}`
      }))
    }
  }
}

/** The examples of `soft` whose flag is set, in order. */
export const subset = (soft: SoftLabels, keep: ReadonlyArray<boolean>): SoftLabels => {
  const rows = keep.flatMap((k, i) => (k ? [i] : []))
  const C = soft.numClasses
  const pick = <A extends Float32Array | Int32Array>(a: A, width: number, make: (n: number) => A): A => {
    const out = make(rows.length * width)
    rows.forEach((r, j) => out.set(a.subarray(r * width, (r + 1) * width), j * width))
    return out
  }
  const f32 = (n: number) => new Float32Array(n)
  const i32 = (n: number) => new Int32Array(n)
  return {
    ...soft,
    ids: pick(soft.ids, 1, i32),
    labels: pick(soft.labels, 1, i32),
    ...(soft.logits !== undefined ? { logits: pick(soft.logits, C, f32) } : {}),
    ...(soft.topk !== undefined
      ? {
          topk: {
            k: soft.topk.k,
            indices: pick(soft.topk.indices, soft.topk.k, i32),
            values: pick(soft.topk.values, soft.topk.k, f32),
            tailLogSumExp: pick(soft.topk.tailLogSumExp, 1, f32)
          }
        }
      : {})
  }
}

export const FilterKind = defineKind({
  kind: "filter",
  version: 1,
  description: "Keeps transfer-set examples by teacher confidence, entropy, agreement with labels or top fraction",
  params: FilterParams,
  inputs: { soft: { type: "SoftLabels", description: "the teacher's outputs to filter" } },
  outputs: { soft: "SoftLabels" },
  run: (ctx) =>
    Effect.sync(() => {
      const soft = ctx.inputs.soft
      const decisions = decide(ctx.params, soft)
      const rows: Array<ExampleRow> = decisions.map((d, i) => ({
        split: soft.split,
        exampleId: soft.ids[i]!,
        label: soft.labels[i]!,
        decision: d.keep ? "keep" : "drop",
        reason: d.reason
      }))
      ctx.examples(rows)
      const kept = decisions.filter((d) => d.keep).length
      ctx.metric({ name: "kept", value: kept })
      ctx.metric({ name: "dropped", value: decisions.length - kept })
      ctx.metric({ name: "kept_fraction", value: decisions.length > 0 ? kept / decisions.length : 0 })
      return { soft: subset(soft, decisions.map((d) => d.keep)) }
    })
})
