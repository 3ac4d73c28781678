/**
 * `BatchMatMul` and `_FusedMatMul` for the wasm backend on the native SGEMM (native/src/sgemm.cc):
 * the operands are read in place from the wasm heap and the product is written straight into the
 * output tensor's memory, transposes included (the packing absorbs them, so dY Wᵀ and Xᵀ dY cost the
 * same as X W). Bias and relu/relu6/leaky-relu are applied in the same call. Anything else (other
 * dtypes or activations, PReLU, batch shapes that broadcast in both operands, a bias that is not (N))
 * goes to the kernel underneath: the transpose fix, then XNNPACK.
 */
import * as tf from "@tensorflow/tfjs"
import type { NativeAddon } from "../Native.js"
import { nativeThreads } from "../Native.js"
import type { WasmBackendLike } from "./Override.js"
import { isWasmKernelOverridden, overrideWasmKernel, restoreWasmKernel } from "./Override.js"

const tag = "native"
const kernelNames = [tf.BatchMatMul, tf._FusedMatMul] as const

const activations: Record<string, number> = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3 }

const size = (shape: ReadonlyArray<number>): number => shape.reduce((n, d) => n * d, 1)

const nativeMatMul =
  (addon: NativeAddon, fused: boolean) =>
  (below: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const a = args.inputs["a"]!
    const b = args.inputs["b"]!
    const bias = fused ? args.inputs["bias"] : undefined
    const attrs = args.attrs ?? {}
    const act = fused ? activations[(attrs["activation"] as string | undefined) ?? "linear"] : 0
    const ra = a.shape.length
    const rb = b.shape.length
    if (
      act === undefined ||
      (fused && args.inputs["preluActivationWeights"] !== undefined) ||
      a.dtype !== "float32" ||
      b.dtype !== "float32" ||
      ra < 2 ||
      rb < 2 ||
      (bias !== undefined && bias.dtype !== "float32")
    ) {
      return below.kernelFunc(args)
    }
    const transposeA = attrs["transposeA"] === true
    const transposeB = attrs["transposeB"] === true
    // op(a): (..., M, K); op(b): (..., K, N).
    const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!
    const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!
    const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!
    const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!
    if (k !== kb) return below.kernelFunc(args) // the original kernel throws tfjs's own message
    // Only a (N) bias (or (1, ..., N)) is added row by row here.
    if (bias !== undefined && (size(bias.shape) !== n || bias.shape[bias.shape.length - 1] !== n)) return below.kernelFunc(args)
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2))
    const batch = size(outer)
    const batchA = size(a.shape.slice(0, -2))
    const batchB = size(b.shape.slice(0, -2))
    if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return below.kernelFunc(args)
    const backend = args.backend as WasmBackendLike
    const out = backend.makeOutput([...outer, m, n], "float32")
    if (batch * m * n === 0) return out
    // Views after makeOutput: allocating may grow the heap and detach older views.
    addon.matmul(
      backend.typedArrayFromHeap(a) as Float32Array,
      backend.typedArrayFromHeap(b) as Float32Array,
      backend.typedArrayFromHeap(out) as Float32Array,
      batch,
      m,
      n,
      k,
      transposeA,
      transposeB,
      batchA === 1 ? 0 : m * k,
      batchB === 1 ? 0 : k * n,
      bias === undefined ? null : (backend.typedArrayFromHeap(bias) as Float32Array),
      act,
      (attrs["leakyreluAlpha"] as number | undefined) ?? 0.2,
      nativeThreads()
    )
    return out
  }

/** Whether the native products are in place for the `wasm` backend. */
export const isNativeMatMulInstalled = (): boolean => kernelNames.every((name) => isWasmKernelOverridden(name, tag))

/** Routes `BatchMatMul` and `_FusedMatMul` of `wasm` to the addon. Idempotent; false without tfjs-backend-wasm. */
export const installNativeMatMul = (addon: NativeAddon): boolean =>
  overrideWasmKernel(tf.BatchMatMul, nativeMatMul(addon, false), tag) &&
  overrideWasmKernel(tf._FusedMatMul, nativeMatMul(addon, true), tag)

/** Puts back the kernels underneath (the transpose fix, or XNNPACK's). */
export const uninstallNativeMatMul = (): void => kernelNames.forEach((name) => restoreWasmKernel(name, tag))
