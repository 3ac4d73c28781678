/**
 * `UnsortedSegmentSum` for the wasm backend, which tfjs-backend-wasm 4.22 lacks ("Kernel not
 * registered"). It is the gradient of `tf.gather`, so without it no embedding table (a transformer's
 * token embedding) trains on wasm. out[s, ...] = Σ_{i: ids[i] = s} x[i, ...], as TensorFlow's
 * UnsortedSegmentSum: ids outside [0, numSegments) are dropped. One pass in JS over views of the heap.
 */
import * as tf from "@tensorflow/tfjs"
import type { WasmBackendLike } from "./Override.js"
import { wasmKernel } from "./Override.js"

const unsortedSegmentSum: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs["x"]!
  const ids = inputs["segmentIds"]!
  const numSegments = (attrs ?? {})["numSegments"] as number
  if (x.dtype !== "float32" && x.dtype !== "int32") throw new Error(`wasm UnsortedSegmentSum supports float32 and int32, got ${x.dtype}`)
  const rows = tf.util.sizeFromShape(ids.shape)
  const inner = rows === 0 ? 0 : tf.util.sizeFromShape(x.shape) / rows
  const wasm = backend as WasmBackendLike
  const out = wasm.makeOutput([numSegments, ...x.shape.slice(ids.shape.length)], x.dtype)
  // Views after makeOutput: allocating may grow the heap and detach older views.
  const src = wasm.typedArrayFromHeap(x)
  const seg = wasm.typedArrayFromHeap(ids)
  const dst = wasm.typedArrayFromHeap(out)
  dst.fill(0)
  for (let i = 0; i < rows; i++) {
    const s = seg[i]!
    if (s < 0 || s >= numSegments) continue
    const from = i * inner
    const to = s * inner
    for (let j = 0; j < inner; j++) dst[to + j]! += src[from + j]!
  }
  return out
}

/** Registers the kernel for wasm unless tfjs provides one. Idempotent; false when tfjs-backend-wasm is not loaded. */
export const installWasmSegmentSum = (): boolean => {
  if (wasmKernel(tf.GatherV2) === undefined) return false
  if (wasmKernel(tf.UnsortedSegmentSum) === undefined) {
    tf.registerKernel({ kernelName: tf.UnsortedSegmentSum, backendName: "wasm", kernelFunc: unsortedSegmentSum })
  }
  return true
}
