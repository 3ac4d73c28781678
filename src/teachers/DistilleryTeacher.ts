/**
 * The teacher interface over a Distillery LanguageModel: sampling is generation/Sample.ts (batched, each
 * row seeded on its own), scoring generation/Score.ts (teacher-forced top-k + tail), both on a network
 * built from the weights for the call and disposed after it. Prompts must come as the model's tokens.
 */
import { Effect } from "effect"
import type { LanguageModel } from "../domain/Artifact.js"
import { decodeTransformerSpec } from "../models/TransformerSpec.js"
import type { PositionScores, SampleOutcome, SampleSettings, ScoreSequence, Teacher, TeacherPrompt } from "./Teacher.js"
import { TeacherError } from "./Teacher.js"

const message = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** Scores `sequences` with `lm`: the same arrays as generation/Score.ts. */
const scoreWith = (lm: LanguageModel, name: string, sequences: ReadonlyArray<ScoreSequence>, topK: number, batchSize: number) =>
  Effect.tryPromise({
    try: async (): Promise<PositionScores> => {
      const { transformerFromWeights } = await import("../models/Transformer.js")
      const { scoreRows } = await import("../generation/Score.js")
      const net = transformerFromWeights(decodeTransformerSpec(lm.spec), lm.weights)
      try {
        return await scoreRows(net, sequences, topK, batchSize)
      } finally {
        net.dispose()
      }
    },
    catch: (cause) => new TeacherError({ teacher: name, message: `scoring failed: ${message(cause)}`, cause })
  })

export const make = (lm: LanguageModel, name = "LanguageModel"): Teacher => {
  const { tokenizer } = lm
  const sample = (prompts: ReadonlyArray<TeacherPrompt>, settings: SampleSettings) =>
    Effect.gen(function* () {
      const missing = prompts.find((p) => p.tokens === undefined)
      if (missing !== undefined) return yield* new TeacherError({ teacher: name, message: `prompt '${missing.id}' comes without tokens; a Distillery model samples from its own tokens` })
      const { decode } = yield* Effect.promise(() => import("../tokenizer/Tokenizer.js"))
      const eos = tokenizer.special["<eos>"]
      const stops = settings.stop
      const sampled = yield* Effect.tryPromise({
        try: async () => {
          const { transformerFromWeights } = await import("../models/Transformer.js")
          const { sampleRows } = await import("../generation/Sample.js")
          const net = transformerFromWeights(decodeTransformerSpec(lm.spec), lm.weights)
          try {
            return await sampleRows(net, prompts.map((p) => ({ prompt: p.tokens!, seed: p.seed })), {
              maxNewTokens: settings.maxNewTokens,
              sampler: { temperature: settings.temperature, topK: settings.topK, topP: settings.topP, minP: settings.minP },
              batchSize: settings.batchSize,
              ...(eos !== undefined ? { stopTokens: [eos] } : {}),
              ...(stops.length > 0 ? { stopped: (ids: ReadonlyArray<number>) => { const text = decode(tokenizer, ids); return stops.some((s) => text.includes(s)) } } : {}),
              ...(settings.onProgress !== undefined ? { onBatch: settings.onProgress } : {})
            })
          } finally {
            net.dispose()
          }
        },
        catch: (cause) => new TeacherError({ teacher: name, message: `sampling failed: ${message(cause)}`, cause })
      })
      // Top-k per generated position: the untempered distribution, scored teacher-forced after sampling.
      const top = settings.topLogprobs > 0
        ? yield* scoreWith(lm, name, prompts.map((p, i) => ({ prompt: p.tokens!, tokens: sampled[i]!.tokens })), settings.topLogprobs, settings.batchSize)
        : undefined
      let at = 0
      return sampled.map((s, i): SampleOutcome => {
        const from = at
        at += s.tokens.length
        const k = top?.k ?? 0
        return {
          _tag: "Sampled",
          sample: {
            text: decode(tokenizer, s.tokens),
            tokens: s.tokens,
            tokenLogProbs: s.logProbs,
            finishReason: s.finishReason,
            usage: { input: prompts[i]!.tokens!.length, output: s.tokens.length },
            ...(top !== undefined
              ? {
                  top: {
                    k,
                    indices: top.indices!.slice(from * k, at * k),
                    logProbs: top.logProbs.slice(from * k, at * k),
                    tailLogProb: top.tailLogProb.slice(from, at),
                    tokenLogProb: top.tokenLogProb.slice(from, at)
                  }
                }
              : {})
          }
        }
      })
    })
  return {
    name,
    vocabulary: tokenizer,
    sample,
    score: (sequences, topK, batchSize) => scoreWith(lm, name, sequences, topK, batchSize)
  }
}
