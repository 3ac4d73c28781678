/**
 * A fused training step for ReLU MLPs on the `webgpu` backend that bypasses tfjs. Through tfjs a step
 * of a 784-1200-1200-10 MLP is ~50 dispatches, each with a fresh bind group and uniform buffer, and
 * recording them costs ~7 ms of JavaScript: on a fast GPU that fixed cost is the whole step. Here
 * every buffer, pipeline and bind group is made once, and a step is one small uniform write and ~15
 * dispatches of the kernels in MlpShaders.ts recorded into one command buffer:
 *
 *   gather x rows by the epoch's permutation; per layer A·W + b (ReLU and inverted dropout in the
 *   epilogue); per-row loss and dL/dlogits in one kernel; per layer Aᵀ·dZ, column sums of dZ and
 *   dZ·Wᵀ (ReLU and dropout derivative in the epilogue); Adam over one flat parameter buffer.
 *
 * The loss is alpha · w_T · mean_b KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) · CE(labels, s), CE
 * averaged over the labelled rows (0 when a batch has none), KL over all rows; `LossWeights` holds
 * its constants. Its gradient w.r.t. the student logits is analytic: (1 - alpha) / n_labelled ·
 * (softmax(s) - onehot(y)) for a labelled row, plus alpha · w_T / (B · T) · (softmax(s/T) - softmax(t/T)).
 * Dropout masks come from a counter-based hash seeded per step, not tfjs's stream: deterministic for a
 * seed, not the same masks. What to train, and when, is the caller's (src/train/FusedMlp.ts).
 */
import type { AdamHyper } from "../Adam.js"
import type { GpuBuffer, GpuDevice, GpuEncoder, GpuPipeline, WebGpuBackendLike } from "../WebGpu.js"
import { flushTfjs, gpuUsage as usage, mapModeRead, maxWorkgroups, webGpuBackend } from "../WebGpu.js"
import type { LossWeights } from "./MlpShaders.js"
import { adamShader, biasGradShader, gatherShader, lossShader, matmulShader } from "./MlpShaders.js"

export type { LossWeights } from "./MlpShaders.js"

/** Parameters start at multiples of this many floats, so each can be bound at an aligned offset. */
const paramAlign = 64

/** What the fused step is built for; the data arrays are uploaded once. */
export interface FusedMlpConfig {
  /** [D, hidden..., C]. */
  readonly sizes: ReadonlyArray<number>
  readonly batchSize: number
  readonly dropout: number
  readonly loss: LossWeights
  readonly adam: AdamHyper
  readonly train: { readonly x: Float32Array; readonly y: Int32Array; readonly teacher?: Float32Array }
  readonly validationX?: Float32Array
  /** Initial weights in network order: kernel (d_in, d_out) then bias (d_out), per layer. */
  readonly initial: ReadonlyArray<Float32Array>
}

interface Binding {
  readonly buffer: GpuBuffer
  readonly offset?: number
  readonly size?: number
}

interface Dispatch {
  readonly pipeline: unknown
  readonly group: unknown
  readonly x: number
  readonly y: number
}

/** The fused step of one MLP, its buffers on the device; `destroy` frees them. */
export interface FusedMlp {
  readonly dispatchesPerStep: number
  /** Starts an epoch: its row order, and the loss sum back to 0. */
  readonly beginEpoch: (perm: Int32Array) => void
  /** Records and submits one step on rows perm[start, start + rows); t is the 1-based Adam step. */
  readonly step: (start: number, rows: number, seed: number, t: number) => void
  /** The epoch's loss sum (batch mean × rows, summed). */
  readonly readLossSum: () => Promise<number>
  /** (M, C) validation logits at inference (no dropout). */
  readonly validationLogits: () => Promise<Float32Array>
  readonly saveBest: () => void
  /** The weights in network order, from the current or the saved best parameters. */
  readonly readWeights: (best: boolean) => Promise<Array<Float32Array>>
  readonly idle: () => Promise<void>
  readonly destroy: () => void
}


/**
 * Compiled pipelines by device and WGSL source: a sweep trains the same shapes many times, and
 * compiling is the slow part of setting up (seconds on a software adapter).
 */
const pipelineCache = new WeakMap<GpuDevice, Map<string, GpuPipeline>>()

const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m

/** Builds every buffer, pipeline and bind group of the fused step; throws (nothing left allocated) on failure. */
const makeFusedMlp = (backend: WebGpuBackendLike, cfg: FusedMlpConfig): FusedMlp => {
  const device = backend.device
  const sizes = cfg.sizes
  const layers = sizes.length - 1
  const n = cfg.train.y.length
  const bs = cfg.batchSize
  const numClasses = sizes[layers]!
  const owned: Array<GpuBuffer> = []
  const buffer = (bytes: number, use: number): GpuBuffer => {
    const b = device.createBuffer({ size: roundUp(Math.max(bytes, 16), 16), usage: use })
    owned.push(b)
    return b
  }
  const storage = usage.storage | usage.copyDst | usage.copySrc
  const upload = (data: Float32Array | Int32Array | Uint32Array): GpuBuffer => {
    const b = buffer(data.byteLength, storage)
    device.queue.writeBuffer(b, 0, data)
    return b
  }
  try {
    // Flat parameters: each tensor at an aligned offset, so it can be bound on its own.
    const offsets: Array<number> = []
    let total = 0
    for (const w of cfg.initial) {
      offsets.push(total)
      total = roundUp(total + w.length, paramAlign)
    }
    const flat = new Float32Array(total)
    cfg.initial.forEach((w, i) => flat.set(w, offsets[i]!))
    const params = upload(flat)
    const grads = buffer(total * 4, storage)
    const moment1 = buffer(total * 4, storage)
    const moment2 = buffer(total * 4, storage)
    const best = buffer(total * 4, storage)
    const param = (buf: GpuBuffer, i: number): Binding => ({ buffer: buf, offset: offsets[i]! * 4, size: cfg.initial[i]!.length * 4 })

    const xAll = upload(cfg.train.x)
    const yAll = upload(cfg.train.y)
    const perm = buffer(n * 4, storage)
    const teacher = cfg.loss.kl > 0 ? upload(cfg.train.teacher!) : undefined
    const lossSum = buffer(16, storage)
    const stepUniform = buffer(32, usage.uniform | usage.copyDst)
    const stepData = new ArrayBuffer(32)
    const stepU32 = new Uint32Array(stepData)
    const stepF32 = new Float32Array(stepData)
    const zeros = new Float32Array(4)
    // acts[0] is the gathered input batch, acts[layers] the logits; dz[l] is dL/dZ of layer l.
    const acts = sizes.map((d) => buffer(bs * d * 4, storage))
    const dz = sizes.map((d, l) => (l === 0 ? undefined : buffer(bs * d * 4, storage)))

    let pipelines = pipelineCache.get(device)
    if (pipelines === undefined) {
      pipelines = new Map()
      pipelineCache.set(device, pipelines)
    }
    const cache = pipelines
    const pipelineFor = (code: string): GpuPipeline => {
      let pipeline = cache.get(code)
      if (pipeline === undefined) {
        pipeline = device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code }), entryPoint: "main" } })
        cache.set(code, pipeline)
      }
      return pipeline
    }
    const dispatch = (code: string, bindings: ReadonlyArray<Binding>, x: number, y = 1): Dispatch => {
      const pipeline = pipelineFor(code)
      const group = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: bindings.map((b, binding) => ({
          binding,
          resource: { buffer: b.buffer, ...(b.offset !== undefined ? { offset: b.offset } : {}), ...(b.size !== undefined ? { size: b.size } : {}) }
        }))
      })
      return { pipeline, group, x, y }
    }
    const st: Binding = { buffer: stepUniform }
    const tiles = (x: number) => Math.ceil(x / 64)
    const elementGroups = (count: number) => Math.min(maxWorkgroups, Math.ceil(count / 256))

    const gather = (src: GpuBuffer, idx: GpuBuffer): Dispatch =>
      dispatch(gatherShader(sizes[0]!), [{ buffer: src }, { buffer: idx }, { buffer: acts[0]! }, st], elementGroups(bs * sizes[0]!))
    const forwardLayers: Array<Dispatch> = []
    for (let l = 1; l <= layers; l++) {
      const hidden = l < layers
      forwardLayers.push(
        dispatch(
          matmulShader({ kind: "forward", k: sizes[l - 1]!, n: sizes[l]!, hidden, rate: cfg.dropout, layer: l }),
          [{ buffer: acts[l - 1]! }, param(params, 2 * (l - 1)), param(params, 2 * (l - 1) + 1), { buffer: acts[l]! }, st],
          tiles(sizes[l]!),
          tiles(bs)
        )
      )
    }
    const lossDispatch = dispatch(
      lossShader(numClasses, cfg.loss),
      [{ buffer: acts[layers]! }, { buffer: yAll }, { buffer: perm }, { buffer: dz[layers]! }, { buffer: lossSum }, st, ...(teacher !== undefined ? [{ buffer: teacher }] : [])],
      1
    )
    const backward: Array<Dispatch> = []
    for (let l = layers; l >= 1; l--) {
      const [dIn, dOut] = [sizes[l - 1]!, sizes[l]!]
      backward.push(
        dispatch(matmulShader({ kind: "wgrad", m: dIn, n: dOut }), [{ buffer: acts[l - 1]! }, { buffer: dz[l]! }, param(grads, 2 * (l - 1)), st], tiles(dOut), tiles(dIn)),
        dispatch(biasGradShader(dOut), [{ buffer: dz[l]! }, param(grads, 2 * (l - 1) + 1), st], Math.ceil(dOut / 64))
      )
      if (l > 1) {
        backward.push(
          dispatch(
            matmulShader({ kind: "igrad", k: dOut, n: dIn, rate: cfg.dropout }),
            [{ buffer: dz[l]! }, param(params, 2 * (l - 1)), { buffer: acts[l - 1]! }, { buffer: dz[l - 1]! }, st],
            tiles(dIn),
            tiles(bs)
          )
        )
      }
    }
    const adam = dispatch(
      adamShader(total, cfg.adam),
      [{ buffer: params }, { buffer: grads }, { buffer: moment1 }, { buffer: moment2 }, st],
      elementGroups(total)
    )
    const trainStep: ReadonlyArray<Dispatch> = [gather(xAll, perm), ...forwardLayers, lossDispatch, ...backward, adam]

    const m = cfg.validationX === undefined ? 0 : cfg.validationX.length / sizes[0]!
    const valX = m > 0 ? upload(cfg.validationX!) : undefined
    const valIdx = m > 0 ? upload(Uint32Array.from({ length: m }, (_, i) => i)) : undefined
    const valLogits = m > 0 ? buffer(m * numClasses * 4, storage) : undefined
    const evalStep: ReadonlyArray<Dispatch> = valX !== undefined ? [gather(valX, valIdx!), ...forwardLayers] : []

    const writeStep = (rows: number, start: number, seed: number, training: boolean, t: number, h: AdamHyper) => {
      stepU32[0] = rows
      stepU32[1] = start
      stepU32[2] = seed >>> 0
      stepU32[3] = training ? 1 : 0
      stepF32[4] = t > 0 ? 1 / (1 - Math.pow(h.beta1, t)) : 1
      stepF32[5] = t > 0 ? 1 / (1 - Math.pow(h.beta2, t)) : 1
      device.queue.writeBuffer(stepUniform, 0, stepData)
    }
    const record = (ds: ReadonlyArray<Dispatch>, after?: (e: GpuEncoder) => void) => {
      const encoder = device.createCommandEncoder()
      const pass = encoder.beginComputePass()
      for (const d of ds) {
        pass.setPipeline(d.pipeline)
        pass.setBindGroup(0, d.group)
        pass.dispatchWorkgroups(d.x, d.y)
      }
      pass.end()
      after?.(encoder)
      device.queue.submit([encoder.finish()])
    }
    const read = async (src: GpuBuffer, bytes: number): Promise<Float32Array> => {
      const staging = device.createBuffer({ size: roundUp(bytes, 16), usage: usage.mapRead | usage.copyDst })
      try {
        const encoder = device.createCommandEncoder()
        encoder.copyBufferToBuffer(src, 0, staging, 0, bytes)
        device.queue.submit([encoder.finish()])
        await staging.mapAsync(mapModeRead)
        const values = new Float32Array(staging.getMappedRange().slice(0, bytes))
        staging.unmap()
        return values
      } finally {
        staging.destroy()
      }
    }

    return {
      dispatchesPerStep: trainStep.length,
      beginEpoch: (p) => {
        device.queue.writeBuffer(perm, 0, p)
        device.queue.writeBuffer(lossSum, 0, zeros)
      },
      step: (start, rows, seed, t) => {
        // After whatever tfjs has recorded, which may have written what the step reads.
        flushTfjs(backend)
        writeStep(rows, start, seed, true, t, cfg.adam)
        record(trainStep)
      },
      readLossSum: async () => (await read(lossSum, 4))[0]!,
      validationLogits: async () => {
        for (let start = 0; start < m; start += bs) {
          const rows = Math.min(bs, m - start)
          writeStep(rows, start, 0, false, 0, cfg.adam)
          record(evalStep, (e) => e.copyBufferToBuffer(acts[layers]!, 0, valLogits!, start * numClasses * 4, rows * numClasses * 4))
        }
        return m > 0 ? read(valLogits!, m * numClasses * 4) : new Float32Array(0)
      },
      saveBest: () => {
        const encoder = device.createCommandEncoder()
        encoder.copyBufferToBuffer(params, 0, best, 0, total * 4)
        device.queue.submit([encoder.finish()])
      },
      readWeights: async (fromBest) => {
        const all = await read(fromBest ? best : params, total * 4)
        return cfg.initial.map((w, i) => all.slice(offsets[i]!, offsets[i]! + w.length))
      },
      idle: () => device.queue.onSubmittedWorkDone(),
      destroy: () => {
        for (const b of owned) b.destroy()
        owned.length = 0
      }
    }
  } catch (e) {
    for (const b of owned) b.destroy()
    throw e
  }
}

/**
 * makeFusedMlp, with WebGPU's validation errors (a shader the device rejects, a bad binding) thrown
 * here: they are otherwise only reported to the console, and every dispatch would silently do nothing.
 */
export const buildFusedMlp = async (cfg: FusedMlpConfig): Promise<FusedMlp> => {
  const backend = webGpuBackend()
  const device = backend.device
  flushTfjs(backend)
  device.pushErrorScope("validation")
  let fused: FusedMlp | undefined
  try {
    fused = makeFusedMlp(backend, cfg)
  } finally {
    const error = await device.popErrorScope()
    if (error !== null) {
      fused?.destroy()
      throw new Error(`The fused webgpu MLP kernels could not be set up: ${error.message}`)
    }
  }
  return fused
}

/** The sizes of a fused MLP and its data, for `fusedMlpFits`. */
export interface FusedMlpShape {
  /** [D, hidden..., C]. */
  readonly sizes: ReadonlyArray<number>
  readonly batchSize: number
  readonly trainRows: number
  readonly validationRows: number
}

/** Whether every buffer of the fused step fits the device's binding limits. */
export const fusedMlpFits = (s: FusedMlpShape): boolean => {
  const { limits } = webGpuBackend().device
  const [d, c] = [s.sizes[0]!, s.sizes[s.sizes.length - 1]!]
  const params = s.sizes.slice(1).reduce((sum, w, i) => sum + roundUp(s.sizes[i]! * w, paramAlign) + roundUp(w, paramAlign), 0)
  const bytes = [s.trainRows * d, s.trainRows * c, s.validationRows * d, s.validationRows * c, s.batchSize * Math.max(...s.sizes), params].map((x) => x * 4)
  return limits.minStorageBufferOffsetAlignment <= paramAlign * 4 && bytes.every((b) => b <= limits.maxStorageBufferBindingSize)
}
