/**
 * The WGSL kernels of the fused MLP training step (FusedMlp.ts): tiled matrix products with the bias,
 * ReLU and inverted dropout in their epilogues, the batch gather, the bias gradient, the loss with
 * its gradient w.r.t. the logits, and Adam over one flat parameter buffer. Each generator bakes the
 * layer's sizes and constants into the source; what changes per step comes from the `Step` uniform.
 */
import type { AdamHyper } from "../Adam.js"

/** A WGSL f32 literal that round-trips the f32 nearest to x. */
const f32 = (x: number): string => Math.fround(x).toExponential(9)

/** Per-step values, written once per step before its commands (queue order keeps them apart). */
const stepStruct = /* wgsl */ `
struct Step { rows : u32, start : u32, seed : u32, training : u32, c1 : f32, c2 : f32, p0 : f32, p1 : f32 }
`

export type MatmulForm =
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
export const matmulShader = (f: MatmulForm): string => {
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
export const gatherShader = (d: number): string => /* wgsl */ `${stepStruct}
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
export const biasGradShader = (n: number): string => /* wgsl */ `${stepStruct}
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

export interface LossWeights {
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
export const lossShader = (c: number, w: LossWeights): string => {
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

/** Adam over the flat parameter buffer, as Adam.ts; c1, c2 = 1 / (1 - βᵗ) from the step uniform. */
export const adamShader = (size: number, h: AdamHyper): string => /* wgsl */ `${stepStruct}
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
