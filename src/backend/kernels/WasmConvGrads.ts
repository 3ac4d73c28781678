/**
 * Convolution and pooling gradients for the wasm backend, which make a CNN trainable there and fast:
 *
 * - `Conv2DBackpropFilter` is missing from tfjs-backend-wasm 4.22 ("Kernel not registered"). The filter
 *   gradient of a stride-s convolution is itself a convolution, with the batch as the reduction
 *   channel and the output gradient as a filter dilated by s:
 *     dW[a, b, ci, co] = Σ_{n,i,j} x[n, i·s + a - pad, j·s + b - pad, ci] · dy[n, i, j, co]
 *                      = conv2d(xᵀ (Ci, H, W, N), dyᵀ (Ho, Wo, N, Co), dilation s)[ci, a, b, co]
 *   so it runs on XNNPACK's Conv2D.
 * - `Conv2DBackpropInput` exists but is a naive loop (~2.6 GFLOP/s). For stride 1 the input gradient
 *   is the "full" convolution of dy with the filter rotated by 180° and its channel axes swapped:
 *     dX = conv2d(dy, rot180(W)ᵀ (kh, kw, Co, Ci), pad k - 1 - pad)
 *   again on XNNPACK. Strided convolutions keep the original kernel.
 * - `MaxPoolGrad` exists but is slow (~50 ms for 128 x 28 x 28 x 32); here it is one pass in JS over
 *   views of the wasm heap, routing each dy to the first maximum of its window (as the cpu backend).
 *
 * NHWC and dilation 1 only, which is what tf.conv2d and tf.maxPool produce.
 */
import * as tf from "@tensorflow/tfjs"
import type { Shape4 } from "./ConvAttrs.js"
import { conv2DInfo, isNhwc, pool2DInfo } from "./ConvAttrs.js"
import type { WasmBackendLike } from "./Override.js"
import { isWasmKernelOverridden, overrideWasmKernel, restoreWasmKernel, wasmKernel } from "./Override.js"


const kernel = (name: string): tf.KernelFunc => {
  const found = wasmKernel(name)
  if (found === undefined) throw new Error(`wasm kernel ${name} is not registered`)
  return found.kernelFunc
}

const run = (name: string, args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo => kernel(name)(args) as tf.TensorInfo

const conv2DBackpropFilter: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs["x"]!
  const dy = inputs["dy"]!
  const a = attrs ?? {}
  const filterShape = a["filterShape"] as Shape4
  if (!isNhwc(a)) throw new Error(`wasm Conv2DBackpropFilter supports NHWC only, got ${String(a["dataFormat"])}`)
  const info = conv2DInfo(x.shape as Shape4, filterShape, a)
  const [kh, kw] = filterShape
  const free = (t: tf.TensorInfo) => (backend as WasmBackendLike).disposeData(t.dataId)
  // (N, H, W, Ci) -> (Ci, H, W, N): the batch becomes the reduction (channel) axis.
  const xT = run(tf.Transpose, { inputs: { x }, backend, attrs: { perm: [3, 1, 2, 0] } })
  // (N, Ho, Wo, Co) -> (Ho, Wo, N, Co): the output gradient becomes the filter.
  const dyT = run(tf.Transpose, { inputs: { x: dy }, backend, attrs: { perm: [1, 2, 0, 3] } })
  const { top, bottom, left, right } = info.padInfo
  // (Ci, Hc, Wc, Co), Hc = H + top + bottom - (Ho - 1)·s >= kh
  const full = run(tf.Conv2D, {
    inputs: { x: xT, filter: dyT },
    backend,
    attrs: {
      strides: [1, 1],
      pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
      dataFormat: "NHWC",
      dilations: [info.strideHeight, info.strideWidth],
      dimRoundingMode: "floor"
    }
  })
  free(xT)
  free(dyT)
  // Rows and columns past the filter extent pair dy with padding the forward pass never read.
  let cropped = full
  if (full.shape[1] !== kh || full.shape[2] !== kw) {
    cropped = run(tf.Slice, { inputs: { x: full }, backend, attrs: { begin: [0, 0, 0, 0], size: [full.shape[0]!, kh, kw, full.shape[3]!] } })
    free(full)
  }
  // (Ci, kh, kw, Co) -> (kh, kw, Ci, Co)
  const dW = run(tf.Transpose, { inputs: { x: cropped }, backend, attrs: { perm: [1, 2, 0, 3] } })
  free(cropped)
  return dW
}

const conv2DBackpropInput =
  (original: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const { inputs, backend } = args
    const a = args.attrs ?? {}
    const dy = inputs["dy"]!
    const filter = inputs["filter"]!
    const inputShape = a["inputShape"] as Shape4
    if (!isNhwc(a)) return original.kernelFunc(args)
    const info = conv2DInfo(inputShape, filter.shape as Shape4, a)
    const [kh, kw] = filter.shape as Shape4
    const { top, bottom, left, right } = info.padInfo
    const pads = [kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right]
    if (info.strideHeight !== 1 || info.strideWidth !== 1 || pads.some((p) => p < 0)) return original.kernelFunc(args)
    const free = (t: tf.TensorInfo) => (backend as WasmBackendLike).disposeData(t.dataId)
    // (kh, kw, Ci, Co) rotated by 180° in space, then (kh, kw, Co, Ci): the adjoint filter.
    const rotated = run(tf.Reverse, { inputs: { x: filter }, backend, attrs: { dims: [0, 1] } })
    const adjoint = run(tf.Transpose, { inputs: { x: rotated }, backend, attrs: { perm: [0, 1, 3, 2] } })
    free(rotated)
    // (N, Ho, Wo, Co) -> (N, H, W, Ci)
    const dx = run(tf.Conv2D, {
      inputs: { x: dy, filter: adjoint },
      backend,
      attrs: {
        strides: [1, 1],
        pad: [[0, 0], [pads[0]!, pads[1]!], [pads[2]!, pads[3]!], [0, 0]],
        dataFormat: "NHWC",
        dilations: [1, 1],
        dimRoundingMode: "floor"
      }
    })
    free(adjoint)
    return dx
  }

const maxPoolGrad =
  (original: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const { inputs } = args
    const a = args.attrs ?? {}
    const dy = inputs["dy"]!
    const x = inputs["input"]!
    if (x.dtype !== "float32" || dy.dtype !== "float32") return original.kernelFunc(args)
    const info = pool2DInfo(x.shape as Shape4, a)
    const backend = args.backend as WasmBackendLike
    const out = backend.makeOutput([...x.shape], "float32")
    // Views after makeOutput: allocating may grow the heap and detach older views.
    const xs = backend.typedArrayFromHeap(x)
    const dys = backend.typedArrayFromHeap(dy)
    const dx = backend.typedArrayFromHeap(out)
    dx.fill(0)
    const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, strideHeight, strideWidth } = info
    const fh = info.effectiveFilterHeight
    const fw = info.effectiveFilterWidth
    const { top, left } = info.padInfo
    const best = new Float64Array(c)
    const at = new Int32Array(c)
    for (let b = 0; b < batchSize; b++) {
      const xBase = b * inHeight * inWidth * c
      for (let oh = 0; oh < outHeight; oh++) {
        const r0 = oh * strideHeight - top
        const rMin = Math.max(0, r0)
        const rMax = Math.min(inHeight, r0 + fh)
        for (let ow = 0; ow < outWidth; ow++) {
          const c0 = ow * strideWidth - left
          const cMin = Math.max(0, c0)
          const cMax = Math.min(inWidth, c0 + fw)
          best.fill(Number.NEGATIVE_INFINITY)
          at.fill(-1)
          // Window scan in input order, channels innermost (contiguous); strict > keeps the first maximum.
          for (let r = rMin; r < rMax; r++) {
            for (let col = cMin; col < cMax; col++) {
              const p = xBase + (r * inWidth + col) * c
              for (let ch = 0; ch < c; ch++) {
                const v = xs[p + ch]!
                if (v > best[ch]!) {
                  best[ch] = v
                  at[ch] = p + ch
                }
              }
            }
          }
          const d = ((b * outHeight + oh) * outWidth + ow) * c
          for (let ch = 0; ch < c; ch++) {
            const i = at[ch]!
            if (i >= 0) dx[i] = dx[i]! + dys[d + ch]!
          }
        }
      }
    }
    return out
  }

const overridden = [tf.Conv2DBackpropInput, tf.MaxPoolGrad] as const

export const isWasmConvGradsInstalled = (): boolean =>
  overridden.every((name) => isWasmKernelOverridden(name)) && wasmKernel(tf.Conv2DBackpropFilter) !== undefined

/**
 * Registers `Conv2DBackpropFilter` for wasm (unless tfjs provides one) and replaces
 * `Conv2DBackpropInput` and `MaxPoolGrad`. Idempotent; false when tfjs-backend-wasm is not loaded.
 */
export const installWasmConvGrads = (): boolean => {
  if (wasmKernel(tf.Conv2D) === undefined) return false
  if (wasmKernel(tf.Conv2DBackpropFilter) === undefined) {
    tf.registerKernel({ kernelName: tf.Conv2DBackpropFilter, backendName: "wasm", kernelFunc: conv2DBackpropFilter })
  }
  return overrideWasmKernel(tf.Conv2DBackpropInput, conv2DBackpropInput) && overrideWasmKernel(tf.MaxPoolGrad, maxPoolGrad)
}

/** Restores the original `Conv2DBackpropInput` and `MaxPoolGrad` (the added filter gradient stays). */
export const uninstallWasmConvGrads = (): void => overridden.forEach((name) => restoreWasmKernel(name))
