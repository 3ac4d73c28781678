import { assert, describe, it } from "@effect/vitest"
import type { SoftLabels } from "../../src/domain/Artifact.js"
import { softLabelStats } from "../../src/domain/SoftLabels.js"
import { evaluateLogits, fidelity } from "../../src/nodes/evaluate.js"
import { decide, subset } from "../../src/nodes/filter.js"
import { topkOf } from "../../src/nodes/generate.js"
import { gatherRows } from "../../src/nodes/train.js"

const soft = (logits: Array<Array<number>>, labels: Array<number>): SoftLabels => ({
  _tag: "SoftLabels",
  split: "train",
  numClasses: logits[0]!.length,
  ids: Int32Array.from(labels.map((_, i) => 100 + i)),
  labels: Int32Array.from(labels),
  logits: Float32Array.from(logits.flat()),
  teachers: ["t"]
})

describe("generate", () => {
  it("keeps the k largest logits, sorted, with the log-sum-exp of the rest", () => {
    const logits = Float32Array.from([1, 5, 3, 2, 0, 0, 0, 9])
    const t = topkOf(logits, 2, 4, 2)
    assert.deepStrictEqual([...t.indices], [1, 2, 3, 0])
    assert.deepStrictEqual([...t.values], [5, 3, 9, 0])
    assert.closeTo(t.tailLogSumExp[0]!, Math.log(Math.exp(1) + Math.exp(2)), 1e-6)
    assert.closeTo(t.tailLogSumExp[1]!, Math.log(2), 1e-6)
    assert.strictEqual(topkOf(logits, 2, 4, 4).tailLogSumExp[0], -Infinity)
  })

  it("top-k statistics match the dense ones for the prediction and confidence", () => {
    const dense = soft([[1, 5, 3, 2]], [1])
    const sparse: SoftLabels = { ...dense, logits: undefined, topk: topkOf(dense.logits!, 1, 4, 2) }
    const a = softLabelStats(dense, 0)
    const b = softLabelStats(sparse, 0)
    assert.strictEqual(b.prediction, a.prediction)
    assert.closeTo(b.confidence, a.confidence, 1e-6)
  })
})

describe("filter", () => {
  const s = soft([[4, 0, 0], [1, 1, 1], [0, 3, 0], [0, 0, 0.5]], [0, 1, 2, 2])
  it("by confidence keeps what is at least as confident as the threshold, and says why", () => {
    const d = decide({ by: "confidence", min: 0.8 }, s)
    assert.deepStrictEqual(d.map((x) => x.keep), [true, false, true, false])
    assert.match(d[1]!.reason, /^confidence 0\.333 < 0\.8$/)
  })
  it("by agreement drops examples whose teacher prediction differs from the label", () => {
    const d = decide({ by: "agreement" }, s)
    assert.deepStrictEqual(d.map((x) => x.keep), [true, false, false, true])
    assert.strictEqual(d[2]!.reason, "teacher predicts 1, label is 2")
  })
  it("by top fraction keeps the most confident share", () => {
    const d = decide({ by: "top_fraction", fraction: 0.5 }, s)
    assert.deepStrictEqual(d.map((x) => x.keep), [true, false, true, false])
  })
  it("by entropy keeps low-entropy examples", () => {
    const d = decide({ by: "entropy", max: 0.5 }, s)
    assert.deepStrictEqual(d.map((x) => x.keep), [true, false, true, false])
  })
  it("subsets every per-example array consistently", () => {
    const sub = subset(s, [false, true, false, true])
    assert.deepStrictEqual([...sub.ids], [101, 103])
    assert.deepStrictEqual([...sub.labels], [1, 2])
    assert.deepStrictEqual([...sub.logits!], [1, 1, 1, 0, 0, 0.5])
  })
})

describe("evaluate", () => {
  it("computes accuracy, errors, NLL and ECE against a hand calculation", () => {
    // Two examples, 2 classes: one confidently right (p = e^2/(1+e^2)), one wrong at p = 0.5.
    const logits = Float32Array.from([2, 0, 0, 0])
    const e = evaluateLogits(logits, Int32Array.from([0, 1]), 2, 10)
    const p = Math.exp(2) / (1 + Math.exp(2))
    assert.strictEqual(e.accuracy, 0.5)
    assert.strictEqual(e.errors, 1)
    assert.closeTo(e.nll, (-Math.log(p) - Math.log(0.5)) / 2, 1e-9)
    // Bins: p ~ 0.88 (correct) alone in its bin, 0.5 (wrong) alone in its bin.
    assert.closeTo(e.ece, (Math.abs(1 - p) + Math.abs(0 - 0.5)) / 2, 1e-9)
  })
  it("skips unlabelled examples", () => {
    const e = evaluateLogits(Float32Array.from([2, 0, 0, 3]), Int32Array.from([0, -1]), 2, 10)
    assert.strictEqual(e.examples, 1)
    assert.strictEqual(e.accuracy, 1)
  })
  it("fidelity is full agreement and zero KL for identical models", () => {
    const l = Float32Array.from([1, 2, 3, 3, 2, 1])
    const same = fidelity(l, l, 2, 3)
    assert.strictEqual(same.agreement, 1)
    assert.closeTo(same.klTeacherStudent, 0, 1e-12)
    const flipped = fidelity(l, Float32Array.from([3, 2, 1, 1, 2, 3]), 2, 3)
    assert.strictEqual(flipped.agreement, 0)
    assert.isAbove(flipped.klTeacherStudent, 0)
  })
})

describe("train", () => {
  it("gathers a transfer set's rows by example id, or names a missing id", () => {
    const split = { x: Float32Array.from([0, 0, 1, 1, 2, 2]), y: Int32Array.from([0, 1, 2]), ids: Int32Array.from([10, 11, 12]) }
    const rows = gatherRows(split, 2, Int32Array.from([12, 10]))
    assert.deepStrictEqual("x" in rows ? [...rows.x] : [], [2, 2, 0, 0])
    assert.deepStrictEqual(gatherRows(split, 2, Int32Array.from([13])), { missing: 13 })
  })
})
