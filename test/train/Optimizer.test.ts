import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { backendCapabilities } from "../../src/backend/Capabilities.js"
import { clipByGlobalNorm, globalNorm, makeUpdater } from "../../src/train/Optimizer.js"

describe("gradient clipping by global norm", () => {
  it("scales every gradient by maxNorm / norm when the norm is larger, and leaves smaller ones alone", () => {
    tf.tidy(() => {
      const grads = { a: tf.tensor1d([3, 0]), b: tf.tensor2d([[0, 4]]) } // global norm 5
      assert.closeTo(globalNorm(grads).dataSync()[0]!, 5, 1e-6)
      const clipped = clipByGlobalNorm(grads, 1)
      assert.deepStrictEqual(Array.from(clipped.a!.dataSync()).map((x) => +x.toFixed(5)), [0.6, 0])
      assert.deepStrictEqual(Array.from(clipped.b!.dataSync()).map((x) => +x.toFixed(5)), [0, 0.8])
      assert.closeTo(globalNorm(clipped).dataSync()[0]!, 1, 1e-5)
      const kept = clipByGlobalNorm(grads, 10)
      assert.deepStrictEqual(Array.from(kept.a!.dataSync()), [3, 0])
    })
  })

  it("an updater with clipNorm steps on clipped gradients; setLearningRate changes the step and frees nothing it keeps", () => {
    const before = tf.memory().numTensors
    const init = tf.zeros([2])
    const w = tf.variable(init, true, "clip-test-w")
    init.dispose()
    const updater = makeUpdater({ type: "sgd", learningRate: 1 }, backendCapabilities(), { clipNorm: 1 })
    // loss = 30 w0 + 40 w1: gradient (30, 40), norm 50, clipped to (0.6, 0.8).
    const loss = () => tf.sum(tf.mul(w, tf.tensor1d([30, 40]))) as tf.Scalar
    tf.tidy(() => void updater.minimize(loss, [w], [w]))
    assert.deepStrictEqual(Array.from(w.dataSync()).map((x) => +x.toFixed(5)), [-0.6, -0.8])
    updater.setLearningRate(0.5)
    tf.tidy(() => void updater.minimize(loss, [w], [w]))
    assert.deepStrictEqual(Array.from(w.dataSync()).map((x) => +x.toFixed(5)), [-0.9, -1.2])
    updater.dispose()
    w.dispose()
    assert.strictEqual(tf.memory().numTensors, before)
  })
})
