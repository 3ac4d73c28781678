/**
 * Replacing a wasm kernel in the global tfjs kernel registry, idempotently and reversibly. The marker
 * lives on the registered function (the registry is process-global, modules may be loaded twice) and
 * remembers the kernel it replaced, so `restoreWasmKernel` can put it back (to measure a fix, or to
 * test it against the original).
 */
import * as tf from "@tensorflow/tfjs"

const marker = Symbol.for("distillery/wasm-kernel-override")

interface Marked {
  readonly [marker]?: tf.KernelConfig
}

/** The registered wasm kernel of that name, if tfjs-backend-wasm is loaded. */
export const wasmKernel = (kernelName: string): tf.KernelConfig | undefined =>
  tf.getKernelsForBackend("wasm").find((k) => k.kernelName === kernelName)

const replaced = (k: tf.KernelConfig | undefined): tf.KernelConfig | undefined =>
  (k?.kernelFunc as Marked | undefined)?.[marker]

export const isWasmKernelOverridden = (kernelName: string): boolean => replaced(wasmKernel(kernelName)) !== undefined

/**
 * Registers `make(original)` in place of the wasm kernel `kernelName`, keeping the original's setup
 * and dispose functions. A no-op when already overridden; false when there is no such kernel.
 */
export const overrideWasmKernel = (
  kernelName: string,
  make: (original: tf.KernelConfig) => tf.KernelFunc
): boolean => {
  const current = wasmKernel(kernelName)
  if (current === undefined) return false
  if (replaced(current) !== undefined) return true
  const kernelFunc = make(current)
  Object.defineProperty(kernelFunc, marker, { value: current })
  tf.unregisterKernel(kernelName, "wasm")
  tf.registerKernel({ ...current, kernelFunc })
  return true
}

/** Puts the original kernel back, if it was overridden. */
export const restoreWasmKernel = (kernelName: string): void => {
  const original = replaced(wasmKernel(kernelName))
  if (original === undefined) return
  tf.unregisterKernel(kernelName, "wasm")
  tf.registerKernel(original)
}

/** What the overrides need of tfjs-backend-wasm's `BackendWasm`. */
export interface WasmBackendLike {
  disposeData(dataId: tf.DataId, force?: boolean): boolean
  makeOutput(shape: Array<number>, dtype: tf.DataType): tf.TensorInfo
  /** A view (not a copy) of the tensor's bytes in the wasm heap; invalidated when the heap grows. */
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array
}
