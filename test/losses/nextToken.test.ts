/**
 * Next-token cross-entropy against a float64 plain-array reference: the value with prompt positions
 * masked (-1), and its gradient, (softmax - onehot) / counted at counted positions and 0 elsewhere.
 */
import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { nextTokenLoss, nextTokenNll } from "../../src/losses/nextToken.js"
import { makeRng } from "../../src/domain/Random.js"
import { logSoftmax, softmax } from "./reference.js"

const [B, T, V] = [2, 3, 5]
const rng = makeRng(7)
const logits = Array.from({ length: B * T * V }, () => rng.normal() * 2)
const targets = [4, -1, 0, 2, 2, -1] // two prompt positions not counted
const row = (i: number) => logits.slice(i * V, (i + 1) * V)
const counted = targets.filter((y) => y >= 0).length

const refLoss = (): number =>
  targets.reduce((s, y, i) => (y < 0 ? s : s - logSoftmax(row(i))[y]!), 0) / counted

describe("nextTokenLoss", () => {
  it("is the mean -log p(target) over counted positions (float64 reference)", () => {
    const z = tf.tensor3d(logits, [B, T, V])
    const y = tf.tensor2d(targets, [B, T], "int32")
    assert.closeTo(nextTokenLoss(z, y).dataSync()[0]!, refLoss(), 1e-5)
    const nll = nextTokenNll(z, y).dataSync()
    targets.forEach((t, i) => assert.closeTo(nll[i]!, t < 0 ? 0 : -logSoftmax(row(i))[t]!, 1e-5))
    tf.dispose([z, y])
  })

  it("has the gradient (softmax - onehot) / counted, zero at masked positions", () => {
    const z = tf.tensor3d(logits, [B, T, V])
    const y = tf.tensor2d(targets, [B, T], "int32")
    const g = tf.grad((x: tf.Tensor) => nextTokenLoss(x as tf.Tensor3D, y))(z)
    const grad = g.dataSync()
    targets.forEach((t, i) => {
      const p = softmax(row(i))
      for (let c = 0; c < V; c++) {
        const want = t < 0 ? 0 : (p[c]! - (c === t ? 1 : 0)) / counted
        assert.closeTo(grad[i * V + c]!, want, 1e-5)
      }
    })
    tf.dispose([z, y, g])
  })

  it("counts nothing when every target is masked", () => {
    const z = tf.zeros([1, 2, 3]) as tf.Tensor3D
    const y = tf.tensor2d([-1, -1], [1, 2], "int32")
    assert.strictEqual(nextTokenLoss(z, y).dataSync()[0], 0)
    tf.dispose([z, y])
  })
})
