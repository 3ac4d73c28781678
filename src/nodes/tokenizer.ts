/**
 * The `tokenizer` node kind: a byte-level tokenizer (256 bytes + special tokens), byte-level BPE
 * trained on a corpus's train split, or the vocabulary of a GGUF model file (so a student adopts a
 * GGUF teacher's tokenizer and token-level KD from it is possible). The tokenizer is an artifact, so every model and generation
 * downstream has it in its cache key. Metrics: the vocabulary size, the training bytes and the
 * compression (UTF-8 bytes per token) on the corpus's validation split.
 */
import { Clock, Effect, Schema } from "effect"
import type { TextCorpus, Tokenizer } from "../domain/Artifact.js"
import { deriveSeed, makeRng, shuffleInPlace } from "../domain/Random.js"
import { BYTE_TOKENS, DEFAULT_SPECIAL, MAX_VOCAB } from "../tokenizer/Tokenizer.js"
import { resolveDataPath } from "../data/files.js"
import { ggufFingerprint } from "./lm/gguf.js"
import { defineKind, NodeError, onRun } from "./NodeKind.js"

const Special = Schema.optionalWith(
  Schema.Array(Schema.NonEmptyString).pipe(Schema.filter((names) => new Set(names).size === names.length || "special token names must be distinct")),
  { default: () => [...DEFAULT_SPECIAL] }
).annotations({ description: "Special token names, numbered after the bytes and merges in this order" })

export const BytesTokenizerParams = Schema.Struct({
  type: Schema.propertySignature(Schema.Literal("bytes")).annotations({
    description: "Byte-level: the 256 UTF-8 bytes and the special tokens; no training (a corpus input only adds the compression metric)"
  }),
  special: Special
}).annotations({ identifier: "BytesTokenizer" })

export const BpeTokenizerParams = Schema.Struct({
  type: Schema.propertySignature(Schema.Literal("bpe")).annotations({
    description: "Byte-level BPE trained on the corpus input's train split"
  }),
  vocabSize: Schema.propertySignature(Schema.Int.pipe(Schema.between(BYTE_TOKENS, MAX_VOCAB))).annotations({
    description: "Vocabulary size: 256 bytes + merges + special tokens (training stops earlier if no pair occurs twice)"
  }),
  pattern: Schema.optionalWith(Schema.Literal("gpt2", "none"), { default: () => "gpt2" as const }).annotations({
    description:
      "Pre-split: gpt2 (GPT-2's regex: merges stay within words, numbers, punctuation runs) or none (a document is one unit: merges cross words; slow on long documents)"
  }),
  maxTrainChars: Schema.optional(Schema.Int.pipe(Schema.positive())).annotations({
    description: "Train on train-split documents in a seeded order until this many characters, for speed on large corpora"
  }),
  special: Special
}).annotations({ identifier: "BpeTokenizer" })

export const GgufTokenizerParams = Schema.Struct({
  type: Schema.propertySignature(Schema.Literal("gguf")).annotations({
    description: "The vocabulary of a GGUF model file (its tokenizer.ggml.* metadata), when it is a byte-level gpt2 one numbered as Distillery's (any distillery export-model file)"
  }),
  path: Schema.propertySignature(Schema.NonEmptyString).annotations({ description: "The .gguf file" }),
  baseDir: Schema.optional(Schema.String).annotations({ description: "The directory a relative path is read from (default: the working directory)" })
}).annotations({ identifier: "GgufTokenizer" })

export const TokenizerParams = Schema.Union(BytesTokenizerParams, BpeTokenizerParams, GgufTokenizerParams).pipe(
  Schema.filter(
    (p) =>
      p.type === "bytes" ||
      p.type === "gguf" ||
      p.vocabSize >= BYTE_TOKENS + p.special.length ||
      `vocabSize must hold the 256 bytes and the ${p.special.length} special tokens: at least ${BYTE_TOKENS + p.special.length}, got ${p.vocabSize}`
  ),
  Schema.annotations({ identifier: "TokenizerParams" })
)
export type TokenizerParams = typeof TokenizerParams.Type

/** The train documents BPE learns from: all of them, or a seeded prefix up to `maxChars`. */
export const trainingTexts = (corpus: TextCorpus, maxChars: number | undefined, seed: number): Array<string> => {
  const order = Array.from(corpus.splits.train)
  if (maxChars === undefined) return order.map((i) => corpus.texts[i]!)
  shuffleInPlace(order, makeRng(deriveSeed(seed, "tokenizer-sample")))
  const texts: Array<string> = []
  let chars = 0
  for (const i of order) {
    if (chars >= maxChars) break
    texts.push(corpus.texts[i]!)
    chars += corpus.texts[i]!.length
  }
  return texts
}

const utf8Length = (text: string): number => new TextEncoder().encode(text).length

export const TokenizerKind = defineKind({
  kind: "tokenizer",
  version: 1,
  heavy: true,
  description: "A byte-level tokenizer, byte-level BPE trained on a corpus's train split (deterministic), or a GGUF file's vocabulary",
  params: TokenizerParams,
  // A GGUF file is part of the key by its content hash (computed once per size and mtime).
  fingerprint: (p) => (p.type === "gguf" ? ggufFingerprint(p) : undefined),
  inputs: {
    corpus: { type: "TextCorpus", optional: true, description: "the corpus: BPE trains on its train split; compression is measured on its validation split" }
  },
  outputs: { tokenizer: "Tokenizer" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params } = ctx
      const corpus = ctx.inputs.corpus
      const { bytesTokenizer } = yield* onRun(() => import("../tokenizer/Bytes.js"))
      const { trainBpe } = yield* onRun(() => import("../tokenizer/Bpe.js"))
      const { encode } = yield* onRun(() => import("../tokenizer/Tokenizer.js"))
      const started = yield* Clock.currentTimeMillis
      let tokenizer: Tokenizer
      if (params.type === "bytes") {
        tokenizer = bytesTokenizer(params.special)
      } else if (params.type === "gguf") {
        const { readGgufHeader, tokenizerOfGguf } = yield* onRun(() => import("./lm/gguf.js"))
        const file = resolveDataPath(params.path, params.baseDir)
        const read = yield* Effect.try({
          try: () => tokenizerOfGguf(readGgufHeader(file)),
          catch: (cause) =>
            new NodeError({ node: ctx.nodeId, kind: ctx.kind, message: `param 'path': cannot read ${file} as GGUF: ${cause instanceof Error ? cause.message : String(cause)}`, cause })
        })
        if ("reason" in read) {
          return yield* new NodeError({
            node: ctx.nodeId,
            kind: ctx.kind,
            message: `param 'path': the vocabulary of ${file} is not one a Distillery model can read (${read.reason}); give the student a tokenizer of its own (type: bytes or bpe) and distil by text (lm_generate with a tokenizer input)`
          })
        }
        tokenizer = read.tokenizer
      } else {
        if (corpus === undefined) {
          return yield* new NodeError({ node: ctx.nodeId, kind: ctx.kind, message: "type: bpe trains on a corpus: wire a text node to the corpus input" })
        }
        const texts = trainingTexts(corpus, params.maxTrainChars, ctx.seed)
        ctx.metric({ name: "train_bytes", value: texts.reduce((total, t) => total + utf8Length(t), 0) })
        ctx.metric({ name: "train_documents", value: texts.length })
        tokenizer = trainBpe(texts, { vocabSize: params.vocabSize, special: params.special, pattern: params.pattern })
      }
      ctx.metric({ name: "train_seconds", value: ((yield* Clock.currentTimeMillis) - started) / 1000 })
      ctx.metric({ name: "vocab_size", value: tokenizer.vocabSize })
      ctx.metric({ name: "merges", value: tokenizer.merges.length / 2 })
      if (corpus !== undefined && corpus.splits.validation.length > 0) {
        let bytes = 0
        let tokens = 0
        for (const i of corpus.splits.validation) {
          bytes += utf8Length(corpus.texts[i]!)
          tokens += encode(tokenizer, corpus.texts[i]!).length
        }
        ctx.metric({ name: "validation_bytes", value: bytes })
        ctx.metric({ name: "validation_tokens", value: tokens })
        if (tokens > 0) ctx.metric({ name: "bytes_per_token", value: bytes / tokens })
      }
      ctx.info({ type: tokenizer.type, vocabSize: tokenizer.vocabSize, special: tokenizer.special, pattern: tokenizer.pattern })
      return { tokenizer }
    }).pipe(Effect.withSpan("tokenizer.run", { attributes: { node: ctx.nodeId, type: ctx.params.type } }))
})
