import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/Backend.js"
import { isWasmConvGradsInstalled } from "../../src/backend/kernels/WasmConvGrads.js"
import { isWasmDataMovementFixInstalled } from "../../src/backend/kernels/WasmDataMovement.js"
import {
  installWasmMatMulFix,
  isWasmMatMulFixInstalled,
  uninstallWasmMatMulFix
} from "../../src/backend/kernels/WasmMatMul.js"
import type { Values } from "../fixtures/backends.js"
import { assertClose, runOn, uniformArray as random } from "../fixtures/backends.js"

/** Runs `f` on a plain tfjs backend (the fixes are installed or not by each test) and frees every tensor. */
const on = (backend: "cpu" | "wasm", f: () => tf.Tensor): Promise<Values> => runOn(backend, () => tf.setBackend(backend), f)

const agree = async (f: () => tf.Tensor, tol = 1e-4) => assertClose(await on("wasm", f), await on("cpu", f), tol)

beforeAll(async () => {
  await initBackend("wasm")
})

describe("wasm kernel fixes", () => {
  it("are installed by initBackend('wasm'), once", () => {
    assert.isTrue(isWasmMatMulFixInstalled())
    assert.isTrue(isWasmDataMovementFixInstalled())
    assert.isTrue(isWasmConvGradsInstalled())
    const before = tf.getKernelsForBackend("wasm").length
    assert.isTrue(installWasmMatMulFix())
    assert.strictEqual(tf.getKernelsForBackend("wasm").length, before)
    assert.isTrue(tf.getKernelsForBackend("wasm").some((k) => k.kernelName === tf.Conv2DBackpropFilter))
  })

  for (const [ta, tb] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true]
  ] as const) {
    it(`BatchMatMul transposeA=${ta} transposeB=${tb} matches cpu`, async () => {
      const [m, k, n] = [37, 53, 29]
      const a = random(m * k, 1)
      const b = random(k * n, 2)
      await agree(() => tf.matMul(tf.tensor2d(a, ta ? [k, m] : [m, k]), tf.tensor2d(b, tb ? [n, k] : [k, n]), ta, tb))
      // Batched (rank 3), with broadcasting of a single right operand.
      await agree(() =>
        tf.matMul(tf.tensor3d(random(3 * m * k, 3), ta ? [3, k, m] : [3, m, k]), tf.tensor3d(b, tb ? [1, n, k] : [1, k, n]), ta, tb)
      )
    })

    it(`_FusedMatMul transposeA=${ta} transposeB=${tb} with bias and relu matches cpu`, async () => {
      const [m, k, n] = [16, 24, 8]
      const a = random(m * k, 4)
      const b = random(k * n, 5)
      const bias = random(n, 6)
      await agree(() =>
        tf.fused.matMul({
          a: tf.tensor2d(a, ta ? [k, m] : [m, k]),
          b: tf.tensor2d(b, tb ? [n, k] : [k, n]),
          transposeA: ta,
          transposeB: tb,
          bias: tf.tensor1d(bias),
          activation: "relu"
        })
      )
    })
  }

  it("the original transposed kernels give the same numbers (the fix changes speed only)", async () => {
    const a = random(20 * 30, 7)
    const b = random(40 * 30, 8)
    const f = () => tf.matMul(tf.tensor2d(a, [20, 30]), tf.tensor2d(b, [40, 30]), false, true)
    const fixed = await on("wasm", f)
    uninstallWasmMatMulFix()
    try {
      assert.isFalse(isWasmMatMulFixInstalled())
      assertClose(await on("wasm", f), fixed, 1e-4)
    } finally {
      installWasmMatMulFix()
    }
  })

  it("gradients of a dense layer match cpu", async () => {
    const x = random(12 * 10, 9)
    const w = random(10 * 6, 10)
    const f = () => {
      const g = tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.square(tf.matMul(xx as tf.Tensor2D, ww as tf.Tensor2D))))
      const [dx, dw] = g([tf.tensor2d(x, [12, 10]), tf.tensor2d(w, [10, 6])])
      return tf.concat([tf.reshape(dx!, [-1]), tf.reshape(dw!, [-1])])
    }
    await agree(f, 1e-3)
  })

  it("UnsortedSegmentSum (the gradient of gather, e.g. an embedding table) matches cpu", async () => {
    const table = random(7 * 5, 11)
    const f = () => {
      const ids = tf.tensor2d([0, 3, 3, 6, 1, 0], [2, 3], "int32")
      return tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.gather(t, ids))))(tf.tensor2d(table, [7, 5]))
    }
    await agree(f, 1e-5)
    await agree(() => tf.unsortedSegmentSum(tf.tensor2d(random(4 * 3, 12), [4, 3]), tf.tensor1d([2, 0, 2, 9], "int32"), 3))
  })

  it("Slice matches cpu: contiguous and strided, ranks 1 to 4", async () => {
    const v = random(4 * 5 * 6 * 3, 11)
    await agree(() => tf.slice(tf.tensor1d(v), 7, 20))
    await agree(() => tf.slice(tf.tensor2d(v, [20, 18]), [3, 0], [5, 18]))
    await agree(() => tf.slice(tf.tensor2d(v, [20, 18]), [3, 4], [5, 7]))
    await agree(() => tf.slice(tf.tensor3d(v, [4, 5, 18]), [1, 2, 3], [2, 3, 4]))
    await agree(() => tf.slice(tf.tensor4d(v, [4, 5, 6, 3]), [1, 0, 2, 1], [3, 5, 3, 2]))
    await agree(() => tf.slice(tf.tensor1d(Int32Array.from({ length: 50 }, (_, i) => i), "int32"), 10, 5))
  })

  it("GatherV2 matches cpu on axis 0 and 1, float and int, and rejects bad indices", async () => {
    const v = random(10 * 7 * 3, 12)
    const idx = [4, 0, 9, 4, 2]
    await agree(() => tf.gather(tf.tensor3d(v, [10, 7, 3]), tf.tensor1d(idx, "int32")))
    await agree(() => tf.gather(tf.tensor3d(v, [10, 7, 3]), tf.tensor1d([6, 1, 1], "int32"), 1))
    await agree(() => tf.gather(tf.tensor1d(Int32Array.from({ length: 10 }, (_, i) => 3 * i), "int32"), tf.tensor1d(idx, "int32")))
    await tf.setBackend("wasm")
    const before = tf.memory().numTensors
    assert.throws(() => tf.tidy(() => tf.gather(tf.tensor2d(v, [10, 21]), tf.tensor1d([10], "int32"))), /not in \[0, 9\]/)
    assert.strictEqual(tf.memory().numTensors, before)
  })

  it("Identity and a same-dtype Cast share the bytes: each tensor outlives the other's dispose, and the last frees them", async () => {
    await tf.setBackend("wasm")
    const bytes = tf.memory().numBytes
    const x = tf.tensor2d(random(6 * 5, 13), [6, 5])
    const values = Float32Array.from(await x.data())
    const clone = tf.clone(x)
    const same = tf.cast(x, "float32")
    const ints = tf.cast(x, "int32") // another dtype: a converted copy
    x.dispose()
    assert.deepStrictEqual(Float32Array.from(await clone.data()), values)
    clone.dispose()
    assert.deepStrictEqual(Float32Array.from(await same.data()), values)
    assert.deepStrictEqual(Array.from(await ints.data()), Array.from(values, (v) => Math.trunc(v) + 0))
    tf.dispose([same, ints])
    assert.strictEqual(tf.memory().numBytes, bytes)
    // The gradient a tape saves (a clone per saved tensor) is the same with the shared bytes.
    await agree(() => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.mul(a, a), tf.sigmoid(a))))(tf.tensor2d(random(4 * 3, 14), [4, 3])))
  })

  for (const [stride, pad] of [
    [1, "same"],
    [1, "valid"],
    [2, "same"],
    [2, "valid"]
  ] as const) {
    it(`Conv2DBackpropFilter (stride ${stride}, ${pad}) matches cpu`, async () => {
      const x = random(3 * 9 * 8 * 2, 13)
      const filterShape: [number, number, number, number] = [3, 3, 2, 4]
      const f = () => {
        const xt = tf.tensor4d(x, [3, 9, 8, 2])
        const outShape = tf.conv2d(xt, tf.zeros(filterShape) as tf.Tensor4D, stride, pad).shape
        const dy = tf.tensor4d(random(tf.util.sizeFromShape(outShape), 14), outShape)
        // d/dW of sum(conv(x, W) * dy) is Conv2DBackpropFilter(x, dy).
        return tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xt, w as tf.Tensor4D, stride, pad), dy)))(tf.zeros(filterShape))
      }
      await agree(f, 1e-3)
    })
  }

  for (const [stride, pad, k] of [
    [1, "same", 3],
    [1, "valid", 3],
    [1, "same", 2],
    [2, "same", 3]
  ] as const) {
    it(`Conv2DBackpropInput (stride ${stride}, ${pad}, ${k}x${k}) matches cpu`, async () => {
      const x = random(2 * 7 * 6 * 3, 15)
      const w = random(k * k * 3 * 5, 16)
      const f = () => {
        const filter = tf.tensor4d(w, [k, k, 3, 5])
        const outShape = tf.conv2d(tf.zeros([2, 7, 6, 3]) as tf.Tensor4D, filter, stride, pad).shape
        const dy = tf.tensor4d(random(tf.util.sizeFromShape(outShape), 17), outShape)
        // d/dx of sum(conv(x, W) * dy) is Conv2DBackpropInput(dy, W).
        return tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, filter, stride, pad), dy)))(tf.tensor4d(x, [2, 7, 6, 3]))
      }
      await agree(f, 1e-3)
    })
  }

  for (const [size, stride, pad] of [
    [2, 2, "valid"],
    [2, 2, "same"],
    [3, 2, "same"],
    [3, 1, "valid"]
  ] as const) {
    it(`MaxPoolGrad (${size}x${size}, stride ${stride}, ${pad}) matches cpu`, async () => {
      const x = random(2 * 7 * 5 * 3, 18)
      const f = () => {
        const xt = tf.tensor4d(x, [2, 7, 5, 3])
        const outShape = tf.maxPool(xt, size, stride, pad).shape
        const dy = tf.tensor4d(random(tf.util.sizeFromShape(outShape), 19), outShape)
        return tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xx as tf.Tensor4D, size, stride, pad), dy)))(xt)
      }
      await agree(f, 1e-5)
    })
  }
})
