/**
 * What a decoder-only language model is, as data: the `model: { type: transformer, ... }` block of a
 * train node. Transformer.ts builds the network; `transformerDims` resolves the defaults that depend on
 * other fields (KV heads, MLP width) so every caller sizes the weights the same way.
 */
import { Schema } from "effect"

const PositiveInt = Schema.Int.pipe(Schema.positive())

/** What is wrong with a spec's head layout, or undefined: the check every transformer spec schema applies. */
export const shapeProblem = (s: { readonly width: number; readonly heads: number; readonly kvHeads?: number | undefined }): string | undefined => {
  if (s.width % s.heads !== 0) return `width ${s.width} must be a multiple of heads ${s.heads}`
  if ((s.width / s.heads) % 2 !== 0) {
    return `head size width / heads = ${s.width / s.heads} must be even for rotary embeddings`
  }
  const kv = s.kvHeads ?? s.heads
  if (s.heads % kv !== 0) return `heads ${s.heads} must be a multiple of kvHeads ${kv}`
  return undefined
}

export const TransformerSpec = Schema.Struct({
  type: Schema.Literal("transformer"),
  vocabSize: Schema.propertySignature(PositiveInt).annotations({
    description: "Number of token ids the model reads and predicts (the tokenizer's vocabulary size)"
  }),
  layers: Schema.propertySignature(PositiveInt).annotations({ description: "Number of transformer blocks" }),
  width: Schema.propertySignature(PositiveInt).annotations({
    description: "Model (residual stream) width; a multiple of heads, with an even head size for rotary embeddings"
  }),
  heads: Schema.propertySignature(PositiveInt).annotations({ description: "Attention (query) heads per block" }),
  kvHeads: Schema.optional(PositiveInt).annotations({
    description: "Key/value heads per block (grouped-query attention); divides heads; default: heads (plain multi-head)"
  }),
  mlpWidth: Schema.optional(PositiveInt).annotations({
    description: "Hidden size of the SwiGLU MLP; default: 8/3 of width rounded up to a multiple of 16"
  }),
  context: Schema.propertySignature(PositiveInt).annotations({
    description: "Longest sequence the model reads (rotary tables and the KV cache are sized by it)"
  }),
  dropout: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 0.95)), { default: () => 0 }).annotations({
    description: "Dropout rate on the embeddings and on each residual branch during training"
  }),
  tiedHead: Schema.optionalWith(Schema.Boolean, { default: () => true }).annotations({
    description: "Output head shares the token embedding matrix (transposed) instead of having its own"
  }),
  ropeTheta: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 10000 }).annotations({
    description: "Base of the rotary position embedding frequencies"
  }),
  normEps: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 1e-5 }).annotations({
    description: "Epsilon added to the mean square in RMSNorm"
  })
}).pipe(Schema.filter((s) => shapeProblem(s)))
export type TransformerSpec = typeof TransformerSpec.Type

/** Sizes a spec implies, defaults filled in. */
export interface TransformerDims {
  readonly kvHeads: number
  /** width / heads. */
  readonly headDim: number
  readonly mlpWidth: number
}

/** LLaMA's SwiGLU sizing: 2/3 of a 4x MLP, so the three matrices cost about what a 4x GELU MLP's two do. */
export const defaultMlpWidth = (width: number): number => Math.ceil((8 * width) / 3 / 16) * 16

export const transformerDims = (spec: TransformerSpec): TransformerDims => ({
  kvHeads: spec.kvHeads ?? spec.heads,
  headDim: spec.width / spec.heads,
  mlpWidth: spec.mlpWidth ?? defaultMlpWidth(spec.width)
})

/** Decodes a spec stored as plain JSON, filling in the defaults. Throws a ParseError naming the problem. */
export const decodeTransformerSpec: (u: unknown) => TransformerSpec = Schema.decodeUnknownSync(TransformerSpec)
