import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import type { Metrics, SoftLabels } from "../../src/domain/Artifact.js"
import { denseLogits, EnsembleKind, EvaluateSoftKind } from "../../src/nodes/ensemble.js"
import { topkOf } from "../../src/nodes/generate.js"
import { runKind } from "../fixtures/context.js"

const C = 3

const soft = (logits: Array<Array<number>>, ids: Array<number>, labels: Array<number>, teacher: string): SoftLabels => ({
  _tag: "SoftLabels",
  split: "train",
  numClasses: C,
  ids: Int32Array.from(ids),
  labels: Int32Array.from(labels),
  logits: Float32Array.from(logits.flat()),
  teachers: [teacher]
})

const softmax = (row: ReadonlyArray<number>): Array<number> => {
  const max = Math.max(...row)
  const e = row.map((v) => Math.exp(v - max))
  const z = e.reduce((a, b) => a + b, 0)
  return e.map((v) => v / z)
}

const rows = (s: SoftLabels): Array<Array<number>> =>
  Array.from({ length: s.ids.length }, (_, i) => Array.from(s.logits!.subarray(i * C, (i + 1) * C)))

const close = (a: ReadonlyArray<number>, b: ReadonlyArray<number>, tol = 1e-5) =>
  a.forEach((v, i) => assert.approximately(v, b[i]!, tol, `${a} vs ${b}`))

const a = soft([[2, 0, -1], [0, 1, 0], [1, 1, 3]], [10, 11, 12], [0, 1, 2], "t1")
const b = soft([[0, 3, 0], [1, -2, 0.5], [0, 0, 0]], [12, 10, 11], [2, 0, 1], "t2")
const c = soft([[0.5, 0.5, 0]], [11], [1], "t1")

type Out = { readonly soft: SoftLabels }

beforeAll(async () => {
  await tf.setBackend("cpu")
})

describe("ensemble", () => {
  it("average_probs: softmax of the output is the weighted mixture of the inputs, rows matched by id", async () => {
    const { outputs } = await runKind<Out>(EnsembleKind, { weights: [1, 3] }, { a, b })
    assert.deepStrictEqual([...outputs.soft.ids], [10, 11, 12])
    assert.deepStrictEqual([...outputs.soft.labels], [0, 1, 2])
    // b's rows in a's order: id 10 is b's row 1, 11 its row 2, 12 its row 0.
    const bRows = [rows(b)[1]!, rows(b)[2]!, rows(b)[0]!]
    rows(outputs.soft).forEach((row, i) => {
      const mixture = softmax(rows(a)[i]!).map((p, j) => 0.25 * p + 0.75 * softmax(bRows[i]!)[j]!)
      close(softmax(row), mixture)
    })
  })

  it("average_logits: the output is the weighted mean of the logits", async () => {
    const { outputs } = await runKind<Out>(EnsembleKind, { mode: "average_logits" }, { a, b })
    const bRows = [rows(b)[1]!, rows(b)[2]!, rows(b)[0]!]
    rows(outputs.soft).forEach((row, i) => close(row, rows(a)[i]!.map((v, j) => (v + bRows[i]![j]!) / 2)))
  })

  it("keeps the examples every input covers, and names the teachers once each", async () => {
    const { outputs, recorded } = await runKind<Out>(EnsembleKind, {}, { a, b, c })
    assert.deepStrictEqual([...outputs.soft.ids], [11])
    assert.deepStrictEqual(outputs.soft.teachers, ["t1", "t2"])
    const dropped = recorded.metrics.find((m) => m.name === "dropped")
    assert.strictEqual(dropped?.value, 2)
    const third = [rows(a)[1]!, rows(b)[2]!, rows(c)[0]!].map(softmax)
    close(softmax(rows(outputs.soft)[0]!), [0, 1, 2].map((j) => third.reduce((s, p) => s + p[j]! / 3, 0)))
  })

  it("makes a top-k input dense by spreading its tail mass evenly", async () => {
    const dense = Float32Array.from([3, 1, 0, 0, 2, 1])
    const top1: SoftLabels = { ...soft([[3, 1, 0], [0, 2, 1]], [1, 2], [0, 1], "t"), logits: undefined, topk: topkOf(dense, 2, C, 1) }
    const logits = denseLogits(top1)
    // Row 0: the top class keeps 3; classes 1 and 2 share log(e^1 + e^0), each log((e + 1) / 2).
    close(Array.from(logits.subarray(0, 3)), [3, Math.log((Math.E + 1) / 2), Math.log((Math.E + 1) / 2)])
    // The top class's probability is the same as in the dense row.
    assert.approximately(softmax(Array.from(logits.subarray(3, 6)))[1]!, softmax([0, 2, 1])[1]!, 1e-6)
  })

  it("rejects weights that do not match the inputs, and leaks no tensors", async () => {
    const before = tf.memory().numTensors
    const error = await runKind(EnsembleKind, { weights: [1] }, { a, b }).then(() => undefined, (e: Error) => e)
    assert.match(String(error?.message), /weights has 1 entries but 2 inputs are wired \(a, b\)/)
    await runKind(EnsembleKind, {}, { a, b })
    assert.strictEqual(tf.memory().numTensors, before)
  })
})

describe("evaluate_soft", () => {
  it("measures soft labels against their labels", async () => {
    const { outputs } = await runKind<{ readonly metrics: Metrics }>(EvaluateSoftKind, {}, { soft: a })
    // a predicts 0, 1 (tie 0/1/0 -> class 1), 2: all right.
    assert.strictEqual(outputs.metrics.values.accuracy, 1)
    const nll = rows(a).reduce((s, row, i) => s - Math.log(softmax(row)[a.labels[i]!]!), 0) / 3
    assert.approximately(outputs.metrics.values.nll!, nll, 1e-6)
    assert.strictEqual(outputs.metrics.subject, "soft")
  })
})
