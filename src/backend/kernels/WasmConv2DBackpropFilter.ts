/**
 * `Conv2DBackpropFilter` for the wasm backend, which tfjs-backend-wasm 4.22 lacks: without it no
 * convolution can be trained on wasm ("Kernel 'Conv2DBackpropFilter' not registered").
 *
 * The filter gradient of a stride-s convolution is itself a convolution, with the batch axis as the
 * reduction channel and the output gradient as the filter, dilated by s:
 *   dW[a, b, ci, co] = Σ_{n,i,j} x[n, i·s + a - pad, j·s + b - pad, ci] · dy[n, i, j, co]
 *                    = conv2d(xᵀ (Ci, H, W, N), dyᵀ (Ho, Wo, N, Co), dilation s)[ci, a, b, co]
 * so it runs on the backend's XNNPACK Conv2D kernel. NHWC and dilation 1 only (what tf.conv2d uses).
 */
import * as tf from "@tensorflow/tfjs"
import type { WasmBackendLike } from "./Override.js"
import { wasmKernel } from "./Override.js"

const kernel = (name: string): tf.KernelFunc => {
  const found = wasmKernel(name)
  if (found === undefined) throw new Error(`wasm kernel ${name} is not registered`)
  return found.kernelFunc
}

const conv2DBackpropFilter: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs["x"]!
  const dy = inputs["dy"]!
  const a = attrs ?? {}
  const filterShape = a["filterShape"] as [number, number, number, number]
  const strides = a["strides"] as number | [number, number]
  const pad = a["pad"] as "valid" | "same" | number | tf.backend_util.ExplicitPadding
  const dataFormat = (a["dataFormat"] ?? "NHWC") as "NHWC" | "NCHW"
  const dimRoundingMode = a["dimRoundingMode"] as "floor" | "round" | "ceil" | undefined
  if (dataFormat !== "NHWC") throw new Error(`wasm Conv2DBackpropFilter supports NHWC only, got ${dataFormat}`)
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    "channelsLast"
  )
  const [kh, kw] = filterShape
  const free = (t: tf.TensorInfo) => (backend as WasmBackendLike).disposeData(t.dataId)
  const transpose = kernel(tf.Transpose)
  // (N, H, W, Ci) -> (Ci, H, W, N): the batch becomes the reduction (channel) axis.
  const xT = transpose({ inputs: { x }, backend, attrs: { perm: [3, 1, 2, 0] } }) as tf.TensorInfo
  // (N, Ho, Wo, Co) -> (Ho, Wo, N, Co): the output gradient becomes the filter.
  const dyT = transpose({ inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } }) as tf.TensorInfo
  const { top, bottom, left, right } = info.padInfo
  // (Ci, Hc, Wc, Co) with Hc = H + top + bottom - (Ho - 1)·s >= kh
  const full = kernel(tf.Conv2D)({
    inputs: { x: xT, filter: dyT },
    backend,
    attrs: {
      strides: [1, 1],
      pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
      dataFormat: "NHWC",
      dilations: [info.strideHeight, info.strideWidth],
      dimRoundingMode: "floor"
    }
  }) as tf.TensorInfo
  free(xT)
  free(dyT)
  // Rows and columns past the filter extent come from padding that the forward pass never reached.
  let cropped = full
  if (full.shape[1] !== kh || full.shape[2] !== kw) {
    cropped = kernel(tf.Slice)({
      inputs: { x: full },
      backend,
      attrs: { begin: [0, 0, 0, 0], size: [full.shape[0]!, kh, kw, full.shape[3]!] }
    }) as tf.TensorInfo
    free(full)
  }
  // (Ci, kh, kw, Co) -> (kh, kw, Ci, Co)
  const dW = transpose({ inputs: { x: cropped }, backend, attrs: { perm: [1, 2, 0, 3] } }) as tf.TensorInfo
  free(cropped)
  return dW
}

/** Registers the kernel for `wasm` unless one is already registered. Returns whether it is in place. */
export const installWasmConv2DBackpropFilter = (): boolean => {
  const kernels = tf.getKernelsForBackend("wasm")
  if (kernels.length === 0) return false
  if (kernels.some((k) => k.kernelName === tf.Conv2DBackpropFilter)) return true
  tf.registerKernel({ kernelName: tf.Conv2DBackpropFilter, backendName: "wasm", kernelFunc: conv2DBackpropFilter })
  return true
}
