/**
 * The `lm_filter` node kind, the data step of sequence-level KD (Kim & Rush 2016: fine-tune the student
 * on the teacher's samples): keeps the samples of a Generations artifact that pass its rules (finish
 * reason, generated-token bounds, mean log-probability, exact and near duplicates; generation/Filters.ts)
 * and turns the kept ones into a prompt/completion TextCorpus for `lm_train`, whose loss then counts
 * the completion tokens only. The real corpus, when wired, gives the validation and test splits, so
 * the student is validated and measured on real held-out text. Every keep/drop decision is recorded
 * per row with the first rule that dropped it.
 */
import { Effect, Schema } from "effect"
import type { Generations, TextCorpus } from "../../domain/Artifact.js"
import type { SampleRules } from "../../generation/Filters.js"
import {
  activeRules,
  checkNearDuplicate,
  decide,
  DefaultBands,
  DefaultPermutations,
  droppedPerRule,
  FinishReasons,
  keepRows,
  NearDuplicateMethods
} from "../../generation/Filters.js"
import type { ExampleRow } from "../NodeKind.js"
import { defineKind } from "../NodeKind.js"
import { fail, PositiveInt } from "./common.js"

export const LmFilterParams = Schema.Struct({
  finishReasons: Schema.optional(Schema.NonEmptyArray(Schema.Literal(...FinishReasons))).annotations({
    description: "Keep only samples that ended so: stop (a stop token or string), length (max new tokens), context (the model's context full); absent: any"
  }),
  minTokens: Schema.optional(Schema.NonNegativeInt).annotations({ description: "Drop samples of fewer generated tokens" }),
  maxTokens: Schema.optional(PositiveInt).annotations({ description: "Drop samples of more generated tokens" }),
  minMeanLogProb: Schema.optional(Schema.Number).annotations({
    description: "Drop samples whose mean log-probability per generated token (see logProbBy) is below this, e.g. -2.5"
  }),
  logProbBy: Schema.optionalWith(Schema.Literal("generator", "scorer"), { default: () => "generator" as const }).annotations({
    description:
      "Whose mean log-prob minMeanLogProb reads: the generator's own (meanLogProb, untempered) or the scoring model's (mean of scores.tokenLogProb; needs scores)"
  }),
  dedupe: Schema.optional(Schema.Literal("exact")).annotations({
    description: "exact: drop a sample whose text (whitespace normalised) equals an earlier kept one's; the first is kept"
  }),
  nearDuplicate: Schema.optional(
    Schema.Struct({
      threshold: Schema.propertySignature(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1))).annotations({
        description: "Drop a sample whose n-gram Jaccard similarity with an earlier kept one is at least this, e.g. 0.8"
      }),
      n: Schema.optionalWith(PositiveInt, { default: () => 5 }).annotations({ description: "The n of the n-grams" }),
      unit: Schema.optionalWith(Schema.Literal("chars", "tokens"), { default: () => "chars" as const }).annotations({
        description: "n-grams of characters of the whitespace-normalised text, or of generated tokens"
      }),
      method: Schema.optional(Schema.Literal(...NearDuplicateMethods)).annotations({
        description:
          "jaccard (default): the exact similarity (every pair that shares an n-gram is compared; fine up to a few thousand samples); minhash: its MinHash estimate over LSH candidate pairs (linear in the samples, seeded by the node's seed)"
      }),
      permutations: Schema.optional(PositiveInt).annotations({ description: `minhash: hash functions per sample (default ${DefaultPermutations})` }),
      bands: Schema.optional(PositiveInt).annotations({
        description: `minhash: LSH bands (default ${DefaultBands}); must divide permutations; more bands find pairs of lower similarity as candidates`
      })
    }).pipe(Schema.filter((r) => checkNearDuplicate(r)), Schema.annotations({ identifier: "NearDuplicate" }))
  ).annotations({
    description: "Near-duplicate removal by the Jaccard similarity of n-gram sets: exact (method jaccard) or estimated by MinHash + LSH (method minhash)"
  }),
  duplicatesWithin: Schema.optionalWith(Schema.Literal("all", "prompt"), { default: () => "all" as const }).annotations({
    description: "Where dedupe and nearDuplicate look: among all samples, or among the samples of one prompt only"
  }),
  train: Schema.optionalWith(Schema.Literal("replace", "mix"), { default: () => "replace" as const }).annotations({
    description: "The output corpus's train split: the kept samples only (replace), or the kept samples then the input corpus's train documents (mix)"
  })
}).pipe(
  Schema.filter((p) =>
    p.minTokens !== undefined && p.maxTokens !== undefined && p.minTokens > p.maxTokens
      ? `minTokens ${p.minTokens} exceeds maxTokens ${p.maxTokens}`
      : undefined
  ),
  Schema.annotations({ identifier: "LmFilterParams" })
)
export type LmFilterParams = typeof LmFilterParams.Type

/**
 * The fine-tuning corpus: the kept samples as prompt/completion documents (ids `<promptId>#<sample>`)
 * in the train split, then, with `corpus`, its train documents (mix only), validation and test
 * documents as they are. A plain-text document becomes one with an empty prompt, so all its tokens
 * count, as they would have.
 */
export const sftCorpus = (kept: Generations, corpus: TextCorpus | undefined, train: "replace" | "mix"): TextCorpus => {
  const G = kept.texts.length
  const copied = corpus === undefined ? [] : [...(train === "mix" ? corpus.splits.train : []), ...corpus.splits.validation, ...corpus.splits.test]
  const prompts = [...kept.prompts, ...copied.map((d) => corpus!.prompts?.[d] ?? "")]
  const completions = [...kept.texts, ...copied.map((d) => corpus!.completions?.[d] ?? corpus!.texts[d]!)]
  const withAnswers = kept.answers !== undefined || corpus?.answers !== undefined
  const range = (from: number, count: number) => Int32Array.from({ length: count }, (_, i) => from + i)
  const trainCopied = corpus !== undefined && train === "mix" ? corpus.splits.train.length : 0
  const validation = corpus?.splits.validation.length ?? 0
  return {
    _tag: "TextCorpus",
    name: corpus !== undefined ? `${corpus.name} + samples of ${kept.generator}` : `samples of ${kept.generator}`,
    ids: [...kept.promptIds.map((id, g) => `${id}#${kept.sample[g]}`), ...copied.map((d) => corpus!.ids[d]!)],
    texts: prompts.map((p, i) => p + completions[i]!),
    prompts,
    completions,
    ...(withAnswers ? { answers: [...Array.from({ length: G }, (_, g) => kept.answers?.[g] ?? null), ...copied.map((d) => corpus!.answers?.[d] ?? null)] } : {}),
    ...(corpus?.rationales !== undefined ? { rationales: [...Array.from({ length: G }, () => null), ...copied.map((d) => corpus.rationales![d] ?? null)] } : {}),
    metadata: [
      ...Array.from({ length: G }, (_, g) => ({
        generator: kept.generator,
        promptId: kept.promptIds[g]!,
        sample: kept.sample[g]!,
        finishReason: kept.finishReasons[g]!,
        meanLogProb: kept.meanLogProb[g]!
      })),
      ...copied.map((d) => corpus!.metadata?.[d] ?? {})
    ],
    splits: {
      train: range(0, G + trainCopied),
      validation: range(G + trainCopied, validation),
      test: range(G + trainCopied + validation, copied.length - trainCopied - validation)
    }
  }
}

/** The first id that occurs twice, or undefined. */
const repeatedId = (ids: ReadonlyArray<string>): string | undefined => {
  const seen = new Set<string>()
  for (const id of ids) {
    if (seen.has(id)) return id
    seen.add(id)
  }
  return undefined
}

export const LmFilterKind = defineKind({
  kind: "lm_filter",
  version: 1,
  description:
    "Sequence-level KD's data (Kim & Rush 2016): keeps an LM's samples by finish reason, generated-token bounds, mean log-prob, exact and near duplicates (in that order; each drop recorded with the first rule that fired), and makes the kept ones a prompt/completion corpus for lm_train, with the real corpus's validation and test splits",
  params: LmFilterParams,
  inputs: {
    samples: { type: "Generations", description: "the samples to filter (lm_generate)" },
    corpus: {
      type: "TextCorpus",
      optional: true,
      description: "the real data: its validation and test documents (and, with train: mix, its train documents) are copied into the output corpus"
    }
  },
  outputs: { samples: "Generations", corpus: "TextCorpus" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params } = ctx
      const samples: Generations = ctx.inputs.samples
      const corpus: TextCorpus | undefined = ctx.inputs.corpus
      if (params.minMeanLogProb !== undefined && params.logProbBy === "scorer" && samples.scores === undefined) {
        return yield* fail(
          ctx,
          "param 'logProbBy' is scorer but input 'samples' carries no scores: score them (lm_score) first, or use logProbBy: generator"
        )
      }
      if (params.train === "mix" && corpus === undefined) {
        return yield* fail(ctx, "param 'train' is mix but input 'corpus' is not wired: wire a TextCorpus node to it, or use train: replace")
      }
      const rules: SampleRules = params.nearDuplicate !== undefined ? { ...params, nearDuplicate: { ...params.nearDuplicate, seed: ctx.seed } } : params
      const decisions = decide(rules, samples)
      const perRule = droppedPerRule(rules, decisions)
      const kept = decisions.filter((d) => d.keep).length
      if (kept === 0) {
        const counts = perRule.filter(([, n]) => n > 0).map(([rule, n]) => `${rule} ${n}`).join(", ")
        return yield* fail(
          ctx,
          samples.texts.length === 0
            ? "input 'samples' holds no samples: nothing to fine-tune on"
            : `every one of the ${samples.texts.length} samples was dropped (${counts}): loosen the rules`
        )
      }
      const keptSamples = keepRows(samples, decisions.map((d) => d.keep))
      const output = sftCorpus(keptSamples, corpus, params.train)
      const repeated = repeatedId(output.ids)
      if (repeated !== undefined) {
        return yield* fail(ctx, `document id '${repeated}' occurs twice in the output corpus (a sample's <promptId>#<sample> or a copied document's): ids must be unique`)
      }
      const rows: Array<ExampleRow> = decisions.map((d, g) => ({
        split: "train",
        exampleId: g,
        label: -1,
        decision: d.keep ? "keep" : "drop",
        reason: d.reason
      }))
      ctx.examples(rows)
      ctx.metric({ name: "kept", value: kept })
      ctx.metric({ name: "dropped", value: decisions.length - kept })
      ctx.metric({ name: "kept_fraction", value: kept / decisions.length })
      for (const [rule, n] of perRule) ctx.metric({ name: `dropped_${rule}`, value: n })
      ctx.info({
        rules: activeRules(rules).map(({ description, rule }) => ({ rule, description })),
        train: params.train,
        ...(corpus !== undefined ? { corpus: ctx.inputNodes.corpus ?? "corpus" } : {})
      })
      return { samples: keptSamples, corpus: output }
    })
})
