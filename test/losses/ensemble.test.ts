import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { ensembleTeachers, type EnsembleMode } from "../../src/losses/ensemble.js"
import { assertClose, makeRng, type Matrix, randomMatrix, softmax, tensor2d } from "./reference.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const combine = (teachers: ReadonlyArray<Matrix>, weights: ReadonlyArray<number>, mode: EnsembleMode) =>
  tf.tidy(() =>
    ensembleTeachers(
      teachers.map((t) => tensor2d(t)),
      weights,
      mode
    ).arraySync()
  )

describe("ensembleTeachers", () => {
  const rng = makeRng(44)
  const teachers = [randomMatrix(rng, 4, 6, 2), randomMatrix(rng, 4, 6, 2), randomMatrix(rng, 4, 6, 2)]
  const weights = [1, 2, 5]
  const w = weights.map((x) => x / 8)

  it("average_logits is the normalised weighted mean of the logits", () => {
    const out = combine(teachers, weights, "average_logits")
    out.forEach((row, b) =>
      assertClose(row, row.map((_, c) => teachers.reduce((s, t, i) => s + w[i]! * t[b]![c]!, 0)), 1e-5, 1e-5, "logits")
    )
  })

  it("average_probs returns logits whose softmax is the weighted mixture of the teachers", () => {
    const out = combine(teachers, weights, "average_probs")
    out.forEach((row, b) => {
      const mixture = row.map((_, c) => teachers.reduce((s, t, i) => s + w[i]! * softmax(t[b]!)[c]!, 0))
      assertClose(softmax(row), mixture, 1e-6, 1e-5, "probs")
      assertClose(row.map(Math.exp), mixture, 1e-6, 1e-5, "log-probs")
    })
  })

  it("is the teacher itself for one teacher, or for a one-hot weight", () => {
    const single = combine([teachers[0]!], [3], "average_logits")
    single.forEach((row, b) => assertClose(row, teachers[0]![b]!, 1e-6, 1e-6, "single"))
    const picked = combine(teachers, [0, 1, 0], "average_probs")
    picked.forEach((row, b) => assertClose(softmax(row), softmax(teachers[1]![b]!), 1e-6, 1e-5, "one-hot weight"))
  })

  it("rejects bad weights and shapes, and leaks no tensors", () => {
    const before = tf.memory().numTensors
    assert.throws(() => combine(teachers, [1, 2], "average_logits"), /3 teachers but 2 weights/)
    assert.throws(() => combine(teachers, [1, -1, 1], "average_probs"), /non-negative/)
    assert.throws(() => combine(teachers, [0, 0, 0], "average_probs"), /positive sum/)
    assert.throws(() => combine([teachers[0]!, randomMatrix(rng, 4, 5)], [1, 1], "average_logits"), /equal shapes/)
    assert.throws(() => combine([], [], "average_logits"), /at least one/)
    combine(teachers, weights, "average_probs")
    assert.strictEqual(tf.memory().numTensors, before)
  })
})
