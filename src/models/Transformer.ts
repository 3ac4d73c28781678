/**
 * A small decoder-only LLaMA-style language model in plain tfjs variables, read top-down as nanoGPT's
 * model.py: the weights a spec builds, RMSNorm, rotary embeddings, causal grouped-query attention,
 * the SwiGLU MLP, the block, the model. No I/O, no training loop, no sampling (generation/ holds the
 * KV cache and the sampler; it feeds past keys and values in through `KvHook`).
 *
 * Rotary convention: each head vector is split into halves (x1, x2) = (x[:d/2], x[d/2:]) and pair i is
 * (x1[i], x2[i]) rotated by position * theta^(-2i/d), as HF transformers' `rotate_half` (GPT-NeoX
 * style). Meta's original code, llama2.c and llama.cpp's LLaMA graph rotate adjacent pairs (x[2i],
 * x[2i+1]) instead, so a GGUF export must permute the rows of the query and key projections as
 * llama.cpp's convert_hf_to_gguf.py `permute` does (the two conventions give the same attention
 * scores once the weights are permuted).
 *
 * Kernels are stored (in, out) as Network's are, x W; GGUF/HF keep (out, in). Weight names:
 * `embedding` (V, D); per block i = 1..layers: `block{i}/attention_norm` (D), `block{i}/attention/query`
 * (D, H·hd), `.../key` and `.../value` (D, G·hd), `.../output` (H·hd, D), `block{i}/mlp_norm` (D),
 * `block{i}/mlp/gate` and `.../up` (D, F), `.../down` (F, D); `final_norm` (D); `head` (D, V) when the
 * head is not tied to the embedding. B batch, T time, D width, H heads, G KV heads, hd head size,
 * F MLP width, V vocabulary, S keys attended (cached + new).
 */
import * as tf from "@tensorflow/tfjs"
import type { Weight } from "../domain/Artifact.js"
import { featureSize } from "../domain/Artifact.js"
import { deriveSeed, makeRng } from "../domain/Random.js"
import type { ForwardOptions } from "./Network.js"
import { makeVariables, matchWeights, readWeights } from "./Network.js"
import type { TransformerDims, TransformerSpec } from "./TransformerSpec.js"
import { transformerDims } from "./TransformerSpec.js"

/** Standard deviation of every initial matrix (GPT-2, nanoGPT). */
const INIT_STD = 0.02

/**
 * Past keys and values for incremental decoding (generation/KvCache.ts implements it). Without one,
 * a forward pass attends over its own tokens only, starting at position 0.
 */
export interface KvHook {
  /** Position of this call's first token: how many tokens are cached already. */
  readonly start: number
  /** Stores this call's rotated keys and values (B, G, T, hd) of `layer` and returns all so far (B, G, start + T, hd). */
  readonly extend: (layer: number, k: tf.Tensor4D, v: tf.Tensor4D) => { readonly k: tf.Tensor4D; readonly v: tf.Tensor4D }
}

export interface TransformerForwardOptions extends ForwardOptions {
  readonly cache?: KvHook
}

export interface Transformer {
  readonly spec: TransformerSpec
  readonly dims: TransformerDims
  /** Trainable variables, in the order of `weightNames`. */
  readonly variables: ReadonlyArray<tf.Variable>
  readonly weightNames: ReadonlyArray<string>
  /** (context, hd) rotary cosines and sines per position and frequency, repeated over the two head halves; constants, not trained. */
  readonly rope: { readonly cos: tf.Tensor2D; readonly sin: tf.Tensor2D }
  /** The training layer's `TrainableModel` shape: tokens (B, T) int32 -> (B, T, V) logits, no features. */
  forward(tokens: tf.Tensor2D, opts: TransformerForwardOptions): { readonly logits: tf.Tensor3D; readonly features: Record<string, tf.Tensor2D> }
  dispose(): void
}

// ---------------------------------------------------------------------------------------------------
// Weights

/** One tensor of a transformer, before it has values. */
export interface TransformerWeightSpec {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  /** normal(0, 0.02); "residual": normal(0, 0.02 / sqrt(2 · layers)) for projections into the residual stream (GPT-2); "ones": norm scales. */
  readonly init: "normal" | "residual" | "ones"
}

/** The tensors a spec builds, in variable order. */
export const transformerWeightSpecs = (spec: TransformerSpec): ReadonlyArray<TransformerWeightSpec> => {
  const { kvHeads, headDim, mlpWidth } = transformerDims(spec)
  const [D, V, F] = [spec.width, spec.vocabSize, mlpWidth]
  const weights: Array<TransformerWeightSpec> = [{ name: "embedding", shape: [V, D], init: "normal" }]
  for (let i = 1; i <= spec.layers; i++) {
    const b = `block${i}`
    weights.push(
      { name: `${b}/attention_norm`, shape: [D], init: "ones" },
      { name: `${b}/attention/query`, shape: [D, spec.heads * headDim], init: "normal" },
      { name: `${b}/attention/key`, shape: [D, kvHeads * headDim], init: "normal" },
      { name: `${b}/attention/value`, shape: [D, kvHeads * headDim], init: "normal" },
      { name: `${b}/attention/output`, shape: [spec.heads * headDim, D], init: "residual" },
      { name: `${b}/mlp_norm`, shape: [D], init: "ones" },
      { name: `${b}/mlp/gate`, shape: [D, F], init: "normal" },
      { name: `${b}/mlp/up`, shape: [D, F], init: "normal" },
      { name: `${b}/mlp/down`, shape: [F, D], init: "residual" }
    )
  }
  weights.push({ name: "final_norm", shape: [D], init: "ones" })
  if (!spec.tiedHead) weights.push({ name: "head", shape: [D, V], init: "normal" })
  return weights
}

/** Trainable parameters of a transformer, or of the one a spec would build (a tied head counts once). */
export const transformerParameterCount = (specOrModel: TransformerSpec | Transformer): number =>
  "variables" in specOrModel
    ? specOrModel.variables.reduce((n, v) => n + v.size, 0)
    : transformerWeightSpecs(specOrModel).reduce((n, w) => n + featureSize(w.shape), 0)

const initialValues = (spec: TransformerSpec, w: TransformerWeightSpec, seed: number): Float32Array => {
  const values = new Float32Array(featureSize(w.shape))
  if (w.init === "ones") return values.fill(1)
  const std = w.init === "residual" ? INIT_STD / Math.sqrt(2 * spec.layers) : INIT_STD
  // One stream per tensor, so adding a layer leaves the others' initial values alone.
  const rng = makeRng(deriveSeed(seed, "init", w.name))
  for (let i = 0; i < values.length; i++) values[i] = rng.normal() * std
  return values
}

/** (context, hd) angles position · theta^(-2i/hd) for i < hd/2, the same again for the second half, as cos and sin. */
const ropeTables = (spec: TransformerSpec, headDim: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } => {
  const half = headDim / 2
  const cos = new Float32Array(spec.context * headDim)
  const sin = new Float32Array(spec.context * headDim)
  for (let p = 0; p < spec.context; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.pow(spec.ropeTheta, (-2 * i) / headDim)
      cos[p * headDim + i] = cos[p * headDim + half + i] = Math.cos(angle)
      sin[p * headDim + i] = sin[p * headDim + half + i] = Math.sin(angle)
    }
  }
  return { cos: tf.tensor2d(cos, [spec.context, headDim]), sin: tf.tensor2d(sin, [spec.context, headDim]) }
}

// ---------------------------------------------------------------------------------------------------
// Blocks

/** x / sqrt(mean(x²) + eps) · scale over the last axis (Zhang & Sennrich 2019). */
const rmsNorm = (x: tf.Tensor3D, scale: tf.Tensor, eps: number): tf.Tensor3D => {
  const meanSquare = tf.mean(tf.square(x), -1, true) // (B, T, 1)
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), scale) as tf.Tensor3D // (B, T, D)
}

/**
 * (hd, hd) signed permutation R with x R = [-x2, x1] for x = [x1, x2] (HF's `rotate_half`): as a
 * product it costs 2·hd flops per element and no copies, where split + concat along the last axis
 * (and their gradients, concat + split) cost strided copies that took a fifth of a training step.
 */
const rotateHalfMatrix = (hd: number): tf.Tensor2D => {
  const half = hd / 2
  const r = new Float32Array(hd * hd)
  for (let i = 0; i < half; i++) {
    r[(half + i) * hd + i] = -1 // out[i] = -x2[i]
    r[i * hd + half + i] = 1 // out[half + i] = x1[i]
  }
  return tf.tensor2d(r, [hd, hd])
}

/**
 * Rotates each (x1[i], x2[i]) pair of the head halves by its position's angle:
 * [x1 cos - x2 sin, x2 cos + x1 sin] = x ⊙ [cos, cos] + (x R) ⊙ [sin, sin], exactly (R's products are
 * single terms). x: (B, h, T, hd); cos, sin: (T, hd) the tables repeated over both halves.
 */
const rotate = (x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D, half: tf.Tensor2D): tf.Tensor4D => {
  const [B, h, T, hd] = x.shape
  const swapped = tf.reshape(tf.matMul(tf.reshape(x, [B * h * T, hd]), half), [B, h, T, hd]) // (B, h, T, hd) [-x2, x1]
  return tf.add(tf.mul(x, cos), tf.mul(swapped, sin)) as tf.Tensor4D // (B, h, T, hd)
}

/**
 * (rep·T, S) additive causal mask for queries at positions start..start+T-1 (repeated for the rep
 * query heads that share a KV head) over keys at 0..S-1: a query sees keys at or before its position.
 */
const causalMask = (T: number, S: number, start: number, rep: number): tf.Tensor2D => {
  const mask = new Float32Array(rep * T * S)
  for (let r = 0; r < rep; r++) {
    for (let t = 0; t < T; t++) mask.fill(-1e9, (r * T + t) * S + start + t + 1, (r * T + t + 1) * S)
  }
  return tf.tensor2d(mask, [rep * T, S])
}

/** What one forward pass's blocks share: the model, its weights by name, dropout, and where the tokens sit. */
interface Pass {
  readonly model: Transformer
  readonly param: (name: string) => tf.Tensor
  readonly drop: (x: tf.Tensor3D, site: string) => tf.Tensor3D
  /** Position of the first token. */
  readonly start: number
  /** (rep·T, S) causal mask; absent for a single token, which sees every key. */
  readonly mask: tf.Tensor2D | undefined
  readonly cache: KvHook | undefined
  readonly rope: RopeTables
}

/** One forward pass's rotary tables as `rotate` reads them: (T, hd) each at this pass's positions. */
interface RopeTables {
  readonly cos: tf.Tensor2D
  readonly sin: tf.Tensor2D
  /** cos and sin times 1/sqrt(hd), the attention scores' scale, for the queries. */
  readonly cosQ: tf.Tensor2D
  readonly sinQ: tf.Tensor2D
  /** (hd, hd) rotateHalfMatrix. */
  readonly half: tf.Tensor2D
}

const ropeAt = (rope: { cos: tf.Tensor2D; sin: tf.Tensor2D }, start: number, T: number): RopeTables => {
  const [context, hd] = rope.cos.shape
  const at = (table: tf.Tensor2D) => (start === 0 && T === context ? table : tf.slice(table, [start, 0], [T, hd])) // (T, hd)
  const [cos, sin] = [at(rope.cos), at(rope.sin)]
  const scale = 1 / Math.sqrt(hd)
  return { cos, sin, cosQ: tf.mul(cos, scale) as tf.Tensor2D, sinQ: tf.mul(sin, scale) as tf.Tensor2D, half: rotateHalfMatrix(hd) }
}

/** Causal self-attention with rotary embeddings and grouped KV heads. x: (B, T, D) normalised -> (B, T, D). */
const attention = (p: Pass, layer: number, x: tf.Tensor3D): tf.Tensor3D => {
  const { model, mask, cache } = p
  const [B, T, D] = x.shape
  const { heads: H } = model.spec
  const { kvHeads: G, headDim: hd } = model.dims
  const rep = H / G
  const name = `block${layer + 1}/attention`
  const flat = tf.reshape(x, [B * T, D]) // (B·T, D)
  const heads = (w: string, n: number): tf.Tensor4D =>
    tf.transpose(tf.reshape(tf.matMul(flat, p.param(`${name}/${w}`)), [B, T, n, hd]), [0, 2, 1, 3]) // (B, n, T, hd)
  const { rope } = p
  // The queries' tables carry the 1/sqrt(hd) of the scores: (q/sqrt(hd)) kᵀ, not a pass over (B, G, rep·T, S).
  const q = rotate(heads("query", H), rope.cosQ, rope.sinQ, rope.half) // (B, H, T, hd) scaled by 1/sqrt(hd)
  const k = rotate(heads("key", G), rope.cos, rope.sin, rope.half) // (B, G, T, hd)
  const v = heads("value", G) // (B, G, T, hd)
  const past = cache === undefined ? { k, v } : cache.extend(layer, k, v) // (B, G, S, hd) each
  // Query head h reads KV head floor(h / rep) (HF's repeat_kv order); the rep heads of a group are
  // contiguous, so they stack into one (rep·T)-row query per KV head and K/V are never copied.
  const qg = tf.reshape(q, [B, G, rep * T, hd]) // (B, G, rep·T, hd)
  const scores = tf.matMul(qg, past.k, false, true) // (B, G, rep·T, S)
  const probs = tf.softmax(mask === undefined ? scores : tf.add(scores, mask)) // (B, G, rep·T, S)
  const y = tf.reshape(tf.matMul(probs, past.v), [B, H, T, hd]) // (B, H, T, hd)
  const merged = tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B * T, H * hd]) // (B·T, H·hd) heads side by side
  return tf.reshape(tf.matMul(merged, p.param(`${name}/output`)), [B, T, D]) // (B, T, D)
}

/** SwiGLU (Shazeer 2020): (SiLU(x W_gate) ⊙ x W_up) W_down. x: (B, T, D) normalised -> (B, T, D). */
const mlp = (p: Pass, layer: number, x: tf.Tensor3D): tf.Tensor3D => {
  const [B, T, D] = x.shape
  const name = `block${layer + 1}/mlp`
  const flat = tf.reshape(x, [B * T, D]) // (B·T, D)
  const gate = tf.matMul(flat, p.param(`${name}/gate`)) // (B·T, F)
  const up = tf.matMul(flat, p.param(`${name}/up`)) // (B·T, F)
  const hidden = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) // (B·T, F) SiLU(gate) ⊙ up
  return tf.reshape(tf.matMul(hidden, p.param(`${name}/down`)), [B, T, D]) // (B, T, D)
}

/** Pre-norm block: x + attention(norm(x)), then + mlp(norm(x)); dropout on each branch. x: (B, T, D). */
const block = (p: Pass, layer: number, x: tf.Tensor3D): tf.Tensor3D => {
  const b = `block${layer + 1}`
  const eps = p.model.spec.normEps
  const a = attention(p, layer, rmsNorm(x, p.param(`${b}/attention_norm`), eps))
  const h = tf.add(x, p.drop(a, `${b}/attention`)) as tf.Tensor3D // (B, T, D)
  return tf.add(h, p.drop(mlp(p, layer, rmsNorm(h, p.param(`${b}/mlp_norm`), eps)), `${b}/mlp`)) as tf.Tensor3D // (B, T, D)
}

// ---------------------------------------------------------------------------------------------------
// Model

/**
 * tokens (B, T) int32 -> (B, T, V) next-token logits; differentiable with respect to `model.variables`.
 * With `opts.cache`, the tokens sit at positions cache.start.. and attend over the cached ones too.
 * Dropout only when training. Call inside tf.tidy (or dispose the result).
 */
export const forward = (model: Transformer, tokens: tf.Tensor2D, opts: TransformerForwardOptions): tf.Tensor3D =>
  model.forward(tokens, opts).logits

const makeTransformer = (spec: TransformerSpec, values: (w: TransformerWeightSpec) => Float32Array, dropoutSeed: number): Transformer => {
  const dims = transformerDims(spec)
  const weights = transformerWeightSpecs(spec)
  const variables = makeVariables(weights, values)
  const byName = new Map(weights.map((w, i) => [w.name, variables[i]!] as const))
  const param = (name: string): tf.Tensor => byName.get(name)!
  let calls = 0

  const run = (tokens: tf.Tensor2D, opts: TransformerForwardOptions): tf.Tensor3D => {
    const [B, T] = tokens.shape
    const start = opts.cache?.start ?? 0
    if (start + T > spec.context) {
      throw new Error(`${start + T} tokens exceed the transformer's context of ${spec.context}`)
    }
    const stepSeed = opts.seed ?? deriveSeed(dropoutSeed, "dropout", calls)
    if (opts.training) calls++
    const drop = (x: tf.Tensor3D, site: string): tf.Tensor3D =>
      opts.training && spec.dropout > 0 ? (tf.dropout(x, spec.dropout, undefined, deriveSeed(stepSeed, site)) as tf.Tensor3D) : x
    // A single new token sees every cached key: no mask needed.
    const mask = T === 1 ? undefined : causalMask(T, start + T, start, spec.heads / dims.kvHeads)
    const p: Pass = { model, param, drop, start, mask, cache: opts.cache, rope: ropeAt(rope, start, T) }
    let x = drop(tf.gather(param("embedding"), tokens) as tf.Tensor3D, "embedding") // (B, T, D)
    for (let layer = 0; layer < spec.layers; layer++) x = block(p, layer, x)
    const h = tf.reshape(rmsNorm(x, param("final_norm"), spec.normEps), [B * T, spec.width]) // (B·T, D)
    const logits = spec.tiedHead ? tf.matMul(h, param("embedding"), false, true) : tf.matMul(h, param("head")) // (B·T, V)
    return tf.reshape(logits, [B, T, spec.vocabSize]) // (B, T, V)
  }

  const rope = ropeTables(spec, dims.headDim)
  const model: Transformer = {
    spec,
    dims,
    variables,
    weightNames: weights.map((w) => w.name),
    rope,
    forward: (tokens, opts) => ({ logits: run(tokens, opts), features: {} }),
    dispose: () => tf.dispose([...variables, rope.cos, rope.sin])
  }
  return model
}

/** A freshly initialised transformer; the same seed gives the same weights on every backend. */
export const buildTransformer = (spec: TransformerSpec, seed: number): Transformer =>
  makeTransformer(spec, (w) => initialValues(spec, w, seed), deriveSeed(seed, "dropout"))

/** A transformer holding the given weights, matched by name; each must be present with its shape. */
export const transformerFromWeights = (spec: TransformerSpec, weights: ReadonlyArray<Weight>, seed = 0): Transformer => {
  const given = matchWeights(transformerWeightSpecs(spec), weights, `the ${spec.type} spec`)
  // Copied: the cpu backend keeps the array it is given, and the caller's arrays must stay theirs.
  return makeTransformer(spec, (w) => given.get(w.name)!.values.slice(), deriveSeed(seed, "dropout"))
}

/** Copies the current values out, one Float32Array Weight per variable (asynchronous for GPU backends). */
export const transformerWeights = (model: Pick<Transformer, "weightNames" | "variables">): Promise<Array<Weight>> =>
  readWeights(model, model.variables)
