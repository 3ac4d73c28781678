/**
 * `lm_evaluate`: a language model measured on a corpus split: held-out cross-entropy, perplexity and
 * bits per byte, and with a teacher of the same tokenizer, next-token agreement and KL(teacher || student).
 * With `samples` (the model's own, from an lm_generate node): their diversity (distinct-1/2, repetition
 * rate, self-BLEU; generation/Diversity.ts), exact match where the prompts carry answers, the sampling
 * speed, and with a teacher its NLL per token of the samples (teacher-forced): how likely the teacher
 * finds what the student writes. One example row per sample (loss: that NLL).
 */
import { Effect, Schema } from "effect"
import type { Generations, LanguageModel, PortValues } from "../../domain/Artifact.js"
import { parameterCount } from "../../domain/Artifact.js"
import { decodeTransformerSpec } from "../../models/TransformerSpec.js"
import { SplitParam } from "../generate.js"
import type { ExampleRow } from "../NodeKind.js"
import { defineKind, onRun } from "../NodeKind.js"
import { fail, PositiveInt, tokenizerMismatch, tokenMetrics } from "./common.js"
import { rescore, scoringFailure } from "./generate.js"

export const LmEvaluateParams = Schema.Struct({
  split: Schema.optionalWith(SplitParam, { default: () => "test" as const }).annotations({ description: "The corpus split measured" }),
  sequenceLength: Schema.optional(PositiveInt).annotations({ description: "Tokens per scored window; absent: the model's context" }),
  batchSize: Schema.optionalWith(PositiveInt, { default: () => 16 }).annotations({ description: "Windows per forward pass" }),
  maxWindows: Schema.optional(PositiveInt).annotations({
    description: "Score only the split's first this many windows (in document order; the same for every model of one tokenizer and length); absent: all"
  }),
  selfBleuMax: Schema.optionalWith(PositiveInt, { default: () => 500 }).annotations({
    description: "Self-BLEU (quadratic in the samples) only when there are at most this many samples"
  })
})

export const LmEvaluateKind = defineKind({
  kind: "lm_evaluate",
  version: 2,
  heavy: true,
  description:
    "Measures a language model on a corpus split: cross-entropy per token, perplexity, bits per byte; agreement and KL to a teacher; with its samples, diversity, exact match and the teacher's NLL of them",
  params: LmEvaluateParams,
  inputs: {
    model: { type: "LanguageModel", description: "the model measured" },
    corpus: { type: "TextCorpus", description: "the corpus holding the split" },
    teacher: { type: "LanguageModel", optional: true, description: "a teacher with the same tokenizer, for agreement and KL(teacher || student)" },
    samples: { type: "Generations", optional: true, description: "the model's own samples (an lm_generate node of it): diversity, exact match, the teacher's NLL of them" }
  },
  outputs: { metrics: "Metrics" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params } = ctx
      const lm: PortValues["LanguageModel"] = ctx.inputs.model
      const teacher: LanguageModel | undefined = ctx.inputs.teacher
      const subject = ctx.inputNodes.model ?? ctx.nodeId
      const samples: Generations | undefined = ctx.inputs.samples
      const mismatch = (teacher !== undefined ? tokenizerMismatch("the teacher", teacher.tokenizer, lm.tokenizer) : undefined) ??
        (samples !== undefined ? tokenizerMismatch("the samples", samples.tokenizer, lm.tokenizer) : undefined)
      if (mismatch !== undefined) return yield* fail(ctx, mismatch)
      const { transformerFromWeights } = yield* onRun(() => import("../../models/Transformer.js"))
      const { packCorpus, targetBytes } = yield* onRun(() => import("../../tokenizer/Pack.js"))
      const { scoreLanguageModel } = yield* onRun(() => import("../../train/LanguageModel.js"))
      const spec = decodeTransformerSpec(lm.spec)
      const T = Math.min(params.sequenceLength ?? spec.context, spec.context)
      const whole = packCorpus(lm.tokenizer, ctx.inputs.corpus, params.split, T)
      const kept = params.maxWindows !== undefined ? Math.min(whole.inputs.length, params.maxWindows * T) : whole.inputs.length
      const pack = { ...whole, inputs: whole.inputs.subarray(0, kept), targets: whole.targets.subarray(0, kept) }
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
      if (samples !== undefined) Object.assign(values, yield* sampleMeasures(ctx, samples, teacher, subject))
      for (const [name, value] of Object.entries(values)) ctx.metric({ name, value })
      ctx.info({
        split: params.split,
        sequenceLength: T,
        windows: pack.inputs.length / T,
        ...(kept < whole.inputs.length ? { windowsInSplit: whole.inputs.length / T } : {}),
        reduction: "per counted target token",
        ...(samples !== undefined ? { samples: ctx.inputNodes.samples ?? "samples", repetitionRate: "mean per sample of the fraction of its 4-grams seen earlier in it" } : {})
      })
      return { metrics: { _tag: "Metrics" as const, subject, values } }
    }).pipe(Effect.withSpan("lm_evaluate.run", { attributes: { node: ctx.nodeId } }))
})

/**
 * The measures of a model's samples: counts, diversity over the generated tokens, exact match where
 * the prompts carry answers (the text without special tokens and stop strings, normalised), sampling
 * speed, and with a teacher its NLL per generated token (teacher-forced, generation/Score.ts). Records
 * one example row per sample.
 */
const sampleMeasures = (
  ctx: {
    readonly nodeId: string
    readonly kind: string
    readonly params: { readonly split: "train" | "validation" | "test"; readonly batchSize: number; readonly selfBleuMax: number }
    readonly examples: (rows: ReadonlyArray<ExampleRow>) => void
  },
  samples: Generations,
  teacher: LanguageModel | undefined,
  subject: string
) =>
  Effect.gen(function* () {
    const { distinctN, normaliseAnswer, repetitionRate, selfBleu } = yield* onRun(() => import("../../generation/Diversity.js"))
    const G = samples.promptIds.length
    const rows = Array.from({ length: G }, (_, g) => samples.tokens.subarray(samples.offsets[g]!, samples.offsets[g + 1]!))
    const values: Record<string, number> = {
      samples: G,
      sample_tokens: samples.tokens.length,
      distinct_1: distinctN(rows, 1),
      distinct_2: distinctN(rows, 2),
      repetition_rate: repetitionRate(rows, 4),
      generation_tokens_per_second: samples.tokensPerSecond
    }
    if (G >= 2 && G <= ctx.params.selfBleuMax) values.self_bleu = selfBleu(rows)
    let nll: Float64Array | undefined
    if (teacher !== undefined) {
      const scored = yield* rescore(teacher, "teacher", samples, 1, ctx.params.batchSize).pipe(
        Effect.map((g) => g.scores!),
        Effect.mapError((e) => fail(ctx, `the teacher could not score the samples: ${scoringFailure(e)}`, e))
      )
      nll = new Float64Array(G)
      let total = 0
      for (let g = 0; g < G; g++) {
        let sum = 0
        for (let p = samples.offsets[g]!; p < samples.offsets[g + 1]!; p++) sum -= scored.tokenLogProb[p]!
        total += sum
        nll[g] = rows[g]!.length > 0 ? sum / rows[g]!.length : NaN
      }
      values.teacher_nll = samples.tokens.length > 0 ? total / samples.tokens.length : NaN
    }
    if (samples.answers?.some((a) => a !== null) === true) {
      const specials = Object.keys(samples.tokenizer.special)
      const stops = Array.isArray(samples.settings.stop) ? (samples.settings.stop as ReadonlyArray<unknown>).filter((s): s is string => typeof s === "string") : []
      const answerOf = (text: string) => {
        let t = text
        for (const cut of [...specials, ...stops]) t = t.split(cut).join(" ")
        return normaliseAnswer(t)
      }
      let matched = 0
      let answered = 0
      samples.answers.forEach((a, g) => {
        if (a === null) return
        answered++
        if (answerOf(samples.texts[g]!) === normaliseAnswer(a)) matched++
      })
      values.exact_match = matched / answered
    }
    ctx.examples(
      rows.map((_, g): ExampleRow => ({
        split: ctx.params.split,
        exampleId: g,
        label: -1,
        subject,
        ...(nll !== undefined && Number.isFinite(nll[g]) ? { loss: nll[g]! } : {})
      }))
    )
    return values
  })
