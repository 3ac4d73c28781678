/**
 * What the backend in use brings to training beyond tfjs's kernels, as capabilities the trainer
 * consumes without knowing which backend it runs on: the name Distillery records for it, its Adam
 * (one pass per variable on `native` and `webgpu`, tfjs's elsewhere) and, on `webgpu`, a fused MLP
 * training step. A new backend adds an entry here, not a branch in the training loop.
 */
import * as tf from "@tensorflow/tfjs"
import type { AdamHyper, StepOptimizer } from "./Adam.js"
import { tfjsAdam } from "./Adam.js"
import { activeNativeKernels } from "./Backend.js"
import { makeNativeAdam } from "./kernels/NativeAdam.js"
import { isWebGpuBackend } from "./WebGpu.js"
import { makeWebGpuAdam } from "./webgpu/Adam.js"
import type { FusedMlp, FusedMlpConfig, FusedMlpShape } from "./webgpu/FusedMlp.js"
import { buildFusedMlp, fusedMlpFits } from "./webgpu/FusedMlp.js"

/** A whole MLP training step in the backend's own kernels (webgpu/FusedMlp.ts documents what it computes). */
export interface FusedMlpStep {
  readonly fits: (shape: FusedMlpShape) => boolean
  readonly build: (config: FusedMlpConfig) => Promise<FusedMlp>
}

export interface BackendCapabilities {
  /** The Distillery name of the backend: `native` for wasm with the native kernels, else tfjs's. */
  readonly name: string
  readonly makeAdam: (h: AdamHyper) => StepOptimizer
  readonly fusedMlp?: FusedMlpStep
}

/** DISTILLERY_WEBGPU_FUSED=0 turns the fused step off (every webgpu training then goes through tfjs). */
export const fusedEnabled = (): boolean => process.env["DISTILLERY_WEBGPU_FUSED"] !== "0"

/** The capabilities of the backend in use now. */
export const backendCapabilities = (): BackendCapabilities => {
  const native = activeNativeKernels()
  if (native !== undefined) return { name: "native", makeAdam: (h) => makeNativeAdam(native, h) }
  if (isWebGpuBackend()) {
    return { name: "webgpu", makeAdam: makeWebGpuAdam, ...(fusedEnabled() ? { fusedMlp: { fits: fusedMlpFits, build: buildFusedMlp } } : {}) }
  }
  return { name: tf.getBackend(), makeAdam: tfjsAdam }
}
