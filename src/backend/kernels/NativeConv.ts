/**
 * `Conv2D`, `Conv2DBackpropFilter`, `Conv2DBackpropInput`, `MaxPoolGrad` and the bias-gradient case of
 * `Sum` for the wasm backend on the native kernels (native/src/conv.cc): convolutions as im2col + the
 * native SGEMM, reading and writing the wasm heap in place. On a small MNIST CNN the wasm versions
 * (XNNPACK's convolution, the filter gradient as a batch-as-channels convolution, a JS max-pool
 * gradient, a Sum that transposes before reducing) took ~70 of a ~85 ms step. NHWC, dilation 1,
 * float32; anything else goes to the kernel underneath.
 */
import * as tf from "@tensorflow/tfjs"
import type { NativeAddon } from "../Native.js"
import type { Shape4 } from "./ConvAttrs.js"
import { conv2DInfo, isNhwc, pool2DInfo } from "./ConvAttrs.js"
import { nativeThreads } from "../Native.js"
import type { WasmBackendLike } from "./Override.js"
import { isWasmKernelOverridden, overrideWasmKernel, restoreWasmKernel } from "./Override.js"


const tag = "native"
const kernelNames = [tf.Conv2D, tf.Conv2DBackpropFilter, tf.Conv2DBackpropInput, tf.MaxPoolGrad, tf.Sum] as const

const ops = { conv2d: 0, filterGrad: 1, inputGrad: 2, maxPoolGrad: 3 } as const

/** The shape arguments of the addon's `conv`, or undefined for what it does not handle. */
const convArgs = (info: tf.backend_util.Conv2DInfo): Array<number> | undefined => {
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1 || info.dataFormat !== "channelsLast") return undefined
  const dims = [info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.filterHeight, info.filterWidth, info.outChannels, info.outHeight, info.outWidth]
  if (dims.some((d) => d <= 0)) return undefined
  return [...dims, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left]
}

const run = (
  addon: NativeAddon,
  backend: WasmBackendLike,
  op: number,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  outShape: Array<number>,
  shape: Array<number>
): tf.TensorInfo => {
  const out = backend.makeOutput(outShape, "float32")
  // Views after makeOutput: allocating may grow the heap and detach older views.
  addon.conv(
    op,
    backend.typedArrayFromHeap(a) as Float32Array,
    backend.typedArrayFromHeap(b) as Float32Array,
    backend.typedArrayFromHeap(out) as Float32Array,
    ...(shape as [number, number, number, number, number, number, number, number, number, number, number, number, number]),
    nativeThreads()
  )
  return out
}

/** How one of the three convolution kernels names its operands and shapes. */
interface ConvKernel {
  readonly op: number
  readonly inputs: readonly [string, string]
  /** The input image's and the filter's shapes, from the operands and attrs. */
  readonly shapes: (a: tf.TensorInfo, b: tf.TensorInfo, attrs: tf.NamedAttrMap) => readonly [Shape4, Shape4]
  readonly dilated: boolean
  readonly outShape: (info: tf.backend_util.Conv2DInfo, attrs: tf.NamedAttrMap) => Array<number>
}

const convKernel =
  (spec: ConvKernel) =>
  (addon: NativeAddon) =>
  (below: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const a = args.inputs[spec.inputs[0]]!
    const b = args.inputs[spec.inputs[1]]!
    const attrs = args.attrs ?? {}
    if (a.dtype !== "float32" || b.dtype !== "float32" || !isNhwc(attrs)) return below.kernelFunc(args)
    const [xShape, filterShape] = spec.shapes(a, b, attrs)
    const info = conv2DInfo(xShape, filterShape, attrs, spec.dilated)
    const shape = convArgs(info)
    if (shape === undefined) return below.kernelFunc(args)
    return run(addon, args.backend as WasmBackendLike, spec.op, a, b, spec.outShape(info, attrs), shape)
  }

const conv2D = convKernel({
  op: ops.conv2d,
  inputs: ["x", "filter"],
  shapes: (x, filter) => [x.shape as Shape4, filter.shape as Shape4],
  dilated: true,
  outShape: (info) => info.outShape
})

const conv2DBackpropFilter = convKernel({
  op: ops.filterGrad,
  inputs: ["x", "dy"],
  shapes: (x, _dy, attrs) => [x.shape as Shape4, attrs["filterShape"] as Shape4],
  dilated: false,
  outShape: (_info, attrs) => [...(attrs["filterShape"] as Shape4)]
})

const conv2DBackpropInput = convKernel({
  op: ops.inputGrad,
  inputs: ["dy", "filter"],
  shapes: (_dy, filter, attrs) => [attrs["inputShape"] as Shape4, filter.shape as Shape4],
  dilated: false,
  outShape: (_info, attrs) => [...(attrs["inputShape"] as Shape4)]
})

const maxPoolGrad =
  (addon: NativeAddon) =>
  (below: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const dy = args.inputs["dy"]!
    const x = args.inputs["input"]!
    const a = args.attrs ?? {}
    if (x.dtype !== "float32" || dy.dtype !== "float32") return below.kernelFunc(args)
    const info = pool2DInfo(x.shape as Shape4, a)
    const dims = [info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.effectiveFilterHeight, info.effectiveFilterWidth, info.inChannels, info.outHeight, info.outWidth]
    if (dims.some((d) => d <= 0)) return below.kernelFunc(args)
    const shape = [...dims, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left]
    return run(addon, args.backend as WasmBackendLike, ops.maxPoolGrad, x, dy, [...x.shape], shape)
  }

/** Σ over every axis but the last, (..., C) -> (C): what a bias gradient is. Other sums go underneath. */
const sum =
  (addon: NativeAddon) =>
  (below: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const x = args.inputs["x"]!
    const a = args.attrs ?? {}
    const rank = x.shape.length
    if (x.dtype !== "float32" || rank < 2) return below.kernelFunc(args)
    const axes = tf.util.parseAxisParam(a["axis"] as number | Array<number>, x.shape).sort((p, q) => p - q)
    if (axes.length !== rank - 1 || axes.some((ax, i) => ax !== i)) return below.kernelFunc(args)
    const cols = x.shape[rank - 1]!
    const rows = x.shape.slice(0, -1).reduce((n, d) => n * d, 1)
    const backend = args.backend as WasmBackendLike
    const out = backend.makeOutput(a["keepDims"] === true ? [...axes.map(() => 1), cols] : [cols], "float32")
    addon.sumRows(backend.typedArrayFromHeap(x) as Float32Array, backend.typedArrayFromHeap(out) as Float32Array, rows, cols)
    return out
  }

export const isNativeConvInstalled = (): boolean => kernelNames.every((name) => isWasmKernelOverridden(name, tag))

/** Routes the convolution kernels of `wasm` to the addon. Idempotent; false without tfjs-backend-wasm's (and the fixes') kernels. */
export const installNativeConv = (addon: NativeAddon): boolean =>
  overrideWasmKernel(tf.Conv2D, conv2D(addon), tag) &&
  overrideWasmKernel(tf.Conv2DBackpropFilter, conv2DBackpropFilter(addon), tag) &&
  overrideWasmKernel(tf.Conv2DBackpropInput, conv2DBackpropInput(addon), tag) &&
  overrideWasmKernel(tf.MaxPoolGrad, maxPoolGrad(addon), tag) &&
  overrideWasmKernel(tf.Sum, sum(addon), tag)

export const uninstallNativeConv = (): void => kernelNames.forEach((name) => restoreWasmKernel(name, tag))
