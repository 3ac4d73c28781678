/**
 * The `lm_parse` node kind: rationale and answer from a teacher's samples (distilling step by step,
 * Hsieh et al. 2023), by an answer pattern (generation/Rationale.ts). Keeps the samples that parsed,
 * optionally only those whose answer is the gold one (`requireGold`) and those whose answer is the
 * majority of their prompt's n samples with enough agreement (self-consistency, Wang et al. 2023).
 * The kept rows leave as Generations (sliced by Filters.ts's `keepRows`) and as a prompt/completion
 * corpus whose `answers` and `rationales` come from the parse, for multi-task training. Every row's
 * decision is recorded with its reason. Judging samples with an LLM (LLM-as-judge) is not done here.
 */
import { Effect, Schema } from "effect"
import type { Generations, TextCorpus } from "../../domain/Artifact.js"
import { keepRows } from "../../generation/Filters.js"
import type { Normalisation, Parsed } from "../../generation/Rationale.js"
import { checkAnswerPattern, DefaultAnswerPattern, majority, normaliseAnswer, Normalisations, parseRationale } from "../../generation/Rationale.js"
import type { ExampleRow } from "../NodeKind.js"
import { defineKind } from "../NodeKind.js"
import { fail } from "./common.js"
import { sftCorpus } from "./filter.js"

export const LmParseParams = Schema.Struct({
  answerPattern: Schema.optionalWith(
    Schema.NonEmptyString.pipe(Schema.filter((p) => checkAnswerPattern(p))),
    { default: () => DefaultAnswerPattern }
  ).annotations({
    description: `A regular expression with exactly one capture group around the answer; its first match ends the rationale. Default: ${DefaultAnswerPattern}`
  }),
  normalise: Schema.optionalWith(Schema.Literal(...Normalisations), { default: () => "text" as const }).annotations({
    description:
      "How answers are compared: number (\"1,234\" -> 1234, \"14.0\" -> 14; an answer without a number is unparseable), label (lower case, surrounding punctuation and brackets stripped), text (whitespace and a trailing period)"
  }),
  selfConsistency: Schema.optional(
    Schema.Struct({
      minAgreement: Schema.propertySignature(Schema.Number.pipe(Schema.between(0, 1))).annotations({
        description: "Keep a prompt's samples only when its majority answer has at least this share of its n samples (unparseable ones count), e.g. 0.6"
      })
    }).annotations({ identifier: "SelfConsistency" })
  ).annotations({
    description: "Majority vote over each prompt's samples: a sample whose answer is not the majority's, or whose prompt's agreement is below minAgreement, is dropped"
  }),
  requireGold: Schema.optionalWith(Schema.Boolean, { default: () => false }).annotations({
    description: "Drop a sample whose answer differs from its prompt's gold answer (the samples' answers, else input 'corpus''s by prompt id), where one is known"
  })
}).annotations({ identifier: "LmParseParams" })
export type LmParseParams = typeof LmParseParams.Type

const f2 = (v: number) => String(Math.round(v * 100) / 100)

/** Row g's gold answer: the samples' own, else the corpus record of the same id's; null when unknown. */
const goldOf = (samples: Generations, corpus: TextCorpus | undefined) => {
  const byId = new Map<string, string>()
  if (corpus?.answers !== undefined) corpus.ids.forEach((id, d) => corpus.answers![d] != null && byId.set(id, corpus.answers![d]!))
  return (g: number): string | null => samples.answers?.[g] ?? byId.get(samples.promptIds[g]!) ?? null
}

/** Every row's decision, in order: unparseable, wrong answer (requireGold), self-consistency, else kept. */
export const decideParsed = (
  samples: Generations,
  parsed: ReadonlyArray<Parsed>,
  gold: ReadonlyArray<string | null>,
  params: { readonly selfConsistency?: { readonly minAgreement: number } | undefined; readonly requireGold: boolean }
) => {
  const groups = new Map<string, Array<number>>()
  samples.promptIds.forEach((id, g) => {
    const rows = groups.get(id)
    if (rows === undefined) groups.set(id, [g])
    else rows.push(g)
  })
  const votes = new Map([...groups].map(([id, rows]) => [id, majority(rows.map((g) => (parsed[g]!.ok ? (parsed[g] as { answer: string }).answer : undefined)))]))
  const sc = params.selfConsistency
  const decisions = parsed.map((p, g) => {
    const vote = votes.get(samples.promptIds[g]!)!
    if (!p.ok) return { keep: false, reason: `unparseable: ${p.reason}` }
    const goldAnswer = gold[g]
    if (params.requireGold && goldAnswer !== null && p.answer !== goldAnswer) return { keep: false, reason: `wrong answer: got ${p.answer}, gold ${goldAnswer}` }
    if (sc !== undefined && vote.agreement < sc.minAgreement) {
      return { keep: false, reason: `self-consistency: agreement ${f2(vote.agreement)} < ${sc.minAgreement}` }
    }
    if (sc !== undefined && p.answer !== vote.answer) return { keep: false, reason: `self-consistency: answer ${p.answer} is not the majority ${vote.answer}` }
    return { keep: true, reason: `kept: answer ${p.answer}${sc !== undefined ? `, agreement ${f2(vote.agreement)}` : ""}` }
  })
  return { decisions, votes }
}

export const LmParseKind = defineKind({
  kind: "lm_parse",
  version: 1,
  description:
    "Rationale and answer from a teacher's samples by an answer pattern (distilling step by step): keeps the parsed ones, optionally only gold-correct ones and the self-consistent majority; outputs the kept samples and a prompt/completion corpus with answers and rationales",
  params: LmParseParams,
  inputs: {
    samples: { type: "Generations", description: "the samples to parse (lm_generate, lm_filter)" },
    corpus: { type: "TextCorpus", optional: true, description: "gold answers by prompt id, where the samples carry none" }
  },
  outputs: { samples: "Generations", corpus: "TextCorpus" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params } = ctx
      const samples: Generations = ctx.inputs.samples
      const corpus: TextCorpus | undefined = ctx.inputs.corpus
      const G = samples.texts.length
      if (G === 0) return yield* fail(ctx, "input 'samples' holds no samples: nothing to parse")
      const how: Normalisation = params.normalise
      const pattern = new RegExp(params.answerPattern)
      const parsed = samples.texts.map((text) => parseRationale(text, pattern, how))
      if (!parsed.some((p) => p.ok || p.matched)) {
        const example = samples.texts[0]!
        return yield* fail(
          ctx,
          `param 'answerPattern' /${params.answerPattern}/ matched none of the ${G} samples, e.g. sample ${samples.sample[0]} of '${samples.promptIds[0]}': ${JSON.stringify(example.length > 200 ? `${example.slice(0, 200)}…` : example)}; fix the pattern or the prompt template`
        )
      }
      const goldRaw = goldOf(samples, corpus)
      const gold = samples.promptIds.map((_, g) => {
        const raw = goldRaw(g)
        return raw === null ? null : normaliseAnswer(raw, how) ?? raw.trim()
      })
      const { decisions, votes } = decideParsed(samples, parsed, gold, params)
      const kept = decisions.filter((d) => d.keep).length
      if (kept === 0) {
        const first = decisions[0]!.reason
        return yield* fail(ctx, `every one of the ${G} samples was dropped (first: ${first}): loosen requireGold or selfConsistency, or fix the answer pattern`)
      }
      const keep = decisions.map((d) => d.keep)
      const keptSamples = keepRows(samples, keep)
      const keptRows = keep.flatMap((k, g) => (k ? [g] : []))
      const base = sftCorpus(keptSamples, undefined, "replace")
      const output: TextCorpus = {
        ...base,
        answers: keptRows.map((g) => (parsed[g] as { answer: string }).answer),
        rationales: keptRows.map((g) => (parsed[g] as { rationale: string }).rationale),
        metadata: base.metadata!.map((m, j) => {
          const g = keptRows[j]!
          return { ...m, agreement: votes.get(samples.promptIds[g]!)!.agreement, ...(gold[g] !== null ? { gold: gold[g] } : {}) }
        })
      }
      const rows: Array<ExampleRow> = decisions.map((d, g) => ({
        split: "train",
        exampleId: g,
        label: -1,
        confidence: votes.get(samples.promptIds[g]!)!.agreement,
        decision: d.keep ? "keep" : "drop",
        reason: d.reason
      }))
      ctx.examples(rows)
      const parsedCount = parsed.filter((p) => p.ok).length
      const correct = parsed.filter((p, g) => p.ok && gold[g] !== null && p.answer === gold[g]).length
      const withGold = parsed.filter((p, g) => p.ok && gold[g] !== null).length
      const agreements = [...votes.values()].map((v) => v.agreement)
      ctx.metric({ name: "parsed", value: parsedCount })
      ctx.metric({ name: "unparseable", value: G - parsedCount })
      ctx.metric({ name: "correct", value: correct })
      if (withGold > 0) ctx.metric({ name: "accuracy", value: correct / withGold })
      ctx.metric({ name: "majority_agreement", value: agreements.reduce((a, b) => a + b, 0) / agreements.length })
      ctx.metric({ name: "kept", value: kept })
      ctx.metric({ name: "dropped", value: G - kept })
      ctx.info({
        answerPattern: params.answerPattern,
        normalise: how,
        prompts: votes.size,
        goldKnown: gold.filter((a) => a !== null).length,
        ...(params.selfConsistency !== undefined ? { minAgreement: params.selfConsistency.minAgreement } : {}),
        requireGold: params.requireGold
      })
      return { samples: keptSamples, corpus: output }
    }).pipe(Effect.withSpan("lm_parse.run", { attributes: { node: ctx.nodeId } }))
})
