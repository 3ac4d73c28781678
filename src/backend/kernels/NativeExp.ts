/**
 * `Exp` for the wasm backend on the addon's vectorised exp (native/src/sgemm.cc `exp`): a language
 * model's next-token cross-entropy takes exp of the whole (B·T, V) logits twice a step (log-softmax
 * and its gradient), and tfjs-backend-wasm's scalar loop cost ~14% of a small decoder's step. Other
 * dtypes, and an addon built before it had `exp`, go to the kernel underneath.
 */
import * as tf from "@tensorflow/tfjs"
import type { NativeAddon } from "../Native.js"
import type { WasmBackendLike } from "./Override.js"
import { overrideWasmKernel, restoreWasmKernel } from "./Override.js"

const tag = "native"

const nativeExp =
  (exp: NonNullable<NativeAddon["exp"]>) =>
  (below: tf.KernelConfig): tf.KernelFunc =>
  (args) => {
    const x = args.inputs["x"]!
    if (x.dtype !== "float32") return below.kernelFunc(args)
    const backend = args.backend as WasmBackendLike
    const out = backend.makeOutput([...x.shape], "float32")
    // Views after makeOutput: allocating may grow the heap and detach older views.
    exp(backend.typedArrayFromHeap(x) as Float32Array, backend.typedArrayFromHeap(out) as Float32Array)
    return out
  }

/** Routes `Exp` of `wasm` to the addon when it has `exp`. Idempotent; true when there is nothing to install. */
export const installNativeExp = (addon: NativeAddon): boolean => {
  const exp = addon.exp
  return exp === undefined ? true : overrideWasmKernel(tf.Exp, nativeExp(exp.bind(addon)), tag)
}

export const uninstallNativeExp = (): void => restoreWasmKernel(tf.Exp, tag)
