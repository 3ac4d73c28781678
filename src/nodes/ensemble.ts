/**
 * Multi-teacher distillation: the `ensemble` node kind combines up to four teachers' SoftLabels (ports
 * `a`, required, and `b`, `c`, `d`, optional) into the dense SoftLabels of one teacher, with weights
 * normalised to sum to 1 and `mode` average_probs (log of the weighted mixture of softmaxes) or
 * average_logits (weighted mean of logits); see losses/ensemble.ts. The `evaluate_soft` kind measures
 * SoftLabels (a teacher's, or an ensemble's) against their labels, as `evaluate` measures a model.
 *
 * Rows are matched by example id: the ensemble keeps the examples of `a` (in its order) that every
 * other input covers, so teachers whose outputs went through different filters can still be combined.
 * A top-k input is made dense first by spreading its tail mass evenly over the C - k classes left out
 * (each gets the logit tailLogSumExp - log(C - k), the rule the divergences use for the tail bucket).
 */
import { rowsOf, takeRows } from "../domain/Rows.js"
import { Effect, Schema } from "effect"
import type { SoftLabels } from "../domain/Artifact.js"
import { softLabelStats } from "../domain/SoftLabels.js"
import { evaluateLogits, evaluationRows } from "./evaluate.js"
import type { ExampleRow } from "./NodeKind.js"
import { defineKind, NodeError, onRun } from "./NodeKind.js"

/** The input ports, in the order `weights` refers to them. */
export const ensemblePorts = ["a", "b", "c", "d"] as const

export const EnsembleParams = Schema.Struct({
  mode: Schema.optionalWith(Schema.Literal("average_probs", "average_logits"), { default: () => "average_probs" as const }).annotations({
    description: "average_probs: the weighted mixture of the teachers' distributions (logits log sum_i w_i softmax(z_i)); average_logits: sum_i w_i z_i"
  }),
  weights: Schema.optional(Schema.Array(Schema.NonNegative)).annotations({
    description: "One non-negative weight per wired input, in port order a, b, c, d (absent: equal weights); normalised to sum to 1"
  })
})

/** (N, C) dense logits at T = 1 of a SoftLabels artifact; a top-k one gets its tail spread evenly. */
export const denseLogits = (soft: SoftLabels): Float32Array => {
  if (soft.logits !== undefined) return soft.logits
  const { k, indices, values, tailLogSumExp } = soft.topk!
  const C = soft.numClasses
  const n = soft.ids.length
  const out = new Float32Array(n * C)
  for (let i = 0; i < n; i++) {
    const tail = k < C ? tailLogSumExp[i]! - Math.log(C - k) : -Infinity
    out.fill(tail, i * C, (i + 1) * C)
    for (let j = 0; j < k; j++) out[i * C + indices[i * k + j]!] = values[i * k + j]!
  }
  return out
}

/** Rows of `soft` as dense logits in the order of `ids` (each id must be present). */
const rowsById = (soft: SoftLabels, ids: Int32Array): Float32Array => {
  const found = rowsOf(soft.ids, ids)
  if ("missing" in found) throw new Error(`the soft labels have no row for example ${found.missing}`)
  return takeRows(denseLogits(soft), soft.numClasses, found.rows)
}

/** Per-example rows (prediction, confidence, entropy) of a SoftLabels artifact, about `subject`. */
const softRows = (soft: SoftLabels, subject: string): Array<ExampleRow> =>
  Array.from({ length: soft.ids.length }, (_, i) => {
    const s = softLabelStats(soft, i)
    return {
      split: soft.split,
      exampleId: soft.ids[i]!,
      label: soft.labels[i]!,
      subject,
      prediction: s.prediction,
      confidence: s.confidence,
      entropy: s.entropy
    }
  })

export const EnsembleKind = defineKind({
  kind: "ensemble",
  version: 1,
  description: "Combines several teachers' soft labels into one teacher's (average of probabilities or of logits)",
  params: EnsembleParams,
  inputs: {
    a: { type: "SoftLabels", description: "the first teacher's outputs (its examples and labels are kept)" },
    b: { type: "SoftLabels", optional: true, description: "a second teacher's outputs" },
    c: { type: "SoftLabels", optional: true, description: "a third teacher's outputs" },
    d: { type: "SoftLabels", optional: true, description: "a fourth teacher's outputs" }
  },
  outputs: { soft: "SoftLabels" },
  run: (ctx) =>
    Effect.gen(function* () {
      const fail = (message: string, cause?: unknown) => new NodeError({ node: ctx.nodeId, kind: "ensemble", message, cause })
      const wired = ensemblePorts.flatMap((port) => {
        const soft = ctx.inputs[port]
        return soft === undefined ? [] : [{ port, soft }]
      })
      const first = wired[0]!.soft
      const C = first.numClasses
      for (const { port, soft } of wired) {
        if (soft.numClasses !== C) return yield* fail(`input '${port}' has ${soft.numClasses} classes but input 'a' has ${C}`)
        if (soft.split !== first.split) return yield* fail(`input '${port}' covers the ${soft.split} split but input 'a' the ${first.split} split`)
      }
      const weights = ctx.params.weights ?? wired.map(() => 1)
      if (weights.length !== wired.length) {
        return yield* fail(`weights has ${weights.length} entries but ${wired.length} inputs are wired (${wired.map((w) => w.port).join(", ")}); give one weight per input, in that order`)
      }
      if (!(weights.reduce((a, b) => a + b, 0) > 0)) return yield* fail("weights must not all be 0")

      // The examples every input covers, in a's order.
      const covered = wired.slice(1).map(({ soft }) => new Set(soft.ids))
      const keep: Array<number> = []
      for (let i = 0; i < first.ids.length; i++) {
        if (covered.every((s) => s.has(first.ids[i]!))) keep.push(i)
      }
      if (keep.length === 0) return yield* fail("the inputs have no example in common")
      const ids = Int32Array.from(keep, (i) => first.ids[i]!)
      const labels = Int32Array.from(keep, (i) => first.labels[i]!)
      const n = ids.length

      const tf = yield* onRun(() => import("@tensorflow/tfjs"))
      const { ensembleTeachers } = yield* onRun(() => import("../losses/ensemble.js"))
      const logits = yield* Effect.tryPromise({
        try: async () => {
          const combined = tf.tidy(() =>
            ensembleTeachers(
              wired.map(({ soft }) => tf.tensor2d(rowsById(soft, ids), [n, C])),
              weights,
              ctx.params.mode
            )
          )
          try {
            return new Float32Array((await combined.data()) as Float32Array)
          } finally {
            combined.dispose()
          }
        },
        catch: (cause) => fail(`could not combine the teachers: ${cause instanceof Error ? cause.message : String(cause)}`, cause)
      })
      const teachers = [...new Set(wired.flatMap(({ soft }) => soft.teachers))]
      const soft: SoftLabels = { _tag: "SoftLabels", split: first.split, numClasses: C, ids, labels, logits, teachers }

      const total = weights.reduce((a, b) => a + b, 0)
      ctx.info({
        mode: ctx.params.mode,
        inputs: Object.fromEntries(wired.map(({ port, soft: s }, i) => [port, { teachers: s.teachers, weight: weights[i]! / total }])),
        teachers
      })
      const e = evaluateLogits(logits, labels, C, 15)
      ctx.metric({ name: "examples", value: n })
      ctx.metric({ name: "dropped", value: first.ids.length - n })
      ctx.metric({ name: "teacher_accuracy", value: e.accuracy })
      ctx.examples(softRows(soft, ctx.nodeId))
      return { soft }
    })
})

export const EvaluateSoftParams = Schema.Struct({
  eceBins: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 15 }).annotations({
    description: "Equal-width confidence bins for the expected calibration error"
  })
})

export const EvaluateSoftKind = defineKind({
  kind: "evaluate_soft",
  version: 1,
  description: "Measures soft labels (a teacher's or an ensemble's outputs on a split) against their labels",
  params: EvaluateSoftParams,
  inputs: { soft: { type: "SoftLabels", description: "the outputs to measure (e.g. generate or ensemble on the test split)" } },
  outputs: { metrics: "Metrics" },
  run: (ctx) =>
    Effect.gen(function* () {
      const soft = ctx.inputs.soft
      const subject = ctx.inputNodes.soft ?? ctx.nodeId
      const labelled = soft.labels.reduce((n, y) => n + (y >= 0 ? 1 : 0), 0)
      if (labelled === 0) {
        return yield* new NodeError({ node: ctx.nodeId, kind: "evaluate_soft", message: "the soft labels have no labelled example (made with unlabelled: true?)" })
      }
      const e = evaluateLogits(denseLogits(soft), soft.labels, soft.numClasses, ctx.params.eceBins)
      const values: Record<string, number> = { accuracy: e.accuracy, errors: e.errors, examples: e.examples, nll: e.nll, ece: e.ece }
      for (const [name, value] of Object.entries(values)) ctx.metric({ name, value })
      ctx.info({ split: soft.split, teachers: soft.teachers, topk: soft.topk?.k ?? null })
      ctx.examples(evaluationRows(e, soft.split, soft.ids, soft.labels, subject))
      return { metrics: { _tag: "Metrics" as const, subject, values } }
    })
})
