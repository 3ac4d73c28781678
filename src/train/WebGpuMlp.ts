/**
 * A fused training path for ReLU MLPs on the `webgpu` backend that bypasses tfjs for the step. Through
 * tfjs a step of a 784-1200-1200-10 MLP is ~50 dispatches, each with a fresh bind group and uniform
 * buffer, and recording them costs ~7 ms of JavaScript: on a fast GPU that fixed cost is the whole
 * step. Here every buffer, pipeline and bind group is made once, and a step is one small uniform write
 * and ~15 dispatches of our own WGSL kernels recorded into one command buffer:
 *
 *   gather x rows by the epoch's permutation; per layer A·W + b (ReLU and inverted dropout in the
 *   epilogue); per-row loss and dL/dlogits in one kernel; per layer Aᵀ·dZ, column sums of dZ and
 *   dZ·Wᵀ (ReLU and dropout derivative in the epilogue); Adam over one flat parameter buffer.
 *
 * The objective is src/losses/Objective.ts for divergence "none" and "forward_kl" with a dense teacher:
 *   loss = alpha · w_T · mean_b KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) · CE(labels, s),
 * CE averaged over the labelled rows (0 when a batch has none), KL over all rows. Its gradient w.r.t.
 * the student logits is analytic: (1 - alpha) / n_labelled · (softmax(s) - onehot(y)) for a labelled
 * row, plus alpha · w_T / (B · T) · (softmax(s/T) - softmax(t/T)).
 *
 * The contract is Trainer.ts `train`'s (shuffle stream, callbacks, abort, validation, early stopping,
 * checkpoints, weights named as `networkWeights` returns them); `trainMlpOnWebGpu` returns undefined
 * for anything it does not cover, and the caller runs the generic loop. Dropout masks come from a
 * counter-based hash seeded per step, not tfjs's stream: deterministic for a seed, not the same masks.
 */
import type { GpuBuffer, GpuDevice, GpuEncoder, GpuPipeline } from "../backend/WebGpu.js"
import { flushTfjs, gpuUsage as usage, isWebGpuBackend, mapModeRead, maxWorkgroups, webGpuBackend } from "../backend/WebGpu.js"
import type { Weight } from "../domain/Artifact.js"
import { featureSize } from "../domain/Artifact.js"
import { deriveSeed, makeRng, permutation } from "../domain/Random.js"
import type { ObjectiveSpec } from "../losses/Objective.js"
import { temperatureFactor } from "../losses/Objective.js"
import type { MlpSpec } from "../models/ModelSpec.js"
import { buildModel, networkFromWeights, networkWeights } from "../models/Network.js"
import { epochOrder, makeEpochBook, nextTick, throwIfAborted } from "./Loop.js"
import type { TrainOptions, TrainResult } from "./Trainer.js"


/** Parameters start at multiples of this many floats, so each can be bound at an aligned offset. */
const paramAlign = 64
/** Steps between yields to the event loop; also bounds how far recording runs ahead of the GPU. */
const yieldEvery = 4

/** A WGSL f32 literal that round-trips the f32 nearest to x. */
const f32 = (x: number): string => Math.fround(x).toExponential(9)

/** Per-step values, written once per step before its commands (queue order keeps them apart). */
const stepStruct = /* wgsl */ `
struct Step { rows : u32, start : u32, seed : u32, training : u32, c1 : f32, c2 : f32, p0 : f32, p1 : f32 }
`

type MatmulForm =
  | { readonly kind: "forward"; readonly k: number; readonly n: number; readonly hidden: boolean; readonly rate: number; readonly layer: number }
  | { readonly kind: "wgrad"; readonly m: number; readonly n: number }
  | { readonly kind: "igrad"; readonly k: number; readonly n: number; readonly rate: number }

/**
 * C (M, N) = A (M, K) · B (K, N) in 64x64 tiles, 16x16 threads with a 4x4 block each, K in steps of
 * 16 through workgroup memory. Which operand is transposed only changes how a tile is loaded: threads
 * next to each other read neighbouring addresses in global memory.
 *   forward: Z = A_prev · W (+ b, ReLU, dropout)   M = rows, K = d_in, N = d_out
 *   wgrad:   dW = A_prevᵀ · dZ                      M = d_in, K = rows, N = d_out
 *   igrad:   dZ_prev = (dZ · Wᵀ) ⊙ relu'·mask       M = rows, K = d_out, N = d_in
 */
const matmulShader = (f: MatmulForm): string => {
  const dims =
    f.kind === "forward"
      ? `let M = st.rows; let K = ${f.k}u; let N = ${f.n}u;`
      : f.kind === "wgrad"
        ? `let M = ${f.m}u; let K = st.rows; let N = ${f.n}u;`
        : `let M = st.rows; let K = ${f.k}u; let N = ${f.n}u;`
  // A(m, k) and B(k, n); "kFast" means consecutive k are adjacent in memory.
  const aLoad = f.kind === "wgrad" ? { kFast: false, at: "a[gk * M + gm]" } : { kFast: true, at: "a[gm * K + gk]" }
  const bLoad = f.kind === "igrad" ? { kFast: true, at: "b[gn * K + gk]" } : { kFast: false, at: "b[gk * N + gn]" }
  const bindings =
    f.kind === "forward"
      ? `@group(0) @binding(0) var<storage, read> a : array<f32>;
@group(0) @binding(1) var<storage, read> b : array<f32>;
@group(0) @binding(2) var<storage, read> bias : array<f32>;
@group(0) @binding(3) var<storage, read_write> out : array<f32>;
@group(0) @binding(4) var<uniform> st : Step;`
      : f.kind === "wgrad"
        ? `@group(0) @binding(0) var<storage, read> a : array<f32>;
@group(0) @binding(1) var<storage, read> b : array<f32>;
@group(0) @binding(2) var<storage, read_write> out : array<f32>;
@group(0) @binding(3) var<uniform> st : Step;`
        : `@group(0) @binding(0) var<storage, read> a : array<f32>;
@group(0) @binding(1) var<storage, read> b : array<f32>;
@group(0) @binding(2) var<storage, read> prev : array<f32>;
@group(0) @binding(3) var<storage, read_write> out : array<f32>;
@group(0) @binding(4) var<uniform> st : Step;`
  const scale = (rate: number) => f32(rate > 0 ? 1 / (1 - rate) : 1)
  let epilogue: string
  if (f.kind === "forward") {
    const drop =
      f.hidden && f.rate > 0
        ? `if (st.training != 0u) {
          let h = mix32(mix32(mix32(st.seed ^ ${(0x9e3779b9 * f.layer) >>> 0}u) ^ r) ^ c);
          let u = f32(h >> 8u) * (1.0 / 16777216.0);
          z = select(0.0, z * ${scale(f.rate)}, u >= ${f32(f.rate)});
        }`
        : ""
    epilogue = `var z = v + bias[c];${f.hidden ? `\n        z = max(z, 0.0);\n        ${drop}` : ""}
        out[r * N + c] = z;`
  } else if (f.kind === "wgrad") {
    epilogue = "out[r * N + c] = v;"
  } else {
    // prev is the layer's output after ReLU and inverted dropout: positive exactly where both let the
    // gradient through, and the kept units were scaled by 1 / (1 - rate).
    epilogue = `out[r * N + c] = select(0.0, v * ${scale(f.rate)}, prev[r * N + c] > 0.0);`
  }
  return /* wgsl */ `${stepStruct}
${bindings}
var<workgroup> As : array<f32, 1024>;
var<workgroup> Bs : array<f32, 1024>;

fn mix32(x : u32) -> u32 {
  var h = x;
  h = h ^ (h >> 16u); h = h * 0x7feb352du;
  h = h ^ (h >> 15u); h = h * 0x846ca68bu;
  return h ^ (h >> 16u);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wg : vec3<u32>) {
  ${dims}
  let tx = lid.x;
  let ty = lid.y;
  let t = ty * 16u + tx;
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  var acc : array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < K; k0 = k0 + 16u) {
    for (var i = 0u; i < 4u; i = i + 1u) {
      let e = t + i * 256u;
      ${aLoad.kFast ? "let am = e / 16u; let ak = e % 16u;" : "let am = e % 64u; let ak = e / 64u;"}
      let gm = row0 + am;
      var gk = k0 + ak;
      var av = 0.0;
      if (gm < M && gk < K) { av = ${aLoad.at}; }
      As[ak * 64u + am] = av;
      ${bLoad.kFast ? "let bn = e / 16u; let bk = e % 16u;" : "let bn = e % 64u; let bk = e / 64u;"}
      let gn = col0 + bn;
      gk = k0 + bk;
      var bv = 0.0;
      if (gk < K && gn < N) { bv = ${bLoad.at}; }
      Bs[bk * 64u + bn] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk = kk + 1u) {
      var av4 : array<f32, 4>;
      var bv4 : array<f32, 4>;
      for (var i = 0u; i < 4u; i = i + 1u) {
        av4[i] = As[kk * 64u + ty + 16u * i];
        bv4[i] = Bs[kk * 64u + tx + 16u * i];
      }
      for (var i = 0u; i < 4u; i = i + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
          acc[i][j] = acc[i][j] + av4[i] * bv4[j];
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i = i + 1u) {
    for (var j = 0u; j < 4u; j = j + 1u) {
      let r = row0 + ty + 16u * i;
      let c = col0 + tx + 16u * j;
      if (r < M && c < N) {
        let v = acc[i][j];
        ${epilogue}
      }
    }
  }
}
`
}

/** (rows, D) batch rows of x, gathered through the index buffer from `st.start`. */
const gatherShader = (d: number): string => /* wgsl */ `${stepStruct}
@group(0) @binding(0) var<storage, read> src : array<f32>;
@group(0) @binding(1) var<storage, read> idx : array<u32>;
@group(0) @binding(2) var<storage, read_write> dst : array<f32>;
@group(0) @binding(3) var<uniform> st : Step;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) groups : vec3<u32>) {
  let total = st.rows * ${d}u;
  for (var e = gid.x; e < total; e = e + groups.x * 256u) {
    let r = e / ${d}u;
    dst[e] = src[idx[st.start + r] * ${d}u + (e - r * ${d}u)];
  }
}
`

/** (N) column sums of dZ over the batch's rows: the bias gradient. */
const biasGradShader = (n: number): string => /* wgsl */ `${stepStruct}
@group(0) @binding(0) var<storage, read> dz : array<f32>;
@group(0) @binding(1) var<storage, read_write> out : array<f32>;
@group(0) @binding(2) var<uniform> st : Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {
  let c = gid.x;
  if (c >= ${n}u) { return; }
  var s = 0.0;
  for (var r = 0u; r < st.rows; r = r + 1u) { s = s + dz[r * ${n}u + c]; }
  out[c] = s;
}
`

interface LossWeights {
  /** alpha · w_T on mean_b KL; 0 for CE only. */
  readonly kl: number
  /** 1 - alpha on CE, or 1 for CE only. */
  readonly ce: number
  readonly temperature: number
}

/**
 * One workgroup: counts the batch's labelled rows, then per row the loss and dL/dlogits, and adds the
 * batch-mean loss × rows to the epoch's sum. The teacher's KL term is compiled in only when used.
 */
const lossShader = (c: number, w: LossWeights): string => {
  const kl = w.kl > 0
  const T = f32(w.temperature)
  return /* wgsl */ `${stepStruct}
@group(0) @binding(0) var<storage, read> logits : array<f32>;
@group(0) @binding(1) var<storage, read> y : array<i32>;
@group(0) @binding(2) var<storage, read> perm : array<u32>;
@group(0) @binding(3) var<storage, read_write> dz : array<f32>;
@group(0) @binding(4) var<storage, read_write> total : array<f32>;
@group(0) @binding(5) var<uniform> st : Step;
${kl ? "@group(0) @binding(6) var<storage, read> teacher : array<f32>;" : ""}
var<workgroup> red : array<f32, 256>;

fn reduce(lid : u32, v : f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid : u32) {
  let rows = st.rows;
  var labelled = 0.0;
  for (var r = lid; r < rows; r = r + 256u) {
    if (y[perm[st.start + r]] >= 0) { labelled = labelled + 1.0; }
  }
  // As hardLabelCrossEntropy: the sum over labelled rows / max(count, 1), so no labels gives 0.
  let ceW = ${f32(w.ce)} / max(reduce(lid, labelled), 1.0);
  let klW = ${f32(w.kl)} / f32(rows);
  var loss = 0.0;
  for (var r = lid; r < rows; r = r + 256u) {
    let row = perm[st.start + r];
    let label = y[row];
    let base = r * ${c}u;
    var mx = logits[base];
    for (var j = 1u; j < ${c}u; j = j + 1u) { mx = max(mx, logits[base + j]); }
    var se = 0.0;
    for (var j = 0u; j < ${c}u; j = j + 1u) { se = se + exp(logits[base + j] - mx); }
    let lse = mx + log(se);
    if (label >= 0) { loss = loss + ceW * (lse - logits[base + u32(label)]); }
${
  kl
    ? `    // log p_T = (t - max t) / T - log sum exp(...), and the same for the student's q_T.
    let tb = row * ${c}u;
    var tm = teacher[tb];
    for (var j = 1u; j < ${c}u; j = j + 1u) { tm = max(tm, teacher[tb + j]); }
    var tse = 0.0;
    var sse = 0.0;
    for (var j = 0u; j < ${c}u; j = j + 1u) {
      tse = tse + exp((teacher[tb + j] - tm) / ${T});
      sse = sse + exp((logits[base + j] - mx) / ${T});
    }
    let tl = log(tse);
    let sl = log(sse);
    var div = 0.0;
    for (var j = 0u; j < ${c}u; j = j + 1u) {
      let lp = (teacher[tb + j] - tm) / ${T} - tl;
      let lq = (logits[base + j] - mx) / ${T} - sl;
      div = div + exp(lp) * (lp - lq);
    }
    loss = loss + klW * div;
`
    : ""
}    for (var j = 0u; j < ${c}u; j = j + 1u) {
      var g = 0.0;
      if (label >= 0) { g = ceW * (exp(logits[base + j] - lse) - select(0.0, 1.0, u32(label) == j)); }
${
  kl
    ? `      let lp = (teacher[tb + j] - tm) / ${T} - tl;
      let lq = (logits[base + j] - mx) / ${T} - sl;
      g = g + klW / ${T} * (exp(lq) - exp(lp));
`
    : ""
}      dz[base + j] = g;
    }
  }
  let batchLoss = reduce(lid, loss);
  if (lid == 0u) { total[0] = total[0] + batchLoss * f32(rows); }
}
`
}

interface AdamConstants {
  readonly learningRate: number
  readonly beta1: number
  readonly beta2: number
  readonly epsilon: number
}

/** Adam over the flat parameter buffer, as WebGpuAdam.ts; c1, c2 = 1 / (1 - βᵗ) from the step uniform. */
const adamShader = (size: number, h: AdamConstants): string => /* wgsl */ `${stepStruct}
@group(0) @binding(0) var<storage, read_write> p : array<f32>;
@group(0) @binding(1) var<storage, read> g : array<f32>;
@group(0) @binding(2) var<storage, read_write> m : array<f32>;
@group(0) @binding(3) var<storage, read_write> v : array<f32>;
@group(0) @binding(4) var<uniform> st : Step;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) groups : vec3<u32>) {
  let b1 = ${f32(h.beta1)};
  let b2 = ${f32(h.beta2)};
  for (var i = gid.x; i < ${size}u; i = i + groups.x * 256u) {
    let gi = g[i];
    let mi = b1 * m[i] + (1.0 - b1) * gi;
    let vi = b2 * v[i] + (1.0 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - ${f32(h.learningRate)} * (mi * st.c1) / (sqrt(vi * st.c2) + ${f32(h.epsilon)});
  }
}
`

/** What the fused trainer is built for; the data arrays are uploaded once. */
interface FusedConfig {
  /** [D, hidden..., C]. */
  readonly sizes: ReadonlyArray<number>
  readonly batchSize: number
  readonly dropout: number
  readonly loss: LossWeights
  readonly adam: AdamConstants
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

interface FusedMlp {
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
const makeFusedMlp = (device: GpuDevice, cfg: FusedConfig): FusedMlp => {
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

    const writeStep = (rows: number, start: number, seed: number, training: boolean, t: number, h: AdamConstants) => {
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
const build = async (device: GpuDevice, cfg: FusedConfig): Promise<FusedMlp> => {
  device.pushErrorScope("validation")
  let fused: FusedMlp | undefined
  try {
    fused = makeFusedMlp(device, cfg)
  } finally {
    const error = await device.popErrorScope()
    if (error !== null) {
      fused?.destroy()
      throw new Error(`The fused webgpu MLP kernels could not be set up: ${error.message}`)
    }
  }
  return fused
}

/** The loss weights the fused kernels implement for `o`, or undefined when they cannot. */
const lossWeights = (objective: ObjectiveSpec, o: TrainOptions): LossWeights | undefined => {
  if (objective.divergence !== "none" && objective.divergence !== "forward_kl") return undefined
  if (o.teacher !== undefined && !("logits" in o.teacher)) return undefined
  // As objectiveLoss: without a teacher batch, or with divergence "none", the CE alone at weight 1.
  if (o.teacher === undefined || objective.divergence === "none") return { kl: 0, ce: 1, temperature: 1 }
  return { kl: objective.alpha * temperatureFactor(objective), ce: 1 - objective.alpha, temperature: objective.temperature }
}

/** Everything `trainMlpOnWebGpu` needs once it has decided to take `o`. */
interface Accepted {
  readonly spec: MlpSpec
  readonly loss: LossWeights
  readonly adam: AdamConstants
}

/** DISTILLERY_WEBGPU_FUSED=0 turns the fused path off (every webgpu training then goes through tfjs). */
export const fusedEnabled = (): boolean => process.env["DISTILLERY_WEBGPU_FUSED"] !== "0"

const accept = (o: TrainOptions): Accepted | undefined => {
  if (!fusedEnabled() || !isWebGpuBackend() || o.objective === undefined || o.extra !== undefined) return undefined
  const spec = o.spec
  if (spec.type !== "mlp" || spec.activation !== "relu" || spec.inputDropout > 0) return undefined
  const opt = o.optimizer
  if (opt.type !== "adam" || (opt.weightDecay ?? 0) !== 0) return undefined
  const loss = lossWeights(o.objective, o)
  if (loss === undefined) return undefined
  return {
    spec,
    loss,
    adam: { learningRate: opt.learningRate, beta1: opt.beta1 ?? 0.9, beta2: opt.beta2 ?? 0.999, epsilon: opt.epsilon ?? 1e-7 }
  }
}

/** The initial weights in network order, as the generic loop would start from them (same seeded init). */
const initialWeights = async (o: TrainOptions): Promise<Array<Weight>> => {
  const net =
    o.initial !== undefined
      ? networkFromWeights(o.spec, o.featureShape, o.numClasses, o.initial.weights, o.seed)
      : buildModel(o.spec, o.featureShape, o.numClasses, o.seed)
  try {
    return await networkWeights(net)
  } finally {
    net.dispose()
  }
}

/** Mean CE and accuracy over the labelled rows, from (M, C) logits; undefined when none is labelled. */
const scoreValidation = (logits: Float32Array, y: Int32Array, c: number): { loss: number; accuracy: number } | undefined => {
  let ce = 0
  let correct = 0
  let count = 0
  for (let r = 0; r < y.length; r++) {
    const label = y[r]!
    if (label < 0) continue
    const base = r * c
    let mx = logits[base]!
    let arg = 0
    for (let j = 1; j < c; j++) {
      if (logits[base + j]! > mx) {
        mx = logits[base + j]!
        arg = j
      }
    }
    let se = 0
    for (let j = 0; j < c; j++) se += Math.exp(logits[base + j]! - mx)
    ce += mx + Math.log(se) - logits[base + label]!
    if (arg === label) correct++
    count++
  }
  return count > 0 ? { loss: ce / count, accuracy: correct / count } : undefined
}

const fitsDevice = (device: GpuDevice, bytes: ReadonlyArray<number>): boolean =>
  device.limits.minStorageBufferOffsetAlignment <= paramAlign * 4 && bytes.every((b) => b <= device.limits.maxStorageBufferBindingSize)

/**
 * Trains `o` with the fused kernels when they cover it (see the module doc), else returns undefined.
 * Expects `o` already validated (Trainer.ts `train` calls it after its checks).
 */
export const trainMlpOnWebGpu = async (o: TrainOptions): Promise<TrainResult | undefined> => {
  const accepted = accept(o)
  if (accepted === undefined) return undefined
  const backend = webGpuBackend()
  const device = backend.device
  const d = featureSize(o.featureShape)
  const sizes = [d, ...accepted.spec.hidden, o.numClasses]
  const n = o.train.y.length
  const paramCount = sizes.slice(1).reduce((s, w, i) => s + roundUp(sizes[i]! * w, paramAlign) + roundUp(w, paramAlign), 0)
  const bs = Math.min(o.batchSize, n)
  const widest = Math.max(...sizes)
  const m = o.validation?.y.length ?? 0
  if (!fitsDevice(device, [n * d * 4, n * o.numClasses * 4, m * d * 4, m * o.numClasses * 4, bs * widest * 4, paramCount * 4])) return undefined
  throwIfAborted(o.signal)

  const started = performance.now()
  const batches = Math.ceil(n / o.batchSize)
  const reportEvery = Math.max(1, Math.floor(o.onBatchEvery ?? 10))
  const book = makeEpochBook(o)
  const metric = book.metric
  const initial = await initialWeights(o)
  flushTfjs(backend)
  const fused = await build(device, {
    sizes,
    batchSize: bs,
    dropout: accepted.spec.dropout,
    loss: accepted.loss,
    adam: accepted.adam,
    train: { x: o.train.x, y: o.train.y, ...(accepted.loss.kl > 0 ? { teacher: (o.teacher as { logits: Float32Array }).logits } : {}) },
    ...(metric !== "train_loss" ? { validationX: o.validation!.x } : {}),
    initial: initial.map((w) => w.values)
  })
  try {
    let t = 0
    let inFlight: Promise<void> | undefined
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const epochStart = performance.now()
      fused.beginEpoch(epochOrder(o.seed, epoch, n))
      for (let b = 0; b < batches; b++) {
        throwIfAborted(o.signal)
        const start = b * o.batchSize
        flushTfjs(backend)
        fused.step(start, Math.min(o.batchSize, n - start), deriveSeed(o.seed, "dropout", epoch, b), ++t)
        if (o.onBatch !== undefined && ((b + 1) % reportEvery === 0 || b + 1 === batches)) o.onBatch({ epoch, batch: b + 1, batches })
        if ((b + 1) % yieldEvery === 0) {
          // Waits for the GPU only as far as the previous yield, so recording stays a few steps ahead.
          await inFlight
          inFlight = fused.idle()
          await nextTick()
        }
      }
      throwIfAborted(o.signal)
      const trainLoss = (await fused.readLossSum()) / n
      const trainSeconds = (performance.now() - epochStart) / 1000
      const v = metric === "train_loss" ? undefined : scoreValidation(await fused.validationLogits(), o.validation!.y, o.numClasses)
      throwIfAborted(o.signal)
      const { best, stop } = book.record({ epoch, trainLoss, ...(v !== undefined ? { validation: v } : {}), started: epochStart, trainSeconds })
      if (best && o.checkpoint === "best") fused.saveBest()
      if (stop) break
    }
    const values = await fused.readWeights(book.useBest())
    return {
      weights: initial.map((w, i) => ({ name: w.name, shape: [...w.shape], values: values[i]! })),
      info: book.info("webgpu", started),
      history: book.history
    }
  } finally {
    // Buffers still used by submitted work are destroyed only once it is done.
    await fused.idle()
    fused.destroy()
  }
}

export interface FusedStepTiming {
  readonly msPerStep: number
  /** Time JS spent recording and submitting a step, the GPU not waited for. */
  readonly issueMsPerStep: number
  readonly dispatchesPerStep: number
}

/**
 * Times `steps` fused steps (CE loss, Adam) of an MLP on random data of one batch, on the active
 * webgpu backend, after 5 warm-up steps (bench/gpu.ts).
 */
export const timeFusedMlpStep = async (o: {
  readonly hidden: ReadonlyArray<number>
  readonly inputSize: number
  readonly numClasses: number
  readonly batchSize: number
  readonly steps: number
  readonly dropout?: number
}): Promise<FusedStepTiming> => {
  if (!isWebGpuBackend()) throw new Error("timeFusedMlpStep needs the webgpu backend")
  const backend = webGpuBackend()
  const rng = makeRng(1)
  const b = o.batchSize
  const spec: MlpSpec = { type: "mlp", hidden: [...o.hidden], activation: "relu", dropout: o.dropout ?? 0, inputDropout: 0 }
  const net = buildModel(spec, [o.inputSize], o.numClasses, 1)
  let initial: Array<Weight>
  try {
    initial = await networkWeights(net)
  } finally {
    net.dispose()
  }
  flushTfjs(backend)
  const fused = await build(backend.device, {
    sizes: [o.inputSize, ...o.hidden, o.numClasses],
    batchSize: b,
    dropout: spec.dropout,
    loss: { kl: 0, ce: 1, temperature: 1 },
    adam: { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    train: {
      x: Float32Array.from({ length: b * o.inputSize }, () => rng.next()),
      y: Int32Array.from({ length: b }, () => rng.int(o.numClasses))
    },
    initial: initial.map((w) => w.values)
  })
  try {
    fused.beginEpoch(permutation(b, rng))
    let t = 0
    for (let i = 0; i < 5; i++) fused.step(0, b, i, ++t)
    await fused.idle()
    let issue = 0
    const t0 = performance.now()
    for (let i = 0; i < o.steps; i++) {
      const s0 = performance.now()
      fused.step(0, b, i, ++t)
      issue += performance.now() - s0
    }
    await fused.idle()
    return { msPerStep: (performance.now() - t0) / o.steps, issueMsPerStep: issue / o.steps, dispatchesPerStep: fused.dispatchesPerStep }
  } finally {
    await fused.idle()
    fused.destroy()
  }
}
