/**
 * GGUF export of a Distillery transformer, as a LLaMA-architecture file llama.cpp runs. Written field by
 * field in the order of the spec, as ggml-org/llama.cpp `gguf-py/gguf/gguf_writer.py` writes it: header
 * (magic, version 3, tensor count, KV count), KV metadata, tensor infos, then the tensor data, each
 * tensor at an offset aligned to `general.alignment`. All numbers little-endian.
 *
 * Two conversions happen on the way out, the same ones llama.cpp's convert_hf_to_gguf.py does for an HF
 * LLaMA: kernels go from Distillery's (in, out) to the (out, in) rows ggml multiplies with (ggml lists
 * dimensions innermost first, so an (out, in) matrix has ne = [in, out]); and the query and key rows of
 * each head are permuted from the rotate-halves order Distillery uses to llama.cpp's adjacent pairs.
 * The tokenizer goes out as `tokenizer.ggml.model = gpt2`: every token as its bytes in GPT-2's
 * byte-to-unicode form, the merges as "left right" strings of the same form, special tokens as CONTROL.
 * `readGguf` reads the header, metadata and tensor infos back (for tests and for checking a file).
 */
import { open, rename, rm } from "node:fs/promises"
import type { Tokenizer, Weight } from "../domain/Artifact.js"
import type { Transformer } from "../models/Transformer.js"
import type { TransformerSpec } from "../models/TransformerSpec.js"
import { transformerDims } from "../models/TransformerSpec.js"
import { BYTE_TOKENS, vocabularyOf } from "../tokenizer/Tokenizer.js"

// ---------------------------------------------------------------------------------------------------
// Constants of the format (gguf-py constants.py)

export const GGUF_MAGIC = 0x46554747 // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3
export const GGUF_ALIGNMENT = 32

/** GGUFValueType. */
export const ValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12
} as const
type ValueType = (typeof ValueType)[keyof typeof ValueType]

/** GGMLQuantizationType: the two this module writes. */
export const TensorType = { F32: 0, F16: 1 } as const

/** gguf-py TokenType. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const

// ---------------------------------------------------------------------------------------------------
// What goes in

/** A transformer as plain data: its spec and its weights by Distillery name. */
export interface GgufSource {
  readonly spec: TransformerSpec
  readonly weights: ReadonlyArray<Weight>
}

export interface GgufOptions {
  /** Path of the .gguf file; written to a temporary path and renamed, so a reader never sees half a file. */
  readonly file: string
  /** Storage type of the matrices; 1-D tensors (the norm scales) stay F32 either way, as gguf-py keeps them. Default f32. */
  readonly type?: "f32" | "f16"
  /** `general.name`; default "distillery". */
  readonly name?: string
}

/** One metadata value with its GGUF type; arrays carry their item type. */
export type GgufValue =
  | { readonly type: Exclude<ValueType, 9>; readonly value: number | bigint | boolean | string }
  | { readonly type: 9; readonly itemType: ValueType; readonly value: ReadonlyArray<number | bigint | boolean | string> }

export interface GgufTensor {
  readonly name: string
  /** ggml order: innermost (contiguous) dimension first. */
  readonly ne: ReadonlyArray<number>
  readonly type: number
  /** Bytes from the start of the data section. */
  readonly offset: number
}

/** Row-major data ready to write, with its ggml dims. */
interface OutTensor {
  readonly name: string
  readonly ne: ReadonlyArray<number>
  readonly type: number
  readonly data: Uint8Array
}

// ---------------------------------------------------------------------------------------------------
// Tokenizer

/**
 * GPT-2's byte-to-unicode table (openai/gpt-2 `encoder.py` `bytes_to_unicode`): printable bytes map to
 * themselves, the rest to U+0100 onwards, so every byte string is a printable string and back.
 */
export const byteToUnicode: ReadonlyArray<string> = (() => {
  const table: Array<string> = new Array(256)
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
  let n = 0
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : 256 + n++)
  return table
})()

const unicodeOf = (bytes: Uint8Array): string => Array.from(bytes, (b) => byteToUnicode[b]).join("")

/** tokens, token types and merges as tokenizer.ggml.* wants them. */
const ggmlVocabulary = (tokenizer: Tokenizer) => {
  const vocab = vocabularyOf(tokenizer)
  const specialIds = new Set(Object.values(tokenizer.special))
  const tokens = vocab.map((bytes, id) => (specialIds.has(id) ? new TextDecoder().decode(bytes) : unicodeOf(bytes)))
  const types = vocab.map((_, id) => (specialIds.has(id) ? TokenType.CONTROL : TokenType.NORMAL))
  const merges: Array<string> = []
  const m = tokenizer.merges
  for (let i = 0; i < m.length; i += 2) merges.push(`${tokens[m[i]!]} ${tokens[m[i + 1]!]}`)
  return { tokens, types, merges }
}

// ---------------------------------------------------------------------------------------------------
// Tensors

/** (rows, cols) row-major -> (cols, rows) row-major. */
const transpose = (values: Float32Array, rows: number, cols: number): Float32Array => {
  const out = new Float32Array(values.length)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!
  return out
}

/**
 * convert_hf_to_gguf.py `permute` on (heads·hd, in) rows: within each head, row half·hd/2 + i (HF's
 * rotate-halves pair i, first or second half) moves to row 2i + half (llama.cpp's adjacent pair i).
 */
const permuteRotaryRows = (values: Float32Array, heads: number, headDim: number, cols: number): Float32Array => {
  const out = new Float32Array(values.length)
  const half = headDim / 2
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let i = 0; i < half; i++) {
        const from = (h * headDim + s * half + i) * cols
        out.set(values.subarray(from, from + cols), (h * headDim + 2 * i + s) * cols)
      }
    }
  }
  return out
}

/** IEEE half from a float, round to nearest even (what numpy's astype(float16) does). */
const toHalf = (() => {
  const f32 = new Float32Array(1)
  const u32 = new Uint32Array(f32.buffer)
  return (x: number): number => {
    f32[0] = x
    const bits = u32[0]!
    const sign = (bits >>> 16) & 0x8000
    const exp = (bits >>> 23) & 0xff
    const mant = bits & 0x7fffff
    if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0) // Inf, NaN
    const e = exp - 127 + 15
    if (e >= 0x1f) return sign | 0x7c00 // overflow to Inf
    if (e <= 0) {
      if (e < -10) return sign // underflow to zero
      // Subnormal: shift the mantissa with its implicit bit into place, rounding to nearest even.
      const m = mant | 0x800000
      const shift = 14 - e
      const half = m >>> shift
      const rest = m & ((1 << shift) - 1)
      const mid = 1 << (shift - 1)
      return sign | (rest > mid || (rest === mid && (half & 1) === 1) ? half + 1 : half)
    }
    const half = (e << 10) | (mant >>> 13)
    const rest = mant & 0x1fff
    // A carry out of the mantissa correctly bumps the exponent (up to Inf).
    return sign | (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? half + 1 : half)
  }
})()

const encodeData = (values: Float32Array, type: number): Uint8Array => {
  if (type === TensorType.F32) {
    const out = new Uint8Array(values.length * 4)
    const view = new DataView(out.buffer)
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true)
    return out
  }
  const out = new Uint8Array(values.length * 2)
  const view = new DataView(out.buffer)
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, toHalf(values[i]!), true)
  return out
}

/** The LLaMA tensors of a transformer, in llama.cpp's names, layout and storage types. */
const llamaTensors = (source: GgufSource, type: "f32" | "f16"): Array<OutTensor> => {
  const { spec } = source
  const { kvHeads, headDim, mlpWidth } = transformerDims(spec)
  const [D, V, F] = [spec.width, spec.vocabSize, mlpWidth]
  const byName = new Map(source.weights.map((w) => [w.name, w] as const))
  const get = (name: string, shape: ReadonlyArray<number>): Float32Array => {
    const w = byName.get(name)
    if (w === undefined) throw new Error(`GGUF export: the weights have no ${name}; the spec needs it with shape [${shape.join(", ")}]`)
    if (w.shape.length !== shape.length || w.shape.some((n, i) => n !== shape[i])) {
      throw new Error(`GGUF export: ${name} has shape [${w.shape.join(", ")}], the spec needs [${shape.join(", ")}]`)
    }
    return w.values
  }
  const matrixType = type === "f16" ? TensorType.F16 : TensorType.F32
  const vector = (name: string, values: Float32Array): OutTensor => ({ name, ne: [values.length], type: TensorType.F32, data: encodeData(values, TensorType.F32) })
  // rows x cols row-major, i.e. ggml ne = [cols, rows].
  const matrix = (name: string, values: Float32Array, rows: number, cols: number): OutTensor => ({
    name,
    ne: [cols, rows],
    type: matrixType,
    data: encodeData(values, matrixType)
  })
  // A Distillery (in, out) kernel as the (out, in) rows ggml multiplies with.
  const kernel = (name: string, from: string, inDim: number, outDim: number, rotary?: number): OutTensor => {
    const rows = transpose(get(from, [inDim, outDim]), inDim, outDim) // (out, in)
    return matrix(name, rotary === undefined ? rows : permuteRotaryRows(rows, rotary, headDim, inDim), outDim, inDim)
  }

  const H = spec.heads
  const out: Array<OutTensor> = [matrix("token_embd.weight", get("embedding", [V, D]), V, D)] // (V, D) rows are already token vectors
  for (let i = 0; i < spec.layers; i++) {
    const b = `block${i + 1}`
    const g = `blk.${i}`
    out.push(
      vector(`${g}.attn_norm.weight`, get(`${b}/attention_norm`, [D])),
      kernel(`${g}.attn_q.weight`, `${b}/attention/query`, D, H * headDim, H),
      kernel(`${g}.attn_k.weight`, `${b}/attention/key`, D, kvHeads * headDim, kvHeads),
      kernel(`${g}.attn_v.weight`, `${b}/attention/value`, D, kvHeads * headDim),
      kernel(`${g}.attn_output.weight`, `${b}/attention/output`, H * headDim, D),
      vector(`${g}.ffn_norm.weight`, get(`${b}/mlp_norm`, [D])),
      kernel(`${g}.ffn_gate.weight`, `${b}/mlp/gate`, D, F),
      kernel(`${g}.ffn_up.weight`, `${b}/mlp/up`, D, F),
      kernel(`${g}.ffn_down.weight`, `${b}/mlp/down`, F, D)
    )
  }
  out.push(vector("output_norm.weight", get("final_norm", [D])))
  // A tied head has no output.weight: llama.cpp then multiplies by token_embd.weight.
  if (!spec.tiedHead) out.push(kernel("output.weight", "head", D, V))
  return out
}

// ---------------------------------------------------------------------------------------------------
// Metadata

const u32 = (value: number): GgufValue => ({ type: ValueType.UINT32, value })
const f32 = (value: number): GgufValue => ({ type: ValueType.FLOAT32, value })
const str = (value: string): GgufValue => ({ type: ValueType.STRING, value })
const arr = (itemType: ValueType, value: ReadonlyArray<number | string>): GgufValue => ({ type: ValueType.ARRAY, itemType, value })

/** The KV pairs, in the order gguf_writer.py would write them for a converted LLaMA. */
const llamaMetadata = (spec: TransformerSpec, tokenizer: Tokenizer, name: string): Array<readonly [string, GgufValue]> => {
  const { kvHeads, headDim, mlpWidth } = transformerDims(spec)
  const { tokens, types, merges } = ggmlVocabulary(tokenizer)
  const kv: Array<readonly [string, GgufValue]> = [
    ["general.architecture", str("llama")],
    ["general.name", str(name)],
    ["general.alignment", u32(GGUF_ALIGNMENT)],
    ["llama.context_length", u32(spec.context)],
    ["llama.embedding_length", u32(spec.width)],
    ["llama.block_count", u32(spec.layers)],
    ["llama.feed_forward_length", u32(mlpWidth)],
    ["llama.attention.head_count", u32(spec.heads)],
    ["llama.attention.head_count_kv", u32(kvHeads)],
    ["llama.rope.freq_base", f32(spec.ropeTheta)],
    ["llama.attention.layer_norm_rms_epsilon", f32(spec.normEps)],
    ["llama.rope.dimension_count", u32(headDim)],
    ["llama.vocab_size", u32(spec.vocabSize)],
    ["tokenizer.ggml.model", str("gpt2")]
  ]
  // llama.cpp splits text before merging with a named pre-tokenizer; "gpt-2" is Distillery's "gpt2" pattern.
  if (tokenizer.pattern === "gpt2") kv.push(["tokenizer.ggml.pre", str("gpt-2")])
  kv.push(
    ["tokenizer.ggml.tokens", arr(ValueType.STRING, tokens)],
    ["tokenizer.ggml.token_type", arr(ValueType.INT32, types)],
    ["tokenizer.ggml.merges", arr(ValueType.STRING, merges)]
  )
  const special = (key: string, token: string) => {
    const id = tokenizer.special[token]
    if (id !== undefined) kv.push([`tokenizer.ggml.${key}`, u32(id)])
  }
  special("bos_token_id", "<bos>")
  special("eos_token_id", "<eos>")
  special("padding_token_id", "<pad>")
  return kv
}

// ---------------------------------------------------------------------------------------------------
// Writing

/** Little-endian byte sink that grows as needed. */
class Sink {
  private buf = new Uint8Array(1 << 16)
  private view = new DataView(this.buf.buffer)
  length = 0
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.length + n))
    bigger.set(this.buf.subarray(0, this.length))
    this.buf = bigger
    this.view = new DataView(bigger.buffer)
  }
  u8(x: number) { this.room(1); this.view.setUint8(this.length, x); this.length += 1 }
  i8(x: number) { this.room(1); this.view.setInt8(this.length, x); this.length += 1 }
  u16(x: number) { this.room(2); this.view.setUint16(this.length, x, true); this.length += 2 }
  i16(x: number) { this.room(2); this.view.setInt16(this.length, x, true); this.length += 2 }
  u32(x: number) { this.room(4); this.view.setUint32(this.length, x, true); this.length += 4 }
  i32(x: number) { this.room(4); this.view.setInt32(this.length, x, true); this.length += 4 }
  f32(x: number) { this.room(4); this.view.setFloat32(this.length, x, true); this.length += 4 }
  f64(x: number) { this.room(8); this.view.setFloat64(this.length, x, true); this.length += 8 }
  u64(x: number | bigint) { this.room(8); this.view.setBigUint64(this.length, BigInt(x), true); this.length += 8 }
  i64(x: number | bigint) { this.room(8); this.view.setBigInt64(this.length, BigInt(x), true); this.length += 8 }
  bytes(b: Uint8Array) { this.room(b.length); this.buf.set(b, this.length); this.length += b.length }
  /** gguf_string: uint64 byte length, then UTF-8 bytes, no terminator. */
  string(s: string) { const b = utf8.encode(s); this.u64(b.length); this.bytes(b) }
  pad(alignment: number) { while (this.length % alignment !== 0) this.u8(0) }
  result(): Uint8Array { return this.buf.slice(0, this.length) }
}
const utf8 = new TextEncoder()

const writeScalar = (s: Sink, type: ValueType, v: number | bigint | boolean | string): void => {
  switch (type) {
    case ValueType.UINT8: return s.u8(Number(v))
    case ValueType.INT8: return s.i8(Number(v))
    case ValueType.UINT16: return s.u16(Number(v))
    case ValueType.INT16: return s.i16(Number(v))
    case ValueType.UINT32: return s.u32(Number(v))
    case ValueType.INT32: return s.i32(Number(v))
    case ValueType.FLOAT32: return s.f32(Number(v))
    case ValueType.BOOL: return s.u8(v ? 1 : 0)
    case ValueType.STRING: return s.string(String(v))
    case ValueType.UINT64: return s.u64(typeof v === "bigint" ? v : Number(v))
    case ValueType.INT64: return s.i64(typeof v === "bigint" ? v : Number(v))
    case ValueType.FLOAT64: return s.f64(Number(v))
    case ValueType.ARRAY: throw new Error("GGUF: nested arrays are not written")
  }
}

// A live model's weights are read through models/Transformer.js, imported here only then: reading a
// header or a vocabulary (nodes/lm/gguf.ts, at pipeline load) must not load tfjs.
const sourceOf = async (model: Transformer | GgufSource): Promise<GgufSource> =>
  "variables" in model ? { spec: model.spec, weights: await (await import("../models/Transformer.js")).transformerWeights(model) } : model

/** The whole GGUF file as bytes. */
export const ggufBytes = (source: GgufSource, tokenizer: Tokenizer, options: Omit<GgufOptions, "file"> = {}): Uint8Array => {
  const { spec } = source
  if (spec.vocabSize !== tokenizer.vocabSize) {
    throw new Error(`GGUF export: the model predicts ${spec.vocabSize} tokens but the tokenizer has ${tokenizer.vocabSize}; export the model with the tokenizer it was trained with`)
  }
  if (tokenizer.vocabSize < BYTE_TOKENS) throw new Error(`GGUF export: a tokenizer has at least ${BYTE_TOKENS} tokens`)
  const metadata = llamaMetadata(spec, tokenizer, options.name ?? "distillery")
  const tensors = llamaTensors(source, options.type ?? "f32")
  const s = new Sink()
  // Header.
  s.u32(GGUF_MAGIC)
  s.u32(GGUF_VERSION)
  s.u64(tensors.length)
  s.u64(metadata.length)
  // KV metadata: key, value type, value (arrays: item type, count, items).
  for (const [key, v] of metadata) {
    s.string(key)
    s.u32(v.type)
    if (v.type === ValueType.ARRAY) {
      s.u32(v.itemType)
      s.u64(v.value.length)
      for (const item of v.value) writeScalar(s, v.itemType, item)
    } else {
      writeScalar(s, v.type, v.value)
    }
  }
  // Tensor infos: name, n_dims, ne[0..n_dims), type, offset into the data section.
  let offset = 0
  for (const t of tensors) {
    s.string(t.name)
    s.u32(t.ne.length)
    for (const n of t.ne) s.u64(n)
    s.u32(t.type)
    s.u64(offset)
    offset += Math.ceil(t.data.length / GGUF_ALIGNMENT) * GGUF_ALIGNMENT
  }
  // Data: starts aligned, each tensor padded to the alignment.
  s.pad(GGUF_ALIGNMENT)
  for (const t of tensors) {
    s.bytes(t.data)
    s.pad(GGUF_ALIGNMENT)
  }
  return s.result()
}

/**
 * Writes `model` (a live transformer, or its spec and weights) and its tokenizer as a LLaMA GGUF file
 * at `options.file`, atomically (temporary file, fsync, rename).
 */
export const writeGguf = async (model: Transformer | GgufSource, tokenizer: Tokenizer, options: GgufOptions): Promise<void> => {
  const bytes = ggufBytes(await sourceOf(model), tokenizer, options)
  const temp = `${options.file}.tmp-${process.pid}`
  const handle = await open(temp, "w")
  try {
    await handle.writeFile(bytes)
    await handle.sync()
  } catch (error) {
    await handle.close()
    await rm(temp, { force: true })
    throw error
  }
  await handle.close()
  await rename(temp, options.file)
}

// ---------------------------------------------------------------------------------------------------
// Reading the header, metadata and tensor infos

export interface GgufHeader {
  readonly version: number
  readonly metadata: ReadonlyMap<string, GgufValue>
  readonly tensors: ReadonlyArray<GgufTensor>
  /** Byte offset of the data section. */
  readonly dataOffset: number
}

/** Reads a GGUF file's header, KV metadata and tensor infos (not the tensor data). Throws on a malformed file. */
export const readGguf = (bytes: Uint8Array): GgufHeader => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let at = 0
  const need = (n: number) => {
    if (at + n > bytes.length) throw new Error(`GGUF: file ends at byte ${bytes.length}, needed ${n} more at ${at}`)
  }
  const u32 = () => (need(4), (at += 4), view.getUint32(at - 4, true))
  const u64 = () => (need(8), (at += 8), Number(view.getBigUint64(at - 8, true)))
  const string = () => {
    const n = u64()
    need(n)
    at += n
    return new TextDecoder().decode(bytes.subarray(at - n, at))
  }
  const scalar = (type: number): number | bigint | boolean | string => {
    switch (type) {
      case ValueType.UINT8: return (need(1), (at += 1), view.getUint8(at - 1))
      case ValueType.INT8: return (need(1), (at += 1), view.getInt8(at - 1))
      case ValueType.UINT16: return (need(2), (at += 2), view.getUint16(at - 2, true))
      case ValueType.INT16: return (need(2), (at += 2), view.getInt16(at - 2, true))
      case ValueType.UINT32: return u32()
      case ValueType.INT32: return (need(4), (at += 4), view.getInt32(at - 4, true))
      case ValueType.FLOAT32: return (need(4), (at += 4), view.getFloat32(at - 4, true))
      case ValueType.BOOL: return (need(1), (at += 1), view.getUint8(at - 1) !== 0)
      case ValueType.STRING: return string()
      case ValueType.UINT64: return (need(8), (at += 8), view.getBigUint64(at - 8, true))
      case ValueType.INT64: return (need(8), (at += 8), view.getBigInt64(at - 8, true))
      case ValueType.FLOAT64: return (need(8), (at += 8), view.getFloat64(at - 8, true))
      default: throw new Error(`GGUF: unknown value type ${type} at byte ${at - 4}`)
    }
  }
  if (u32() !== GGUF_MAGIC) throw new Error("GGUF: the file does not start with the magic 'GGUF'")
  const version = u32()
  if (version !== GGUF_VERSION) throw new Error(`GGUF: version ${version}, only ${GGUF_VERSION} is read`)
  const tensorCount = u64()
  const kvCount = u64()
  const metadata = new Map<string, GgufValue>()
  for (let i = 0; i < kvCount; i++) {
    const key = string()
    const type = u32() as ValueType
    if (type === ValueType.ARRAY) {
      const itemType = u32() as ValueType
      const n = u64()
      const value: Array<number | bigint | boolean | string> = []
      for (let j = 0; j < n; j++) value.push(scalar(itemType))
      metadata.set(key, { type, itemType, value })
    } else {
      metadata.set(key, { type, value: scalar(type) } as GgufValue)
    }
  }
  const tensors: Array<GgufTensor> = []
  for (let i = 0; i < tensorCount; i++) {
    const name = string()
    const dims = u32()
    const ne = Array.from({ length: dims }, u64)
    tensors.push({ name, ne, type: u32(), offset: u64() })
  }
  const alignment = metadata.get("general.alignment")?.value
  const align = typeof alignment === "number" ? alignment : GGUF_ALIGNMENT
  return { version, metadata, tensors, dataOffset: Math.ceil(at / align) * align }
}
