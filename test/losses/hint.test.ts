import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { hintLoss, type HintKind } from "../../src/losses/hint.js"
import {
  assertClose,
  cosineDistance,
  makeRng,
  type Matrix,
  mean,
  numericalGradient,
  randomMatrix,
  tensor2d
} from "./reference.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
})

const refHint = (kind: HintKind, teacher: Matrix, student: Matrix): number =>
  kind === "mse"
    ? mean(teacher.flatMap((row, b) => row.map((t, j) => (student[b]![j]! - t) ** 2)))
    : mean(teacher.map((row, b) => cosineDistance(row, student[b]!)))

describe("hintLoss", () => {
  const rng = makeRng(21)
  const teacher = randomMatrix(rng, 5, 6)
  const student = randomMatrix(rng, 5, 6)

  for (const kind of ["mse", "cosine"] as const) {
    it(`${kind}: value and gradient match the reference`, () => {
      const [value, grad] = tf.tidy(() => {
        const t = tensor2d(teacher)
        const { value, grad } = tf.valueAndGrad((s: tf.Tensor2D) => hintLoss(kind, t, s))(
          tensor2d(student)
        )
        return [value.dataSync()[0]!, Array.from(grad.dataSync())] as const
      })
      assert.approximately(value, refHint(kind, teacher, student), 1e-5)
      assertClose(grad, numericalGradient((s) => refHint(kind, teacher, s), student).flat(), 1e-5, 1e-3, kind)
    })
  }

  it("is zero for equal features; cosine ignores scale, mse does not", () => {
    const scaled = teacher.map((row) => row.map((x) => 3 * x))
    const at = (kind: HintKind, s: Matrix) =>
      tf.tidy(
        () => hintLoss(kind, tensor2d(teacher), tensor2d(s)).dataSync()[0]!
      )
    assert.approximately(at("mse", teacher), 0, 1e-7)
    assert.approximately(at("cosine", teacher), 0, 1e-6)
    assert.approximately(at("cosine", scaled), 0, 1e-6)
    assert.isAbove(at("mse", scaled), 1)
  })

  it("rejects mismatched shapes and leaks no tensors", () => {
    const before = tf.memory().numTensors
    assert.throws(() => tf.tidy(() => hintLoss("mse", tf.zeros([4, 3]), tf.zeros([4, 2]))), /equal shapes/)
    tf.tidy(() => hintLoss("cosine", tf.ones([4, 3]), tf.zeros([4, 3]))).dispose()
    assert.strictEqual(tf.memory().numTensors, before)
  })
})
