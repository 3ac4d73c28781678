/**
 * What the language-model kinds share: the transformer params without a vocabulary, AdamW's params,
 * the held-out token measures, and the checks that two models read one tokenizer and one spec.
 */
import { Schema } from "effect"
import type { Tokenizer } from "../../domain/Artifact.js"
import { shapeProblem, TransformerSpec } from "../../models/TransformerSpec.js"
import { save as saveTokenizer } from "../../tokenizer/Tokenizer.js"
import { NodeError } from "../NodeKind.js"

export const PositiveInt = Schema.Int.pipe(Schema.positive())
export const positive = Schema.Number.pipe(Schema.positive())

/** The transformer of an `lm_train` node: TransformerSpec without `vocabSize`, which the tokenizer sets. */
export const LmModelSpec = TransformerSpec.from.pipe(Schema.omit("vocabSize"), Schema.filter((s) => shapeProblem(s))).annotations({
  identifier: "LmModelSpec",
  description: "{ type: transformer, layers, width, heads, context, ... }; the vocabulary size is the tokenizer's"
})

export const AdamWParams = Schema.Struct({
  type: Schema.Literal("adamw"),
  learningRate: Schema.optionalWith(positive, { default: () => 0.001 }).annotations({ description: "Peak step size (after warm-up)" }),
  beta1: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.9 }).annotations({
    description: "Decay of the first-moment (mean) estimate"
  }),
  beta2: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.95 }).annotations({
    description: "Decay of the second-moment estimate"
  }),
  epsilon: Schema.optionalWith(positive, { default: () => 1e-8 }).annotations({ description: "Added to the root of the second moment" }),
  weightDecay: Schema.optionalWith(Schema.NonNegative, { default: () => 0.1 }).annotations({
    description: "Decoupled weight decay (Loshchilov & Hutter 2019): w <- w - lr * weightDecay * w each step"
  })
}).annotations({ identifier: "AdamW" })

/** Held-out language-modelling measures from per-target nats and UTF-8 bytes (0 = not counted / not text). */
export const tokenMetrics = (
  nll: ArrayLike<number>,
  targets: ArrayLike<number>,
  bytes: ArrayLike<number>
): { readonly tokens: number; readonly bytes: number; readonly crossEntropy: number; readonly perplexity: number; readonly bitsPerByte: number } => {
  let nats = 0
  let tokens = 0
  let total = 0
  for (let i = 0; i < targets.length; i++) {
    if (targets[i]! < 0) continue
    nats += nll[i]!
    tokens++
    total += bytes[i]!
  }
  const crossEntropy = tokens > 0 ? nats / tokens : 0
  return { tokens, bytes: total, crossEntropy, perplexity: Math.exp(crossEntropy), bitsPerByte: total > 0 ? nats / Math.LN2 / total : 0 }
}

export const sameTokenizer = (a: Tokenizer, b: Tokenizer): boolean => saveTokenizer(a) === saveTokenizer(b)

/** A tokenizer's vocabulary in words, for errors: type, size, merges and special tokens. */
export const vocabularyWords = (t: Tokenizer): string =>
  `${t.type}, ${t.vocabSize} tokens (${t.merges.length / 2} merges, specials ${Object.keys(t.special).join(" ") || "none"})`

/** Why two models cannot be compared token by token, naming both vocabularies; undefined when they can. */
export const tokenizerMismatch = (what: string, other: Tokenizer, mine: Tokenizer): string | undefined =>
  sameTokenizer(other, mine)
    ? undefined
    : `${what} reads another tokenizer than the model: per-token agreement, KL and distillation need the same vocabulary (${what}: ${vocabularyWords(other)}; the model: ${vocabularyWords(mine)}); wire the same tokenizer node to both`

/** The spec fields (dropout aside, which holds no weights) where `there` and `here` differ, in words; undefined when none. */
export const specMismatch = (there: Record<string, unknown>, here: Record<string, unknown>): string | undefined => {
  const keys = [...new Set([...Object.keys(there), ...Object.keys(here)])].filter((k) => k !== "dropout")
  const differs = keys.filter((k) => JSON.stringify(there[k]) !== JSON.stringify(here[k]))
  return differs.length === 0 ? undefined : differs.map((k) => `${k}: ${JSON.stringify(there[k])} there, ${JSON.stringify(here[k])} here`).join("; ")
}

export const fail = (ctx: { readonly nodeId: string; readonly kind: string }, message: string, cause?: unknown) =>
  new NodeError({ node: ctx.nodeId, kind: ctx.kind, message, cause })

