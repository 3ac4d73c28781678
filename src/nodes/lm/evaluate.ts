/**
 * `lm_evaluate`: a language model measured on a corpus split: held-out cross-entropy, perplexity and
 * bits per byte, and with a teacher of the same tokenizer, next-token agreement and KL(teacher || student).
 */
import { Effect, Schema } from "effect"
import type { LanguageModel, PortValues } from "../../domain/Artifact.js"
import { parameterCount } from "../../domain/Artifact.js"
import { decodeTransformerSpec } from "../../models/TransformerSpec.js"
import { SplitParam } from "../generate.js"
import { defineKind, onRun } from "../NodeKind.js"
import { fail, PositiveInt, tokenizerMismatch, tokenMetrics } from "./common.js"

export const LmEvaluateParams = Schema.Struct({
  split: Schema.optionalWith(SplitParam, { default: () => "test" as const }).annotations({ description: "The corpus split measured" }),
  sequenceLength: Schema.optional(PositiveInt).annotations({ description: "Tokens per scored window; absent: the model's context" }),
  batchSize: Schema.optionalWith(PositiveInt, { default: () => 16 }).annotations({ description: "Windows per forward pass" })
})

export const LmEvaluateKind = defineKind({
  kind: "lm_evaluate",
  version: 1,
  heavy: true,
  description: "Measures a language model on a corpus split: cross-entropy per token, perplexity, bits per byte; agreement and KL to a teacher",
  params: LmEvaluateParams,
  inputs: {
    model: { type: "LanguageModel", description: "the model measured" },
    corpus: { type: "TextCorpus", description: "the corpus holding the split" },
    teacher: { type: "LanguageModel", optional: true, description: "a teacher with the same tokenizer, for agreement and KL(teacher || student)" }
  },
  outputs: { metrics: "Metrics" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params } = ctx
      const lm: PortValues["LanguageModel"] = ctx.inputs.model
      const teacher: LanguageModel | undefined = ctx.inputs.teacher
      const subject = ctx.inputNodes.model ?? ctx.nodeId
      const mismatch = teacher !== undefined ? tokenizerMismatch("the teacher", teacher.tokenizer, lm.tokenizer) : undefined
      if (mismatch !== undefined) return yield* fail(ctx, mismatch)
      const { transformerFromWeights } = yield* onRun(() => import("../../models/Transformer.js"))
      const { packCorpus, targetBytes } = yield* onRun(() => import("../../tokenizer/Pack.js"))
      const { scoreLanguageModel } = yield* onRun(() => import("../../train/LanguageModel.js"))
      const spec = decodeTransformerSpec(lm.spec)
      const T = Math.min(params.sequenceLength ?? spec.context, spec.context)
      const pack = packCorpus(lm.tokenizer, ctx.inputs.corpus, params.split, T)
      if (pack.inputs.length === 0) {
        return yield* fail(ctx, `the ${params.split} split of corpus '${ctx.inputs.corpus.name}' has fewer than ${T + 1} tokens`)
      }
      const scores = yield* Effect.tryPromise({
        try: async () => {
          const student = transformerFromWeights(spec, lm.weights)
          const teacherNet = teacher !== undefined ? transformerFromWeights(decodeTransformerSpec(teacher.spec), teacher.weights) : undefined
          try {
            return await scoreLanguageModel(student, pack, params.batchSize, teacherNet)
          } finally {
            student.dispose()
            teacherNet?.dispose()
          }
        },
        catch: (cause) => fail(ctx, `could not run the model: ${cause instanceof Error ? cause.message : String(cause)}`, cause)
      })
      const m = tokenMetrics(scores.nll, pack.targets, targetBytes(lm.tokenizer, pack.targets))
      const values: Record<string, number> = {
        cross_entropy: m.crossEntropy,
        perplexity: m.perplexity,
        bits_per_byte: m.bitsPerByte,
        tokens: m.tokens,
        bytes: m.bytes,
        params: parameterCount(lm)
      }
      if (scores.agree !== undefined && scores.kl !== undefined) {
        let agree = 0
        let kl = 0
        for (let i = 0; i < pack.targets.length; i++) {
          if (pack.targets[i]! < 0) continue
          agree += scores.agree[i]!
          kl += scores.kl[i]!
        }
        values.agreement = agree / m.tokens
        values.fidelity_kl = kl / m.tokens
      }
      for (const [name, value] of Object.entries(values)) ctx.metric({ name, value })
      ctx.info({ split: params.split, sequenceLength: T, reduction: "per counted target token" })
      return { metrics: { _tag: "Metrics" as const, subject, values } }
    }).pipe(Effect.withSpan("lm_evaluate.run", { attributes: { node: ctx.nodeId } }))
})
