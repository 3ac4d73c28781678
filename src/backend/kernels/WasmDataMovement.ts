/**
 * Faster `Slice`, `GatherV2`, `Identity` and `Cast` for the wasm backend. In tfjs-backend-wasm 4.22 `Slice` first copies
 * the whole source tensor out of the wasm heap (`readSync`), so taking a 128-row batch from a
 * 60000-row dataset costs ~130 ms; `GatherV2` computes a 4-D index per element (~3 ms for 128 x 784
 * floats). Both are memory moves: these versions copy contiguous runs between views of the heap.
 * Strings and batched gathers go to the original kernels. `Identity` (tf.clone, and the engine's copy
 * of every tensor a gradient saves while a tape records) and a `Cast` to the same dtype (each
 * Multiply gradient casts its other operand) copy the whole tensor in tfjs-backend-wasm; a tensor's
 * bytes are never written after it is made, so these share them instead, as `Reshape` does
 * (on a transformer's training step: ~400 copies, ~5% of the step and as much again of its memory).
 */
import * as tf from "@tensorflow/tfjs"
import type { WasmBackendLike } from "./Override.js"
import { isWasmKernelOverridden, overrideWasmKernel, restoreWasmKernel } from "./Override.js"

const slice =
  (original: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const x = args.inputs["x"]!
    if (x.dtype === "string" || x.dtype === "complex64") return original.kernelFunc(args)
    const attrs = args.attrs ?? {}
    const [begin, size] = tf.slice_util.parseSliceParams(
      x as unknown as tf.Tensor,
      attrs["begin"] as number | Array<number>,
      attrs["size"] as number | Array<number> | undefined
    )
    const backend = args.backend as WasmBackendLike
    const out = backend.makeOutput(size, x.dtype)
    const n = tf.util.sizeFromShape(size)
    if (n === 0) return out
    // Views are taken after makeOutput: allocating may grow the heap and detach older views.
    const src = backend.typedArrayFromHeap(x)
    const dst = backend.typedArrayFromHeap(out)
    const rank = x.shape.length
    const strides = tf.util.computeStrides(x.shape) // (rank - 1) element strides
    if (tf.slice_util.isSliceContinous(x.shape, begin, size)) {
      const offset = tf.slice_util.computeFlatOffset(begin, strides)
      dst.set(src.subarray(offset, offset + n))
      return out
    }
    // Copy one run along the last axis at a time, counting through the outer axes like an odometer.
    const run = size[rank - 1]!
    const counter = new Array<number>(rank - 1).fill(0)
    for (let r = 0, written = 0; written < n; r++, written += run) {
      let offset = begin[rank - 1]!
      for (let d = 0; d < rank - 1; d++) offset += (begin[d]! + counter[d]!) * strides[d]!
      dst.set(src.subarray(offset, offset + run), written)
      for (let d = rank - 2; d >= 0; d--) {
        if (++counter[d]! < size[d]!) break
        counter[d] = 0
      }
    }
    return out
  }

const gather =
  (original: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const x = args.inputs["x"]!
    const indices = args.inputs["indices"]!
    const attrs = args.attrs ?? {}
    const batchDims = (attrs["batchDims"] as number | undefined) ?? 0
    if (batchDims !== 0 || x.dtype === "string" || x.dtype === "complex64" || indices.dtype !== "int32") {
      return original.kernelFunc(args)
    }
    const axis = tf.util.parseAxisParam(attrs["axis"] as number, x.shape)[0]!
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(
      x as unknown as tf.Tensor,
      indices as unknown as tf.Tensor,
      axis,
      batchDims
    )
    const backend = args.backend as WasmBackendLike
    const out = backend.makeOutput(info.outputShape, x.dtype)
    const src = backend.typedArrayFromHeap(x)
    const idx = backend.typedArrayFromHeap(indices)
    const dst = backend.typedArrayFromHeap(out)
    const { outerSize, dimSize, sliceSize } = info
    const k = idx.length
    for (let j = 0; j < k; j++) {
      const i = idx[j]!
      if (i < 0 || i >= dimSize) {
        backend.disposeData(out.dataId)
        throw new Error(`GatherV2: the index value ${i} is not in [0, ${dimSize - 1}]`)
      }
    }
    // out[o, j, :] = x[o, idx[j], :], each a contiguous run of sliceSize elements.
    for (let o = 0; o < outerSize; o++) {
      const base = o * dimSize
      for (let j = 0; j < k; j++) {
        const from = (base + idx[j]!) * sliceSize
        dst.set(src.subarray(from, from + sliceSize), (o * k + j) * sliceSize)
      }
    }
    return out
  }

/** The same bytes under a second tensor: reference-counted by the backend, as Reshape's output. */
const alias = (backend: WasmBackendLike, x: tf.TensorInfo): tf.TensorInfo => {
  backend.incRef(x.dataId)
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype }
}

const identity =
  (original: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const x = args.inputs["x"]!
    return x.dtype === "string" ? original.kernelFunc(args) : alias(args.backend as WasmBackendLike, x)
  }

const cast =
  (original: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const x = args.inputs["x"]!
    return x.dtype === "string" || x.dtype !== args.attrs?.["dtype"] ? original.kernelFunc(args) : alias(args.backend as WasmBackendLike, x)
  }

const kernelNames = [tf.Slice, tf.GatherV2, tf.Identity, tf.Cast] as const

export const isWasmDataMovementFixInstalled = (): boolean => kernelNames.every((name) => isWasmKernelOverridden(name))

/** Replaces `Slice`, `GatherV2`, `Identity` and `Cast` for `wasm`. Idempotent; false when tfjs-backend-wasm is not loaded. */
export const installWasmDataMovementFix = (): boolean =>
  overrideWasmKernel(tf.Slice, slice) &&
  overrideWasmKernel(tf.GatherV2, gather) &&
  overrideWasmKernel(tf.Identity, identity) &&
  overrideWasmKernel(tf.Cast, cast)

export const uninstallWasmDataMovementFix = (): void => kernelNames.forEach((name) => restoreWasmKernel(name))
