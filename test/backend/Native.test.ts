import { assert, afterAll, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { activeNativeKernels, backendInUse, initBackend } from "../../src/backend/Backend.js"
import { isNativeConvInstalled } from "../../src/backend/kernels/NativeConv.js"
import { isNativeMatMulInstalled } from "../../src/backend/kernels/NativeMatMul.js"
import { isWasmMatMulFixInstalled } from "../../src/backend/kernels/WasmMatMul.js"
import { loadNative, nativeThreads, setNativeThreads } from "../../src/backend/Native.js"
import type { Values } from "../fixtures/backends.js"
import { assertClose, runOn, uniformArray as random } from "../fixtures/backends.js"
import { requirement } from "../fixtures/requirements.js"

const native = loadNative()
requirement("the native addon (for the native kernel tests)", native)

/** Runs `f` on a backend ("native" is wasm with the native kernels) and frees every tensor it made. */
const on = (backend: "cpu" | "native", f: () => tf.Tensor): Promise<Values> => runOn(backend, () => initBackend(backend), f)

const agree = async (f: () => tf.Tensor, tol = 1e-4) => assertClose(await on("native", f), await on("cpu", f), tol)

describe.skipIf(!native.ok)("native kernels", () => {
  beforeAll(async () => {
    await initBackend("native")
  })
  afterAll(async () => {
    setNativeThreads(2)
    await initBackend("cpu")
  })

  it("initBackend('native') installs them over the wasm fixes; 'wasm' takes them off again", async () => {
    assert.strictEqual(await initBackend("native"), "native")
    assert.isTrue(isNativeMatMulInstalled())
    assert.isTrue(isNativeConvInstalled())
    assert.isTrue(isWasmMatMulFixInstalled(), "the fixes stay underneath for what native does not handle")
    assert.strictEqual(backendInUse(), "native")
    assert.isDefined(activeNativeKernels())
    assert.strictEqual(await initBackend("wasm"), "wasm")
    assert.isFalse(isNativeMatMulInstalled())
    assert.isFalse(isNativeConvInstalled())
    assert.isTrue(isWasmMatMulFixInstalled())
    assert.strictEqual(backendInUse(), "wasm")
    assert.isUndefined(activeNativeKernels())
    assert.strictEqual(await initBackend("auto"), "native", "auto prefers native when built (no GPU here)")
  })

  for (const threads of [1, 2]) {
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true]
    ] as const) {
      it(`BatchMatMul transposeA=${ta} transposeB=${tb} matches cpu (${threads} thread(s), edge tiles, split products)`, async () => {
        setNativeThreads(threads)
        // 37 x 53 x 29: partial 6x16 tiles everywhere; 300 x 300 x 200: past the threading threshold and KC.
        for (const [m, k, n] of [
          [37, 53, 29],
          [300, 300, 200],
          [1, 7, 1]
        ] as const) {
          const a = random(m * k, 1)
          const b = random(k * n, 2)
          await agree(() => tf.matMul(tf.tensor2d(a, ta ? [k, m] : [m, k]), tf.tensor2d(b, tb ? [n, k] : [k, n]), ta, tb), 1e-3)
        }
      })
    }
  }

  it("batched products broadcast a single operand on either side", async () => {
    const [m, k, n] = [9, 21, 17]
    await agree(() => tf.matMul(tf.tensor3d(random(3 * m * k, 3), [3, m, k]), tf.tensor3d(random(k * n, 4), [1, k, n])))
    await agree(() => tf.matMul(tf.tensor3d(random(m * k, 5), [1, k, m]), tf.tensor3d(random(4 * k * n, 6), [4, n, k]), true, true))
    await agree(() => tf.matMul(tf.tensor4d(random(6 * m * k, 7), [2, 3, m, k]), tf.tensor4d(random(6 * k * n, 8), [2, 3, k, n])))
    // Both broadcast: goes to the kernel underneath, and still agrees.
    await agree(() => tf.matMul(tf.tensor4d(random(2 * m * k, 9), [2, 1, m, k]), tf.tensor4d(random(3 * k * n, 10), [1, 3, k, n])))
  })

  for (const activation of ["linear", "relu", "relu6", "leakyrelu", "sigmoid", "elu"] as const) {
    it(`_FusedMatMul with bias and ${activation} matches cpu (all transposes)`, async () => {
      const [m, k, n] = [20, 33, 18]
      for (const [ta, tb] of [
        [false, false],
        [true, true]
      ] as const) {
        await agree(() =>
          tf.fused.matMul({
            a: tf.tensor2d(random(m * k, 11).map((v) => 3 * v), ta ? [k, m] : [m, k]),
            b: tf.tensor2d(random(k * n, 12), tb ? [n, k] : [k, n]),
            transposeA: ta,
            transposeB: tb,
            bias: tf.tensor1d(random(n, 13)),
            activation,
            leakyreluAlpha: 0.1
          }),
          1e-3
        )
      }
    })
  }

  it("_FusedMatMul without bias, and with PReLU (underneath), matches cpu", async () => {
    const [m, k, n] = [8, 12, 10]
    await agree(() => tf.fused.matMul({ a: tf.tensor2d(random(m * k, 14), [m, k]), b: tf.tensor2d(random(k * n, 15), [k, n]), activation: "relu" }))
    await agree(() =>
      tf.fused.matMul({
        a: tf.tensor2d(random(m * k, 16), [m, k]),
        b: tf.tensor2d(random(k * n, 17), [k, n]),
        bias: tf.tensor1d(random(n, 18)),
        activation: "prelu",
        preluActivationWeights: tf.tensor1d(random(n, 19))
      })
    )
  })

  it("gradients of a dense layer (the transposed products) match cpu", async () => {
    const [b, i, o] = [16, 40, 24]
    const x = random(b * i, 19)
    const w = random(i * o, 20)
    const grads = (which: 0 | 1) => () =>
      tf.grads((xs: tf.Tensor, ws: tf.Tensor) => tf.sum(tf.relu(tf.matMul(xs as tf.Tensor2D, ws as tf.Tensor2D))))([
        tf.tensor2d(x, [b, i]),
        tf.tensor2d(w, [i, o])
      ])[which]!
    await agree(grads(0), 1e-3)
    await agree(grads(1), 1e-3)
  })

  for (const [stride, pad, k] of [
    [1, "same", 3],
    [2, "valid", 3],
    [2, "same", 5],
    [1, "valid", 1]
  ] as const) {
    it(`conv2d ${k}x${k} stride ${stride} pad ${pad}: forward and both gradients match cpu`, async () => {
      const [n, h, w, ci, co] = [3, 11, 9, 4, 6]
      const x = random(n * h * w * ci, 21)
      const f = random(k * k * ci * co, 22)
      const conv = (xs: tf.Tensor, fs: tf.Tensor) => tf.conv2d(xs as tf.Tensor4D, fs as tf.Tensor4D, stride, pad)
      const inputs = () => [tf.tensor4d(x, [n, h, w, ci]), tf.tensor4d(f, [k, k, ci, co])]
      await agree(() => conv(...(inputs() as [tf.Tensor, tf.Tensor])), 1e-4)
      // Weighted sum, so each output position gets its own gradient.
      const weights = random(n * 11 * 11 * co, 23)
      const loss = (xs: tf.Tensor, fs: tf.Tensor) => {
        const y = conv(xs, fs)
        return tf.sum(tf.mul(y, tf.tensor(weights.subarray(0, y.size), y.shape)))
      }
      await agree(() => tf.grads(loss)(inputs())[0]!, 1e-4)
      await agree(() => tf.grads(loss)(inputs())[1]!, 1e-3)
    })
  }

  it("a dilated conv2d goes underneath and still matches cpu", async () => {
    const x = random(2 * 9 * 9 * 3, 24)
    const f = random(3 * 3 * 3 * 2, 25)
    await agree(() => tf.conv2d(tf.tensor4d(x, [2, 9, 9, 3]), tf.tensor4d(f, [3, 3, 3, 2]), 1, "same", "NHWC", 2))
  })

  for (const [size, stride, pad] of [
    [2, 2, "valid"],
    [3, 2, "same"],
    [3, 1, "same"]
  ] as const) {
    it(`max pool ${size}x${size} stride ${stride} ${pad}: gradient matches cpu (ties go to the first maximum)`, async () => {
      // Rounded values make ties in the windows.
      const x = random(2 * 10 * 7 * 3, 26).map((v) => Math.round(v * 3))
      await agree(() =>
        tf.grad((xs: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xs as tf.Tensor4D, size, stride, pad), 1.5)))(tf.tensor4d(x, [2, 10, 7, 3]))
      )
    })
  }

  it("sums over all but the last axis (bias gradients) natively, and other sums underneath, like cpu", async () => {
    const x = random(5 * 7 * 3 * 6, 27)
    await agree(() => tf.sum(tf.tensor4d(x, [5, 7, 3, 6]), [0, 1, 2]))
    await agree(() => tf.sum(tf.tensor4d(x, [5, 7, 3, 6]), [2, 0, 1], true))
    await agree(() => tf.sum(tf.tensor2d(x, [35, 18]), 0))
    await agree(() => tf.sum(tf.tensor2d(x, [35, 18]), 1))
    await agree(() => tf.sum(tf.tensor4d(x, [5, 7, 3, 6]), [0, 2]))
    await agree(() => tf.sum(tf.tensor1d(x)))
  })

  it("exp matches Math.exp within 2 ulp over the float range: 0 below ln(FLT_MIN), inf above ln(FLT_MAX), NaN kept", async () => {
    const n = 20011 // not a multiple of the 8-wide vectors: the tail too
    const x = Float32Array.from({ length: n }, (_, i) => -100 + (200 * i) / n)
    x.set([NaN, Infinity, -Infinity, 88.7, 88.8, -87.3, -87.4, 0])
    await initBackend("native")
    const y = (await tf.tidy(() => tf.exp(tf.tensor1d(x))).data()) as Float32Array
    for (let i = 0; i < n; i++) {
      const ref = Math.fround(Math.exp(x[i]!))
      if (Number.isNaN(ref)) assert.isNaN(y[i]!)
      else if (ref < 1.1754944e-38 || !Number.isFinite(ref)) assert.strictEqual(y[i], x[i]! < 0 ? 0 : Infinity, `exp(${x[i]})`)
      else assert.isAtMost(Math.abs(y[i]! - ref), 2 * 1.1920929e-7 * ref, `exp(${x[i]})`)
    }
  })

  it("threads default to the cores on the main thread and can be set per thread", () => {
    setNativeThreads(3)
    assert.strictEqual(nativeThreads(), 3)
    setNativeThreads(0)
    assert.strictEqual(nativeThreads(), 1)
    assert.match(native.ok ? native.addon.info().isa : "", /avx2\+fma|generic/)
  })
})
