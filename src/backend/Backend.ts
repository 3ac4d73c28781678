/**
 * Chooses and readies the tfjs backend that every tensor in the process runs on: `wasm` (the default,
 * XNNPACK, with the kernel fixes in `kernels/`), `native` (wasm with its matrix products, convolutions
 * and Adam on Distillery's native kernels, see Native.ts; the fastest CPU path when they were built),
 * `cpu` (plain JS, the reference), `tensorflow`
 * (libtensorflow via the optional `@tensorflow/tfjs-node[-gpu]` peers), `webgpu` (the optional
 * `@tensorflow/tfjs-backend-webgpu` plus the `webgpu` Dawn bindings), or `auto` (the fastest found:
 * tensorflow, else webgpu when a GPU adapter answers, else native, else wasm).
 * `initBackend` is plain async for scripts and benchmarks; `TfBackend` is the Effect service that
 * layers build it with.
 */
import * as tf from "@tensorflow/tfjs"
import { installWasmConvGrads } from "./kernels/WasmConvGrads.js"
import { installWasmDataMovementFix } from "./kernels/WasmDataMovement.js"
import { installWasmMatMulFix } from "./kernels/WasmMatMul.js"
import { installWasmSegmentSum } from "./kernels/WasmSegmentSum.js"
import { installNativeConv, uninstallNativeConv } from "./kernels/NativeConv.js"
import { installNativeExp, uninstallNativeExp } from "./kernels/NativeExp.js"
import { installNativeMatMul, isNativeMatMulInstalled, uninstallNativeMatMul } from "./kernels/NativeMatMul.js"
import type { NativeAddon } from "./Native.js"
import { loadNative } from "./Native.js"
import type { BackendName } from "./TfBackend.js"
import { backendError } from "./TfBackend.js"

export type { BackendName } from "./TfBackend.js"
export { BackendError, backendNames, isBackendName, TfBackend } from "./TfBackend.js"

const fail = backendError

/**
 * Imports an optional package that may not be installed. The specifier is a variable so that neither
 * TypeScript nor a bundler insists on resolving it.
 */
const importOptional = async (specifier: string): Promise<unknown | undefined> => {
  try {
    return (await import(specifier)) as unknown
  } catch (e) {
    if (isModuleNotFound(e, specifier)) return undefined
    throw e
  }
}

// Node says "Cannot find package"; Vite (under vitest) says "Could not resolve" for an optional peer that is absent.
const isModuleNotFound = (e: unknown, specifier: string): boolean => {
  const code = (e as { code?: unknown } | null)?.code
  const message = e instanceof Error ? e.message : String(e)
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND" || /Cannot find (module|package)|Could not resolve/.test(message)) &&
    message.includes(specifier)
  )
}

const setAndReady = async (name: string): Promise<boolean> => {
  const ok = await tf.setBackend(name)
  await tf.ready()
  return ok && tf.getBackend() === name
}

const readyWasm = async (requested: string): Promise<void> => {
  await import("@tensorflow/tfjs-backend-wasm")
  if (!(await setAndReady("wasm"))) throw fail(requested, "The wasm backend failed to initialise.")
  installWasmMatMulFix()
  installWasmDataMovementFix()
  installWasmConvGrads()
  installWasmSegmentSum()
}

const initWasm = async (): Promise<string> => {
  await readyWasm("wasm")
  uninstallNativeMatMul()
  uninstallNativeConv()
  uninstallNativeExp()
  return "wasm"
}

const initNative = async (): Promise<string> => {
  const native = loadNative()
  if (!native.ok) throw fail("native", native.reason)
  await readyWasm("native")
  if (!installNativeMatMul(native.addon) || !installNativeConv(native.addon) || !installNativeExp(native.addon)) {
    throw fail("native", "The native kernels could not be registered for wasm.")
  }
  return "native"
}

/**
 * The addon when the backend in use is `native` (wasm with the native products installed): the
 * trainer then also runs Adam natively.
 */
export const activeNativeKernels = (): NativeAddon | undefined => {
  if (tf.getBackend() !== "wasm" || !isNativeMatMulInstalled()) return undefined
  const native = loadNative()
  return native.ok ? native.addon : undefined
}

/** The Distillery name of the backend in use: `native` for wasm with the native kernels, else tfjs's name. */
export const backendInUse = (): string => (activeNativeKernels() !== undefined ? "native" : tf.getBackend())

const initCpu = async (): Promise<string> => {
  if (!(await setAndReady("cpu"))) throw fail("cpu", "The cpu backend failed to initialise.")
  return "cpu"
}

/** Loads tfjs-node-gpu or tfjs-node; returns false when neither is installed. */
const loadTensorflow = async (): Promise<boolean> => {
  for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    if ((await importOptional(pkg)) !== undefined) return true
  }
  return false
}

const initTensorflow = async (): Promise<string> => {
  let loaded: boolean
  try {
    loaded = await loadTensorflow()
  } catch (cause) {
    throw fail(
      "tensorflow",
      `@tensorflow/tfjs-node is installed but failed to load (${String(cause)}); reinstall it for this Node version.`,
      cause
    )
  }
  if (!loaded) {
    throw fail(
      "tensorflow",
      "The tensorflow backend needs libtensorflow bindings: run `npm install @tensorflow/tfjs-node` " +
        "(or `npm install @tensorflow/tfjs-node-gpu` for CUDA), matching @tensorflow/tfjs " + tf.version_core + "."
    )
  }
  if (tf.findBackendFactory("tensorflow") === null) {
    throw fail(
      "tensorflow",
      `@tensorflow/tfjs-node loaded but registered no backend with this copy of tfjs-core ${tf.version_core}; ` +
        "install a tfjs-node version equal to @tensorflow/tfjs so that npm deduplicates tfjs-core."
    )
  }
  if (!(await setAndReady("tensorflow"))) throw fail("tensorflow", "The tensorflow backend failed to initialise.")
  return "tensorflow"
}

/** The slice of the WebGPU API used to probe for an adapter. */
interface GpuLike {
  requestAdapter(options?: unknown): Promise<unknown>
}

/**
 * Makes `navigator.gpu` available from the `webgpu` (Dawn) bindings, which tfjs-backend-webgpu looks
 * for when it is imported. Returns the GPU object, or undefined when the bindings are not installed.
 */
const installNodeWebGpu = async (): Promise<GpuLike | undefined> => {
  const g = globalThis as { navigator?: { gpu?: GpuLike } }
  if (g.navigator?.gpu !== undefined) return g.navigator.gpu
  const mod = (await importOptional("webgpu")) as
    | { create?: (flags: Array<string>) => GpuLike; globals?: object; default?: { create?: (flags: Array<string>) => GpuLike; globals?: object } }
    | undefined
  if (mod === undefined) return undefined
  const create = mod.create ?? mod.default?.create
  const globals = mod.globals ?? mod.default?.globals
  if (create === undefined) return undefined
  if (globals !== undefined) {
    for (const [k, v] of Object.entries(globals)) {
      if (!(k in globalThis)) Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true })
    }
  }
  const gpu = create([])
  if (g.navigator === undefined) {
    Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true })
  } else {
    Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true, writable: true })
  }
  return gpu
}

const webgpuInstall =
  "The webgpu backend needs `npm install @tensorflow/tfjs-backend-webgpu@" + tf.version_core + " webgpu`."

/** What an adapter says of itself; `software` for CPU implementations (SwiftShader, llvmpipe/lavapipe). */
export interface WebGpuAdapter {
  readonly description: string
  readonly software: boolean
}

const describeAdapter = (adapter: unknown): WebGpuAdapter => {
  const a = adapter as { info?: Record<string, unknown>; isFallbackAdapter?: boolean }
  const info = a.info ?? {}
  const words = ["vendor", "architecture", "device", "description"].map((k) => String(info[k] ?? "")).filter((w) => w !== "")
  const description = [...new Set(words)].join(" ") || "unnamed adapter"
  const software = a.isFallbackAdapter === true || info["isFallbackAdapter"] === true || /swiftshader|llvmpipe|lavapipe|software/i.test(description)
  return { description, software }
}

/**
 * Probes for a WebGPU adapter and, when found, loads the tfjs webgpu backend. Never throws for absence:
 * says what was missing (the packages, a GPU or its driver). A software adapter (a CPU implementation
 * of Vulkan, far slower than the CPU backends) counts only with `allowSoftware`.
 */
export const probeWebGpu = async (
  options: { readonly allowSoftware?: boolean } = {}
): Promise<{ ok: true; adapter: WebGpuAdapter } | { ok: false; reason: string; cause?: unknown }> => {
  let gpu: GpuLike | undefined
  try {
    gpu = await installNodeWebGpu()
  } catch (cause) {
    return { ok: false, reason: `The \`webgpu\` bindings failed to load (${String(cause)}).`, cause }
  }
  if (gpu === undefined) return { ok: false, reason: webgpuInstall }
  let adapter: unknown
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" })
  } catch (cause) {
    return { ok: false, reason: `Requesting a WebGPU adapter failed (${String(cause)}).`, cause }
  }
  if (adapter === null || adapter === undefined) {
    return { ok: false, reason: "No WebGPU adapter was found (no GPU, or no Vulkan/Metal/D3D12 driver)." }
  }
  const described = describeAdapter(adapter)
  if (described.software && options.allowSoftware !== true) {
    return { ok: false, reason: `The only WebGPU adapter is a software one (${described.description}), slower than the CPU backends.` }
  }
  // Already registered when it was imported statically (a bundle such as bench/pack-gpu.mjs makes).
  if (tf.findBackendFactory("webgpu") === null) {
    try {
      if ((await importOptional("@tensorflow/tfjs-backend-webgpu")) === undefined) return { ok: false, reason: webgpuInstall }
    } catch (cause) {
      return { ok: false, reason: `@tensorflow/tfjs-backend-webgpu failed to load (${String(cause)}).`, cause }
    }
  }
  if (tf.findBackendFactory("webgpu") === null) {
    return { ok: false, reason: "@tensorflow/tfjs-backend-webgpu loaded but registered no webgpu backend." }
  }
  return { ok: true, adapter: described }
}

/** Asked for by name, webgpu takes a software adapter too (slow, but it runs); `auto` does not. */
const initWebGpu = async (): Promise<string> => {
  const probe = await probeWebGpu({ allowSoftware: true })
  if (!probe.ok) throw fail("webgpu", probe.reason, probe.cause)
  if (!(await setAndReady("webgpu"))) throw fail("webgpu", "The webgpu backend failed to initialise.")
  return "webgpu"
}

const initAuto = async (): Promise<string> => {
  try {
    if (await loadTensorflow()) return await initTensorflow()
  } catch {
    // A broken tfjs-node install should not stop `auto` from falling back.
  }
  if ((await probeWebGpu()).ok && (await setAndReady("webgpu").catch(() => false))) return "webgpu"
  if (loadNative().ok) {
    try {
      return await initNative()
    } catch {
      // Falls through to the wasm kernels, which need nothing built.
    }
  }
  return initWasm()
}

/**
 * Sets and readies the tfjs backend and returns the name of the one actually in use (for `auto`, the
 * one it chose). Rejects with a `BackendError` that says how to install what is missing.
 */
export const initBackend = async (name: BackendName): Promise<string> => {
  switch (name) {
    case "wasm":
      return initWasm()
    case "native":
      return initNative()
    case "cpu":
      return initCpu()
    case "tensorflow":
      return initTensorflow()
    case "webgpu":
      return initWebGpu()
    case "auto":
      return initAuto()
    default:
      throw fail(String(name), `Unknown backend "${String(name)}".`)
  }
}
