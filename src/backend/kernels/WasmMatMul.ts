/**
 * The wasm transpose fix. tfjs-backend-wasm 4.22 sends a matrix product to XNNPACK's fast GEMM only
 * when neither operand is transposed; with `transposeA` or `transposeB` it falls back to a naive loop
 * that runs 10-25x slower (~1-2 GFLOP/s against ~25-30). Dense-layer backprop needs exactly those
 * flags (dA = dY Bᵀ, dB = Aᵀ dY), so training spent most of its time there.
 *
 * The override materialises the transposed operand with the backend's own Transpose kernel (a memory
 * copy, O(rows x cols)), calls the original kernel without the flag (O(M x K x N)), then frees the
 * copy. It wraps `BatchMatMul` and `_FusedMatMul` for the `wasm` backend only.
 */
import * as tf from "@tensorflow/tfjs"
import type { WasmBackendLike } from "./Override.js"
import { isWasmKernelOverridden, overrideWasmKernel, restoreWasmKernel, wasmKernel } from "./Override.js"

const kernelNames = [tf.BatchMatMul, tf._FusedMatMul] as const

/** Swaps the last two axes of `x` with the backend's Transpose kernel; the caller frees the result. */
const transposeLastTwo = (x: tf.TensorInfo, backend: object, transpose: tf.KernelFunc): tf.TensorInfo => {
  const rank = x.shape.length
  const perm = Array.from({ length: rank }, (_, i) => i)
  perm[rank - 2] = rank - 1
  perm[rank - 1] = rank - 2
  return transpose({ inputs: { x }, backend, attrs: { perm } }) as tf.TensorInfo
}

const withoutTransposes =
  (transpose: tf.KernelFunc) =>
  (original: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const attrs = args.attrs ?? {}
    const transposeA = attrs["transposeA"] === true
    const transposeB = attrs["transposeB"] === true
    if (!transposeA && !transposeB) return original.kernelFunc(args)
    const a = args.inputs["a"]!
    const b = args.inputs["b"]!
    // (..., K, M) -> (..., M, K) and (..., N, K) -> (..., K, N): row-major operands for the fast GEMM.
    const aT = transposeA ? transposeLastTwo(a, args.backend, transpose) : a
    const bT = transposeB ? transposeLastTwo(b, args.backend, transpose) : b
    try {
      return original.kernelFunc({
        inputs: { ...args.inputs, a: aT, b: bT },
        backend: args.backend,
        attrs: { ...attrs, transposeA: false, transposeB: false }
      })
    } finally {
      const backend = args.backend as WasmBackendLike
      if (aT !== a) backend.disposeData(aT.dataId)
      if (bT !== b) backend.disposeData(bT.dataId)
    }
  }

/** Whether the override is in place for the `wasm` backend. */
export const isWasmMatMulFixInstalled = (): boolean => kernelNames.every((name) => isWasmKernelOverridden(name))

/**
 * Replaces `BatchMatMul` and `_FusedMatMul` for `wasm` with the transposing wrappers. Idempotent.
 * Returns false when tfjs-backend-wasm is not loaded (its kernels are not registered).
 */
export const installWasmMatMulFix = (): boolean => {
  const transpose = wasmKernel(tf.Transpose)
  if (transpose === undefined) return false
  return kernelNames.map((name) => overrideWasmKernel(name, withoutTransposes(transpose.kernelFunc))).every(Boolean)
}

/** Restores the original kernels (to measure the fix, or to test against the original). */
export const uninstallWasmMatMulFix = (): void => kernelNames.forEach((name) => restoreWasmKernel(name))
