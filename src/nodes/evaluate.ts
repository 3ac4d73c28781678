/**
 * The `evaluate` node kind: measures a model on a split: accuracy, error count, negative log-likelihood,
 * expected calibration error, parameter count and inference latency; with a teacher, the student's
 * fidelity to it (top-1 agreement and mean KL(teacher || student)). Every example's prediction lands in
 * the results store, so SQL can ask where a student fails.
 */
import { Clock, Effect, Schema } from "effect"
import type { SplitName } from "../domain/Artifact.js"
import { parameterCount } from "../domain/Artifact.js"
import type { ExampleRow } from "./NodeKind.js"
import { defineKind, NodeError, onRun } from "./NodeKind.js"
import { SplitParam } from "./generate.js"

export const EvaluateParams = Schema.Struct({
  split: Schema.optionalWith(SplitParam, { default: () => "test" as const }).annotations({
    description: "The split the model is measured on"
  }),
  eceBins: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 15 }).annotations({
    description: "Equal-width confidence bins for the expected calibration error"
  }),
  latencyBatch: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 256 }).annotations({
    description: "Batch size of the latency measurement"
  })
})

/** (N, C) logits -> (N, C) log-probabilities, row by row, numerically stable. */
export const logSoftmaxRows = (logits: Float32Array, n: number, C: number): Float64Array => {
  const out = new Float64Array(n * C)
  for (let i = 0; i < n; i++) {
    let max = -Infinity
    for (let c = 0; c < C; c++) max = Math.max(max, logits[i * C + c]!)
    let z = 0
    for (let c = 0; c < C; c++) z += Math.exp(logits[i * C + c]! - max)
    const logZ = max + Math.log(z)
    for (let c = 0; c < C; c++) out[i * C + c] = logits[i * C + c]! - logZ
  }
  return out
}

export interface Evaluation {
  readonly accuracy: number
  readonly errors: number
  readonly examples: number
  /** Mean negative log-likelihood of the true labels, in nats. */
  readonly nll: number
  /** Expected calibration error: sum over bins of |accuracy - confidence| weighted by bin size. */
  readonly ece: number
  readonly predictions: Int32Array
  readonly confidences: Float64Array
  readonly losses: Float64Array
}

/** Classification metrics of logits against labels (labels of -1 are skipped). */
export const evaluateLogits = (logits: Float32Array, labels: Int32Array, C: number, bins: number): Evaluation => {
  const n = labels.length
  const logp = logSoftmaxRows(logits, n, C)
  const predictions = new Int32Array(n)
  const confidences = new Float64Array(n)
  const losses = new Float64Array(n)
  const binCount = new Float64Array(bins)
  const binCorrect = new Float64Array(bins)
  const binConfidence = new Float64Array(bins)
  let correct = 0
  let labelled = 0
  let nll = 0
  for (let i = 0; i < n; i++) {
    let arg = 0
    for (let c = 1; c < C; c++) if (logp[i * C + c]! > logp[i * C + arg]!) arg = c
    predictions[i] = arg
    confidences[i] = Math.exp(logp[i * C + arg]!)
    const y = labels[i]!
    if (y < 0) continue
    labelled++
    const hit = arg === y ? 1 : 0
    correct += hit
    losses[i] = -logp[i * C + y]!
    nll += losses[i]!
    const b = Math.min(bins - 1, Math.floor(confidences[i]! * bins))
    binCount[b]!++
    binCorrect[b]! += hit
    binConfidence[b]! += confidences[i]!
  }
  let ece = 0
  for (let b = 0; b < bins; b++) {
    if (binCount[b]! > 0) ece += Math.abs(binCorrect[b]! - binConfidence[b]!) / Math.max(1, labelled)
  }
  return {
    accuracy: labelled > 0 ? correct / labelled : 0,
    errors: labelled - correct,
    examples: labelled,
    nll: labelled > 0 ? nll / labelled : 0,
    ece,
    predictions,
    confidences,
    losses
  }
}

/** One examples row per example of an evaluation (prediction, confidence, loss), about `subject`. */
export const evaluationRows = (
  e: Evaluation,
  split: SplitName,
  ids: ArrayLike<number>,
  labels: ArrayLike<number>,
  subject: string
): Array<ExampleRow> =>
  Array.from({ length: ids.length }, (_, i) => ({
    split,
    exampleId: ids[i]!,
    label: labels[i]!,
    subject,
    prediction: e.predictions[i]!,
    confidence: e.confidences[i]!,
    loss: e.losses[i]!
  }))

/** Top-1 agreement and mean KL(teacher || student) over the rows, both at T = 1. */
export const fidelity = (teacher: Float32Array, student: Float32Array, n: number, C: number) => {
  const lp = logSoftmaxRows(teacher, n, C)
  const lq = logSoftmaxRows(student, n, C)
  let agree = 0
  let kl = 0
  for (let i = 0; i < n; i++) {
    let ap = 0
    let aq = 0
    for (let c = 0; c < C; c++) {
      const j = i * C + c
      if (lp[j]! > lp[i * C + ap]!) ap = c
      if (lq[j]! > lq[i * C + aq]!) aq = c
      kl += Math.exp(lp[j]!) * (lp[j]! - lq[j]!)
    }
    if (ap === aq) agree++
  }
  return { agreement: n > 0 ? agree / n : 0, klTeacherStudent: n > 0 ? kl / n : 0 }
}

export const EvaluateKind = defineKind({
  kind: "evaluate",
  version: 1,
  description: "Measures a model on a split: accuracy, errors, NLL, ECE, size, latency; fidelity to a teacher",
  params: EvaluateParams,
  inputs: {
    model: { type: "Model", description: "the model to evaluate" },
    data: { type: "Dataset", description: "the dataset holding the split" },
    teacher: { type: "Model", optional: true, description: "a teacher, to measure the student's fidelity to it" }
  },
  outputs: { metrics: "Metrics" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params, inputs } = ctx
      const split = inputs.data.splits[params.split]
      const n = split.y.length
      const C = inputs.model.numClasses
      const subject = ctx.inputNodes.model ?? ctx.nodeId
      const fail = (message: string, cause?: unknown) => new NodeError({ node: ctx.nodeId, kind: "evaluate", message, cause })
      if (n === 0) return yield* fail(`the ${params.split} split of dataset '${inputs.data.name}' is empty`)
      const { loadNetwork, predictLogits } = yield* onRun(() => import("../models/Network.js"))
      const net = loadNetwork(inputs.model)
      const timed = yield* Effect.gen(function* () {
        const predict = Effect.promise(() => predictLogits(net, split.x, n, params.latencyBatch))
        const logits = yield* predict
        // Latency: the median of three timed passes after the warm-up pass above.
        const times: Array<number> = []
        for (let r = 0; r < 3; r++) {
          const t0 = yield* Clock.currentTimeNanos
          yield* predict
          times.push(Number((yield* Clock.currentTimeNanos) - t0) / 1e6)
        }
        times.sort((a, b) => a - b)
        return { logits, latencyMs: times[1]! / n }
      }).pipe(
        Effect.catchAllDefect((cause) => Effect.fail(fail(`could not run the model: ${String(cause)}`, cause))),
        Effect.ensuring(Effect.sync(() => net.dispose()))
      )
      const e = evaluateLogits(timed.logits, split.y, C, params.eceBins)
      const values: Record<string, number> = {
        accuracy: e.accuracy,
        errors: e.errors,
        examples: e.examples,
        nll: e.nll,
        ece: e.ece,
        params: parameterCount(inputs.model),
        latency_ms_per_example: timed.latencyMs
      }
      if (inputs.teacher !== undefined) {
        const teacherNet = loadNetwork(inputs.teacher)
        const teacherLogits = yield* Effect.promise(() => predictLogits(teacherNet, split.x, n)).pipe(
          Effect.ensuring(Effect.sync(() => teacherNet.dispose()))
        )
        const fid = fidelity(teacherLogits, timed.logits, n, C)
        values.agreement = fid.agreement
        values.fidelity_kl = fid.klTeacherStudent
      }
      for (const [name, value] of Object.entries(values)) ctx.metric({ name, value })
      ctx.examples(evaluationRows(e, params.split, split.ids, split.y, subject))
      return { metrics: { _tag: "Metrics" as const, subject, values } }
    })
})
