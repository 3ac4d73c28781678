/**
 * The project runs on the wasm backend by default, which lacks some kernels that the cpu backend has
 * (UnsortedSegmentSum, used by tf.gather's gradient). Every loss here, with its gradient, must run on
 * wasm and agree with cpu.
 */
import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import "@tensorflow/tfjs-backend-wasm"
import { Schema } from "effect"
import { ensembleTeachers } from "../../src/losses/ensemble.js"
import { hintLoss } from "../../src/losses/hint.js"
import { divergenceNames, objectiveLoss, ObjectiveSpec, type TeacherBatch } from "../../src/losses/Objective.js"
import { rkdAngleLoss, rkdDistanceLoss } from "../../src/losses/rkd.js"
import { assertClose, makeRng, randomMatrix, topkTensors } from "./reference.js"

const rng = makeRng(99)
const teacher = randomMatrix(rng, 6, 12, 2)
const student = randomMatrix(rng, 6, 12, 2)
const embeddings = randomMatrix(rng, 6, 4)
const labels = [1, -1, 3, 0, -1, 11]

/** Every loss's value and gradient w.r.t. its student input, on the current backend. */
const everything = (): Array<number> =>
  tf.tidy(() => {
    const out: Array<number> = []
    const s = tf.tensor2d(student)
    const y = tf.tensor1d(labels, "int32")
    const record = (f: (x: tf.Tensor2D) => tf.Scalar, x: tf.Tensor2D) => {
      const { value, grad } = tf.valueAndGrad(f)(x)
      out.push(value.dataSync()[0]!, ...grad.dataSync())
    }
    for (const divergence of divergenceNames) {
      const spec = Schema.decodeUnknownSync(ObjectiveSpec)({ divergence, temperature: 2, space: "logits" })
      const batches: Array<TeacherBatch> = [{ logits: tf.tensor2d(teacher) }, { topk: topkTensors(teacher, 4) }]
      for (const batch of batches) {
        record((x) => objectiveLoss(spec, x, y, batch), s)
      }
    }
    const t = tf.tensor2d(teacher)
    record((x) => hintLoss("mse", t, x), s)
    record((x) => hintLoss("cosine", t, x), s)
    record((x) => rkdDistanceLoss(t, x), tf.tensor2d(embeddings))
    record((x) => rkdAngleLoss(t, x), tf.tensor2d(embeddings))
    out.push(...ensembleTeachers([t, s], [1, 3], "average_probs").dataSync())
    return out
  })

describe("losses on the wasm backend", () => {
  it("compute the same values and gradients as on cpu", async () => {
    await tf.setBackend("cpu")
    const onCpu = everything()
    assert.isTrue(await tf.setBackend("wasm"))
    await tf.ready()
    try {
      const before = tf.memory().numTensors
      const onWasm = everything()
      assert.strictEqual(tf.memory().numTensors, before)
      assertClose(onWasm, onCpu, 1e-4, 1e-3, "wasm vs cpu")
    } finally {
      await tf.setBackend("cpu")
    }
  })
})
