/**
 * Replacing a wasm kernel in the global tfjs kernel registry, idempotently and reversibly. Overrides
 * stack: each is tagged (`fix` for the wasm kernel fixes, `native` for the native kernels) and remembers
 * the kernel it replaced, which it may call for cases it does not handle, and which `restoreWasmKernel`
 * puts back (to measure a fix, or to test it against the original). The marker lives on the
 * registered function: the registry is process-global and modules may be loaded twice.
 */
import * as tf from "@tensorflow/tfjs"

const marker = Symbol.for("distillery/wasm-kernel-override")

interface Layer {
  readonly tag: string
  readonly replaced: tf.KernelConfig
}

interface Marked {
  readonly [marker]?: Layer
}

/** The registered wasm kernel of that name, if tfjs-backend-wasm is loaded. */
export const wasmKernel = (kernelName: string): tf.KernelConfig | undefined =>
  tf.getKernelsForBackend("wasm").find((k) => k.kernelName === kernelName)

const layerOf = (k: tf.KernelConfig | undefined): Layer | undefined => (k?.kernelFunc as Marked | undefined)?.[marker]

/** Whether an override with this tag is in the kernel's stack. */
export const isWasmKernelOverridden = (kernelName: string, tag = "fix"): boolean => {
  for (let layer = layerOf(wasmKernel(kernelName)); layer !== undefined; layer = layerOf(layer.replaced)) {
    if (layer.tag === tag) return true
  }
  return false
}

/**
 * Registers `make(current)` in place of the wasm kernel `kernelName`, keeping the current one's setup
 * and dispose functions. A no-op when an override with this tag is already in place; false when there
 * is no such kernel.
 */
export const overrideWasmKernel = (
  kernelName: string,
  make: (current: tf.KernelConfig) => tf.KernelFunc,
  tag = "fix"
): boolean => {
  const current = wasmKernel(kernelName)
  if (current === undefined) return false
  if (isWasmKernelOverridden(kernelName, tag)) return true
  const kernelFunc = make(current)
  Object.defineProperty(kernelFunc, marker, { value: { tag, replaced: current } satisfies Layer })
  tf.unregisterKernel(kernelName, "wasm")
  tf.registerKernel({ ...current, kernelFunc })
  return true
}

/** Removes the override with this tag (and any stacked above it), if it is in place. */
export const restoreWasmKernel = (kernelName: string, tag = "fix"): void => {
  if (!isWasmKernelOverridden(kernelName, tag)) return
  let layer = layerOf(wasmKernel(kernelName))
  while (layer !== undefined && layer.tag !== tag) layer = layerOf(layer.replaced)
  if (layer === undefined) return
  tf.unregisterKernel(kernelName, "wasm")
  tf.registerKernel(layer.replaced)
}

/** What the overrides need of tfjs-backend-wasm's `BackendWasm`. */
export interface WasmBackendLike {
  disposeData(dataId: tf.DataId, force?: boolean): boolean
  /** One more tensor shares the bytes of `dataId` (freed when the last is disposed). */
  incRef(dataId: tf.DataId): void
  makeOutput(shape: Array<number>, dtype: tf.DataType): tf.TensorInfo
  /** A view (not a copy) of the tensor's bytes in the wasm heap; invalidated when the heap grows. */
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array
}
