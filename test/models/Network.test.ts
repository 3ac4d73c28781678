import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/Backend.js"
import type { Model } from "../../src/domain/Artifact.js"
import { makeRng } from "../../src/domain/Random.js"
import { Schema } from "effect"
import { CnnSpec, MlpSpec } from "../../src/models/ModelSpec.js"
import {
  buildModel,
  featuresOf,
  featureWidth,
  loadNetwork,
  networkFromWeights,
  networkWeights,
  parameterCount,
  predictLogits,
  weightSpecs
} from "../../src/models/Network.js"

const mlp = Schema.decodeSync(MlpSpec)({ type: "mlp", hidden: [16, 8], dropout: 0.5, inputDropout: 0.2 })
const cnn = Schema.decodeSync(CnnSpec)({ type: "cnn", channels: [4, 6], dense: [10], imageShape: [8, 8, 1], dropout: 0.3 })

const random = (n: number, seed: number): Float32Array => {
  const rng = makeRng(seed)
  return Float32Array.from({ length: n }, () => rng.next())
}

const allClose = (a: Float32Array, b: Float32Array, tol = 1e-5): boolean =>
  a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) <= tol)

beforeAll(async () => {
  await initBackend("cpu")
})

describe("buildModel", () => {
  it("mlp: forward gives (B, C) logits and (B, D) features per hidden layer", () => {
    const net = buildModel(mlp, [20], 3, 1)
    const before = tf.memory().numTensors
    tf.tidy(() => {
      const { logits, features } = net.forward(tf.tensor2d(random(5 * 20, 2), [5, 20]), { training: false })
      assert.deepStrictEqual(logits.shape, [5, 3])
      assert.deepStrictEqual(net.layerNames, ["hidden1", "hidden2", "penultimate"])
      assert.deepStrictEqual(features["hidden1"]!.shape, [5, 16])
      assert.deepStrictEqual(features["hidden2"]!.shape, [5, 8])
      assert.deepStrictEqual(features["penultimate"]!.shape, [5, 8])
    })
    assert.strictEqual(tf.memory().numTensors, before)
    assert.deepStrictEqual(net.weightNames, ["hidden1/kernel", "hidden1/bias", "hidden2/kernel", "hidden2/bias", "output/kernel", "output/bias"])
    assert.strictEqual(parameterCount(net), 20 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3)
    assert.strictEqual(parameterCount(mlp, [20], 3), parameterCount(net))
    net.dispose()
    assert.strictEqual(tf.memory().numTensors, before - 6)
  })

  it("cnn: reshapes flat input to the image, conv + pool per channel entry, dense head", () => {
    const net = buildModel(cnn, [64], 5, 1)
    tf.tidy(() => {
      const { logits, features } = net.forward(tf.tensor2d(random(3 * 64, 3), [3, 64]), { training: true, seed: 1 })
      assert.deepStrictEqual(logits.shape, [3, 5])
      assert.deepStrictEqual(net.layerNames, ["conv1", "conv2", "hidden1", "penultimate"])
      assert.deepStrictEqual(features["conv1"]!.shape, [3, 4 * 4 * 4])
      assert.deepStrictEqual(features["conv2"]!.shape, [3, 2 * 2 * 6])
      assert.deepStrictEqual(features["hidden1"]!.shape, [3, 10])
    })
    assert.deepStrictEqual(
      weightSpecs(cnn, [64], 5).map((w) => [w.name, w.shape.join("x")]),
      [
        ["conv1/kernel", "3x3x1x4"],
        ["conv1/bias", "4"],
        ["conv2/kernel", "3x3x4x6"],
        ["conv2/bias", "6"],
        ["hidden1/kernel", "24x10"],
        ["hidden1/bias", "10"],
        ["output/kernel", "10x5"],
        ["output/bias", "5"]
      ]
    )
    assert.strictEqual(featureWidth(cnn, [64], 5, "conv2"), 24)
    assert.strictEqual(featureWidth(cnn, [64], 5, "penultimate"), 10)
    assert.strictEqual(parameterCount(net), parameterCount(cnn, [64], 5))
    net.dispose()
  })

  it("every activation runs forward and backward; the fused inference path agrees with training's", () => {
    for (const activation of ["relu", "tanh", "gelu", "sigmoid", "elu"] as const) {
      const net = buildModel({ ...mlp, activation, dropout: 0, inputDropout: 0 }, [6], 2, 1)
      const before = tf.memory().numTensors
      tf.tidy(() => {
        const x = tf.tensor2d(random(4 * 6, 4), [4, 6])
        const { grads } = tf.variableGrads(() => tf.sum(net.forward(x, { training: true }).logits) as tf.Scalar)
        assert.strictEqual(Object.keys(grads).length, 6)
        const plain = net.forward(x, { training: true }).logits.dataSync() as Float32Array
        const fused = net.forward(x, { training: false }).logits.dataSync() as Float32Array
        assert.isTrue(allClose(plain, fused), activation)
      })
      assert.strictEqual(tf.memory().numTensors, before)
      net.dispose()
    }
  })

  it("the same seed gives the same weights; another seed others", async () => {
    const [a, b, c] = [buildModel(mlp, [20], 3, 7), buildModel(mlp, [20], 3, 7), buildModel(mlp, [20], 3, 8)]
    const [wa, wb, wc] = await Promise.all([networkWeights(a), networkWeights(b), networkWeights(c)])
    assert.isTrue(wa.every((w, i) => allClose(w.values, wb[i]!.values, 0)))
    assert.isFalse(allClose(wa[0]!.values, wc[0]!.values, 0))
    // He uniform bound for the first relu layer: sqrt(6 / 20).
    assert.isAtMost(Math.max(...wa[0]!.values.map(Math.abs)), Math.sqrt(6 / 20))
    assert.isTrue(wa[1]!.values.every((v) => v === 0))
    ;[a, b, c].forEach((n) => n.dispose())
  })

  it("dropout only in training, deterministic for a seed", () => {
    const net = buildModel(mlp, [20], 3, 1)
    const x = random(4 * 20, 5)
    const run = (training: boolean, seed?: number) =>
      tf.tidy(() => net.forward(tf.tensor2d(x, [4, 20]), { training, ...(seed === undefined ? {} : { seed }) }).logits.dataSync())
    assert.isTrue(allClose(run(false) as Float32Array, run(false) as Float32Array, 0))
    assert.isTrue(allClose(run(true, 1) as Float32Array, run(true, 1) as Float32Array, 0))
    assert.isFalse(allClose(run(true, 1) as Float32Array, run(true, 2) as Float32Array, 0))
    assert.isFalse(allClose(run(true, 1) as Float32Array, run(false) as Float32Array, 0))
    net.dispose()
  })

  it("rejects an imageShape that does not fit the features, and too many pools", () => {
    assert.throws(() => buildModel(cnn, [63], 5, 1), /imageShape \[8, 8, 1\] has 64 values but the features have 63/)
    assert.throws(() => buildModel({ ...cnn, channels: [2, 2, 2, 2] }, [64], 5, 1), /at most 3/)
  })
})

describe("weights in and out", () => {
  it("networkWeights -> loadNetwork reproduces the logits; predictLogits matches forward", async () => {
    const net = buildModel(cnn, [64], 5, 3)
    const x = random(7 * 64, 6)
    const model: Model = {
      _tag: "Model",
      // Stored specs are encoded JSON: defaults may be absent.
      spec: { type: "cnn", channels: [4, 6], dense: [10], imageShape: [8, 8, 1] },
      featureShape: [64],
      numClasses: 5,
      weights: await networkWeights(net),
      info: {}
    }
    const expected = tf.tidy(() => net.forward(tf.tensor2d(x, [7, 64]), { training: false }).logits.dataSync()) as Float32Array
    const before = tf.memory().numTensors
    const got = await predictLogits(net, x, 7, 3) // batches of 3, 3, 1
    assert.strictEqual(tf.memory().numTensors, before)
    assert.isTrue(allClose(got, expected))
    const loaded = loadNetwork(model)
    assert.isTrue(allClose(await predictLogits(loaded, x, 7), expected))
    const feats = await featuresOf(loaded, "conv2", x, 7, 4)
    assert.strictEqual(feats.length, 7 * 24)
    let rejected: unknown
    await featuresOf(loaded, "conv9", x, 7).catch((e: unknown) => (rejected = e))
    assert.match(String(rejected), /Unknown layer "conv9"; this cnn has: conv1, conv2, hidden1, penultimate/)
    net.dispose()
    loaded.dispose()
    // `before` counted net's 8 variables; loaded's 8 came and went.
    assert.strictEqual(tf.memory().numTensors, before - 8)
  })

  it("weights that do not fit the spec are rejected by name", async () => {
    const net = buildModel(mlp, [20], 3, 1)
    const weights = await networkWeights(net)
    net.dispose()
    const before = tf.memory().numTensors
    assert.throws(() => networkFromWeights(mlp, [21], 3, weights), /hidden1\/kernel has shape \[20, 16\].*expected \[21, 16\]/)
    assert.throws(() => networkFromWeights(mlp, [20], 3, weights.slice(1)), /missing hidden1\/kernel/)
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("mlp predictions agree between cpu and wasm", async () => {
    const x = random(9 * 20, 8)
    const cpu = buildModel(mlp, [20], 3, 1)
    const weights = await networkWeights(cpu)
    const onCpu = await predictLogits(cpu, x, 9)
    cpu.dispose()
    await initBackend("wasm")
    try {
      const wasm = networkFromWeights(mlp, [20], 3, weights)
      assert.isTrue(allClose(await predictLogits(wasm, x, 9), onCpu, 1e-4))
      wasm.dispose()
    } finally {
      await initBackend("cpu")
    }
  })
})
