/**
 * The geometry of an NHWC convolution or pooling, read from a tfjs kernel's attrs: shared by the
 * wasm convolution-gradient fixes (WasmConvGrads.ts) and the native kernels (NativeConv.ts).
 */
import * as tf from "@tensorflow/tfjs"

export type Shape4 = [number, number, number, number]
type Pad = "valid" | "same" | number | tf.backend_util.ExplicitPadding
type Rounding = "floor" | "round" | "ceil" | undefined
type Pair = number | [number, number]

export const isNhwc = (attrs: tf.NamedAttrMap): boolean => ((attrs["dataFormat"] ?? "NHWC") as string) === "NHWC"

/**
 * tfjs's Conv2DInfo for `xShape` convolved with `filterShape` under the attrs' strides, padding and
 * rounding; dilations from the attrs when `dilated` (the forward kernel), else 1 (the gradient
 * kernels' attrs carry none).
 */
export const conv2DInfo = (xShape: Shape4, filterShape: Shape4, attrs: tf.NamedAttrMap, dilated = false): tf.backend_util.Conv2DInfo =>
  tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    attrs["strides"] as Pair,
    dilated ? (attrs["dilations"] as Pair) : 1,
    attrs["pad"] as Pad,
    attrs["dimRoundingMode"] as Rounding,
    false,
    "channelsLast"
  )

/** tfjs's Pool2DInfo for pooling `xShape` under the attrs' window, strides, padding and rounding. */
export const pool2DInfo = (xShape: Shape4, attrs: tf.NamedAttrMap): tf.backend_util.Conv2DInfo =>
  tf.backend_util.computePool2DInfo(xShape, attrs["filterSize"] as Pair, attrs["strides"] as Pair, 1, attrs["pad"] as Pad, attrs["dimRoundingMode"] as Rounding)
