/**
 * The `generate` node kind: runs a teacher model over a split of a dataset (the transfer set) and
 * outputs its logits at T = 1 for every example, so that one generation serves a whole temperature
 * sweep. With `topk`, only the k largest logits per example are kept, plus the log-sum-exp of the rest
 * (the tail bucket the divergences use; see losses/Buckets.ts).
 */
import { Effect, Schema } from "effect"
import type { SoftLabels } from "../domain/Artifact.js"
import { softLabelStats } from "../domain/SoftLabels.js"
import type { ExampleRow } from "./NodeKind.js"
import { defineKind, NodeError, onRun } from "./NodeKind.js"

export const SplitParam = Schema.Literal("train", "validation", "test")

export const GenerateParams = Schema.Struct({
  split: Schema.optionalWith(SplitParam, { default: () => "train" as const }).annotations({
    description: "Which split of the dataset is the transfer set"
  }),
  topk: Schema.optional(Schema.Int.pipe(Schema.positive())).annotations({
    description: "Keep only the k largest logits per example, plus one tail bucket (absent: keep all)"
  }),
  unlabelled: Schema.optionalWith(Schema.Boolean, { default: () => false }).annotations({
    description: "Treat the transfer set as unlabelled: labels are dropped (-1), so students learn from the teacher alone"
  })
})

/** Keeps the k largest of each row's C logits, sorted, and the log-sum-exp of the others. */
export const topkOf = (logits: Float32Array, n: number, C: number, k: number): NonNullable<SoftLabels["topk"]> => {
  const indices = new Int32Array(n * k)
  const values = new Float32Array(n * k)
  const tailLogSumExp = new Float32Array(n)
  const order = new Int32Array(C)
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * C, (i + 1) * C)
    for (let c = 0; c < C; c++) order[c] = c
    // Largest first; ties by class index so the result is deterministic.
    order.sort((a, b) => row[b]! - row[a]! || a - b)
    for (let j = 0; j < k; j++) {
      indices[i * k + j] = order[j]!
      values[i * k + j] = row[order[j]!]!
    }
    let max = -Infinity
    for (let j = k; j < C; j++) max = Math.max(max, row[order[j]!]!)
    let sum = 0
    for (let j = k; j < C; j++) sum += Math.exp(row[order[j]!]! - max)
    tailLogSumExp[i] = k >= C ? -Infinity : max + Math.log(sum)
  }
  return { k, indices, values, tailLogSumExp }
}

export const GenerateKind = defineKind({
  kind: "generate",
  version: 1,
  heavy: true,
  description: "Runs a teacher over a transfer set and outputs its soft labels (logits at T = 1, optionally top-k)",
  params: GenerateParams,
  inputs: {
    model: { type: "Model", description: "the teacher" },
    data: { type: "Dataset", description: "the dataset holding the transfer set" }
  },
  outputs: { soft: "SoftLabels" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params, inputs } = ctx
      const split = inputs.data.splits[params.split]
      const n = split.y.length
      const C = inputs.model.numClasses
      if (params.topk !== undefined && params.topk > C) {
        return yield* new NodeError({ node: ctx.nodeId, kind: "generate", message: `topk is ${params.topk} but the teacher has only ${C} classes` })
      }
      const { loadNetwork, predictLogits } = yield* onRun(() => import("../models/Network.js"))
      const logits = yield* Effect.tryPromise({
        try: async () => {
          const net = loadNetwork(inputs.model)
          try {
            return await predictLogits(net, split.x, n)
          } finally {
            net.dispose()
          }
        },
        catch: (cause) => new NodeError({ node: ctx.nodeId, kind: "generate", message: `could not run the teacher: ${String(cause)}`, cause })
      })
      const labels = params.unlabelled ? new Int32Array(n).fill(-1) : split.y
      const teacher = ctx.inputNodes.model ?? "teacher"
      const soft: SoftLabels = {
        _tag: "SoftLabels",
        split: params.split,
        numClasses: C,
        ids: split.ids,
        labels,
        ...(params.topk === undefined ? { logits } : { topk: topkOf(logits, n, C, params.topk) }),
        teachers: [teacher]
      }
      const rows: Array<ExampleRow> = []
      let correct = 0
      for (let i = 0; i < n; i++) {
        const s = softLabelStats(soft, i)
        if (s.prediction === split.y[i]) correct++
        rows.push({
          split: params.split,
          exampleId: split.ids[i]!,
          label: split.y[i]!,
          subject: teacher,
          prediction: s.prediction,
          confidence: s.confidence,
          entropy: s.entropy
        })
      }
      ctx.examples(rows)
      ctx.metric({ name: "examples", value: n })
      ctx.metric({ name: "teacher_accuracy", value: n > 0 ? correct / n : 0 })
      return { soft }
    })
})
