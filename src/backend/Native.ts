/**
 * Loads Distillery's native kernels (native/: a cache-blocked AVX2/FMA SGEMM, im2col convolutions and
 * a fused Adam update,
 * built by `npm install` with node-gyp) when they were built, and says why not when they were not.
 * The `native` backend is tfjs-wasm with its matrix products, convolutions and Adam routed here
 * (kernels/NativeMatMul.ts, kernels/NativeConv.ts, kernels/NativeAdam.ts).
 *
 * Threads: a product large enough is split between `nativeThreads()` threads (default: the
 * DISTILLERY_THREADS environment variable, else the machine's cores, at most 8; 1 inside a
 * worker_thread, where the other workers already use the cores). Set it per thread with `setNativeThreads`.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { isMainThread } from "node:worker_threads"

/** The addon's functions (native/src/addon.cc). Arrays are read and written in place. */
export interface NativeAddon {
  /** c[i] = act(op(a[i]) op(b[i]) + bias) for i < batch; stride 0 broadcasts an operand. act: 0 linear, 1 relu, 2 relu6, 3 leaky relu. */
  matmul(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    aBatchStride: number,
    bBatchStride: number,
    bias: Float32Array | null,
    activation: number,
    alpha: number,
    threads: number
  ): void
  /** tfjs's Adam in one pass: m, v updated in place, the new parameter values written to `out`. */
  adam(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    c1: number,
    c2: number
  ): void
  /**
   * NHWC convolution work: op 0 conv2d (x, w -> y), 1 filter gradient (x, dy -> dw), 2 input gradient
   * (dy, w -> dx), 3 max-pool gradient (x, dy -> dx, with kh, kw the window and co = c).
   */
  conv(
    op: number,
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    batch: number,
    h: number,
    w: number,
    c: number,
    kh: number,
    kw: number,
    co: number,
    ho: number,
    wo: number,
    strideH: number,
    strideW: number,
    padTop: number,
    padLeft: number,
    threads: number
  ): void
  /** out[i] = exp(x[i]) for i < x.length; absent from an addon built before it. */
  exp?(x: Float32Array, out: Float32Array): void
  /** out[c] = Σ_r x[r * cols + c]. */
  sumRows(x: Float32Array, out: Float32Array, rows: number, cols: number): void
  info(): { readonly isa: string; readonly threads: number }
}

/** The package's root: the nearest folder above this module with a package.json (from src/backend/ or dist/). */
const packageRoot = (): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!fs.existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir)
  return dir
}

/** The built addon: native/build/Release/ of the package. */
export const nativeAddonPath = path.join(packageRoot(), "native", "build", "Release", "distillery_native.node")

type Loaded = { readonly ok: true; readonly addon: NativeAddon } | { readonly ok: false; readonly reason: string }

let loaded: Loaded | undefined

/** The addon, or why it cannot be used here. Loaded once; DISTILLERY_NATIVE=0 turns it off. */
export const loadNative = (): Loaded => {
  if (loaded !== undefined) return loaded
  if (process.env["DISTILLERY_NATIVE"] === "0") {
    loaded = { ok: false, reason: "The native kernels are turned off (DISTILLERY_NATIVE=0)." }
  } else if (!fs.existsSync(nativeAddonPath)) {
    loaded = {
      ok: false,
      reason:
        `The native kernels are not built (${path.relative(process.cwd(), nativeAddonPath)} is missing); ` +
        "`npm run install` builds them with node-gyp (needs g++, make and python3)."
    }
  } else {
    try {
      const addon = createRequire(import.meta.url)(nativeAddonPath) as NativeAddon
      loaded = { ok: true, addon }
    } catch (cause) {
      loaded = {
        ok: false,
        reason: `The native kernels failed to load (${String(cause)}); rebuild them for this Node with \`npm run install\`.`
      }
    }
  }
  return loaded
}

let threads: number | undefined

/** Threads a native product may use on this JS thread. */
export const nativeThreads = (): number => {
  if (threads === undefined) {
    const env = Number(process.env["DISTILLERY_THREADS"])
    const l = loadNative()
    threads = Number.isInteger(env) && env >= 1 ? env : !isMainThread ? 1 : l.ok ? l.addon.info().threads : 1
  }
  return threads
}

/** Sets the threads native products use on this JS thread (each worker_thread has its own setting). */
export const setNativeThreads = (n: number): void => {
  threads = Math.max(1, Math.floor(n))
}
