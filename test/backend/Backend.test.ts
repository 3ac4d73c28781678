import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Exit } from "effect"
import { BackendError, backendNames, initBackend, isBackendName, TfBackend } from "../../src/backend/Backend.js"
import { loadNative } from "../../src/backend/Native.js"

const rejection = async (p: Promise<unknown>): Promise<unknown> => {
  try {
    await p
  } catch (e) {
    return e
  }
  assert.fail("expected a rejection")
}

describe("initBackend", () => {
  it("sets cpu and wasm and returns the backend in use", async () => {
    assert.strictEqual(await initBackend("cpu"), "cpu")
    assert.strictEqual(tf.getBackend(), "cpu")
    assert.strictEqual(await initBackend("wasm"), "wasm")
    assert.strictEqual(tf.getBackend(), "wasm")
    assert.strictEqual(tf.tidy(() => tf.sum(tf.tensor1d([1, 2, 3])).dataSync()[0]), 6)
  })

  it("tensorflow without tfjs-node fails saying how to install it and what the choices are", async () => {
    const e = await rejection(initBackend("tensorflow"))
    assert.instanceOf(e, BackendError)
    const err = e as BackendError
    assert.strictEqual(err._tag, "BackendError")
    assert.strictEqual(err.requested, "tensorflow")
    assert.include(err.message, "npm install @tensorflow/tfjs-node")
    assert.include(err.message, "wasm, native, cpu, tensorflow, webgpu, auto")
    assert.deepStrictEqual([...err.choices], [...backendNames])
  })

  it("webgpu without its packages (or an adapter) fails with a clear message", async () => {
    const e = await rejection(initBackend("webgpu"))
    assert.instanceOf(e, BackendError)
    assert.match((e as BackendError).message, /webgpu/i)
    assert.include((e as BackendError).message, "Valid backends:")
  })

  it("auto falls back to native (when built), else wasm, when neither tensorflow nor webgpu is available", async () => {
    assert.strictEqual(await initBackend("auto"), loadNative().ok ? "native" : "wasm")
  })

  it("native fails with what to do when its kernels are not built, and auto still works", async () => {
    const native = loadNative()
    if (native.ok) return
    const e = await rejection(initBackend("native"))
    assert.instanceOf(e, BackendError)
    assert.include((e as BackendError).message, "npm run install")
  })

  it("names are checked", () => {
    assert.isTrue(isBackendName("wasm"))
    assert.isFalse(isBackendName("webgl"))
  })
})

describe("TfBackend", () => {
  it.effect("use readies the backend once and gives its name", () =>
    Effect.gen(function* () {
      const backend = yield* TfBackend
      assert.strictEqual(backend.requested, "cpu")
      assert.strictEqual(yield* backend.use, "cpu")
      assert.strictEqual(tf.getBackend(), "cpu")
      assert.strictEqual(yield* backend.use, "cpu")
    }).pipe(Effect.provide(TfBackend.layer("cpu")))
  )

  it.effect("building the layer loads nothing; use fails with BackendError for a backend that cannot run", () =>
    Effect.gen(function* () {
      const backend = yield* Effect.provide(TfBackend, TfBackend.layer("tensorflow"))
      assert.strictEqual(backend.requested, "tensorflow")
      const exit = yield* Effect.exit(backend.use)
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
        assert.instanceOf(error, BackendError)
        assert.strictEqual(error?.requested, "tensorflow")
      }
    })
  )
})
