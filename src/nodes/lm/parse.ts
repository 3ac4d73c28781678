/**
 * The `lm_parse` node kind: rationale and answer from a teacher's samples (distilling step by step,
 * Hsieh et al. 2023), by an answer pattern (generation/Rationale.ts). Keeps the samples that parsed,
 * optionally only those whose answer is the gold one (`requireGold`) and those whose answer is the
 * majority of their prompt's n samples with enough agreement (self-consistency, Wang et al. 2023).
 * The kept rows leave as Generations (sliced by Filters.ts's `keepRows`) and as a prompt/completion
 * corpus whose `answers` and `rationales` come from the parse, for multi-task training (its prompts are
 * input `corpus`'s own records' where it has them, not the few-shot prompt the teacher saw). Every row's
 * decision is recorded with its reason. With a `judge` (a Teacher on input 'judge' and param 'judge'),
 * the samples that survive those rules are judged by an LM (generation/Judge.ts): the rubric rendered
 * per sample, one seeded reply each through the teacher interface, a score read from it, kept at or
 * above the threshold; every judged row's score and reply go into its `examples` row.
 */
import { Effect, Schema } from "effect"
import type { Generations, GgufTeacherFile, LanguageModel, TeacherEndpoint, TextCorpus } from "../../domain/Artifact.js"
import { deriveSeed } from "../../domain/Random.js"
import { keepRows } from "../../generation/Filters.js"
import type { JudgeColumns, Judgement } from "../../generation/Judge.js"
import { checkJudge, DefaultScorePattern, judge as judgeOne, judgeNeverScored, JudgeVariables, parseRubric, quoteReply, renderRubric } from "../../generation/Judge.js"
import { decodeTransformerSpec } from "../../models/TransformerSpec.js"
import type { TeacherPrompt } from "../../teachers/Teacher.js"
import type { Normalisation, Parsed } from "../../generation/Rationale.js"
import { checkAnswerPattern, DefaultAnswerPattern, majority, normaliseAnswer, Normalisations, parseRationale } from "../../generation/Rationale.js"
import type { ExampleRow } from "../NodeKind.js"
import { defineKind, onRun } from "../NodeKind.js"
import { fail, PositiveInt } from "./common.js"
import { sftCorpus } from "./filter.js"
import { promptEncoder, teacherOf } from "./generate.js"

export const JudgeParam = Schema.Struct({
  rubric: Schema.NonEmptyString.annotations({
    description: `The judge's prompt, a template over ${JudgeVariables.map((v) => `{${v}}`).join(", ")} ({question}: the record's own prompt where input 'corpus' has it, else the prompt sampled; {prompt}: the prompt the teacher saw; {gold}: "" when unknown); {{ and }} are literal braces`
  }),
  scorePattern: Schema.optionalWith(Schema.NonEmptyString, { default: () => DefaultScorePattern }).annotations({
    description: `A regular expression with exactly one capture group around a number; its first match in the judge's reply is the score. Default: ${DefaultScorePattern}`
  }),
  threshold: Schema.Number.annotations({ description: "Keep a sample whose score is at least this" }),
  maxNewTokens: Schema.optionalWith(PositiveInt, { default: () => 16 }).annotations({ description: "Tokens the judge may reply with" }),
  temperature: Schema.optionalWith(Schema.NonNegative, { default: () => 0 }).annotations({ description: "The judge's sampling temperature; 0 is greedy" }),
  batchSize: Schema.optionalWith(PositiveInt, { default: () => 16 }).annotations({ description: "Judge prompts per forward pass, where the judge batches" })
}).pipe(Schema.filter((j) => checkJudge(j)), Schema.annotations({ identifier: "Judge" }))

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
  }),
  judge: Schema.optional(JudgeParam).annotations({
    description:
      "LLM-as-judge on the samples the other rules keep: the model on input 'judge' replies to the rubric rendered per sample; a score (scorePattern) at least threshold keeps it; no score, or a failed request, drops it"
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
  version: 2,
  description:
    "Rationale and answer from a teacher's samples by an answer pattern (distilling step by step): keeps the parsed ones, optionally only gold-correct ones and the self-consistent majority; outputs the kept samples and a prompt/completion corpus with answers and rationales",
  params: LmParseParams,
  inputs: {
    samples: { type: "Generations", description: "the samples to parse (lm_generate, lm_filter)" },
    corpus: { type: "TextCorpus", optional: true, description: "gold answers by prompt id, where the samples carry none (and the judge's {question})" },
    judge: { type: "Teacher", optional: true, description: "the judge (with param 'judge'): a LanguageModel, an http_teacher endpoint or a gguf_teacher file" }
  },
  outputs: { samples: "Generations", corpus: "TextCorpus" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params } = ctx
      const samples: Generations = ctx.inputs.samples
      const corpus: TextCorpus | undefined = ctx.inputs.corpus
      const judgeModel: LanguageModel | TeacherEndpoint | GgufTeacherFile | undefined = ctx.inputs.judge
      const G = samples.texts.length
      if (params.judge !== undefined && judgeModel === undefined) {
        return yield* fail(ctx, "param 'judge' is set but input 'judge' is not wired: wire a Teacher (a LanguageModel, http_teacher or gguf_teacher node) to input 'judge', or remove param 'judge'")
      }
      if (params.judge === undefined && judgeModel !== undefined) {
        return yield* fail(ctx, `input 'judge' is wired ('${ctx.inputNodes.judge}') but param 'judge' is not set: give param 'judge: { rubric, threshold }', or unwire input 'judge'`)
      }
      if (params.judge !== undefined) {
        const problem = checkJudge(params.judge)
        if (problem !== undefined) return yield* fail(ctx, `param ${problem}`)
      }
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
      // The records' own prompts by id (input 'corpus'): the judge's {question} and the output corpus's
      // prompts, rather than the (few-shot) prompt the teacher saw.
      const recordPrompts = new Map<string, string>()
      if (corpus?.prompts !== undefined) corpus.ids.forEach((id, d) => recordPrompts.set(id, corpus.prompts![d]!))
      const gold = samples.promptIds.map((_, g) => {
        const raw = goldRaw(g)
        return raw === null ? null : normaliseAnswer(raw, how) ?? raw.trim()
      })
      const ruled = decideParsed(samples, parsed, gold, params)
      const votes = ruled.votes
      if (!ruled.decisions.some((d) => d.keep)) {
        const first = ruled.decisions[0]!.reason
        return yield* fail(ctx, `every one of the ${G} samples was dropped (first: ${first}): loosen requireGold or selfConsistency, or fix the answer pattern`)
      }
      // The judge, on the rows the rules kept.
      const judgements = new Map<number, Judgement>()
      let judgeFacts: Record<string, unknown> = {}
      let neverScored = false
      if (params.judge !== undefined) {
        const j = params.judge
        const rubric = parseRubric(j.rubric)
        if ("error" in rubric) return yield* fail(ctx, `param 'judge': ${rubric.error}`)
        const rows = ruled.decisions.flatMap((d, g) => (d.keep ? [g] : []))
        const texts = rows.map((g) => {
          const p = parsed[g] as { answer: string; rationale: string }
          const columns: JudgeColumns = {
            question: recordPrompts.get(samples.promptIds[g]!) ?? samples.prompts[g]!,
            prompt: samples.prompts[g]!,
            rationale: p.rationale,
            answer: p.answer,
            completion: samples.texts[g]!,
            gold: gold[g] ?? ""
          }
          return renderRubric(rubric.parts, columns)
        })
        const { teacher, stats } = yield* teacherOf(ctx, judgeModel!, "judge")
        // A judge with a vocabulary samples from tokens: the rubric encoded and fitted to its context.
        const encoder = yield* Effect.gen(function* () {
          const vocabulary = teacher.vocabulary
          if (vocabulary === undefined) return undefined
          const { encode } = yield* onRun(() => import("../../tokenizer/Tokenizer.js"))
          const context =
            judgeModel!._tag === "LanguageModel" ? decodeTransformerSpec(judgeModel!.spec).context : judgeModel!._tag === "GgufTeacherFile" ? judgeModel!.contextSize : undefined
          return promptEncoder(vocabulary, encode, context)
        })
        const prompts: Array<TeacherPrompt> = rows.map((g, i) => {
          const tokens = encoder?.tokensOf(texts[i]!)
          return {
            id: `${samples.promptIds[g]}#${samples.sample[g]}`,
            text: texts[i]!,
            ...(tokens !== undefined ? { tokens } : {}),
            seed: deriveSeed(ctx.seed, "judge", samples.promptIds[g]!, samples.sample[g]!)
          }
        })
        const outcomes = yield* teacher
          .sample(prompts, {
            temperature: j.temperature,
            topK: 0,
            topP: 1,
            minP: 0,
            maxNewTokens: j.maxNewTokens,
            stop: [],
            topLogprobs: 0,
            batchSize: j.batchSize,
            onProgress: (done, total) => ctx.progress({ done, total, unit: "judged" })
          })
          .pipe(Effect.mapError((e) => fail(ctx, `the judge ('${ctx.inputNodes.judge}') could not be asked: ${e.message}`, e)))
        const pattern = new RegExp(j.scorePattern)
        rows.forEach((g, i) => judgements.set(g, judgeOne(outcomes[i]!, pattern, j.threshold)))
        const all = [...judgements.values()]
        const scores = all.flatMap((v) => (v.score !== null ? [v.score] : []))
        const count = (o: Judgement["outcome"]) => all.filter((v) => v.outcome === o).length
        ctx.metric({ name: "judged", value: all.length })
        ctx.metric({ name: "judge_kept", value: all.filter((v) => v.keep).length })
        ctx.metric({ name: "judge_no_score", value: count("no_score") })
        ctx.metric({ name: "judge_failed", value: count("failed") })
        if (scores.length > 0) ctx.metric({ name: "judge_mean_score", value: scores.reduce((a, b) => a + b, 0) / scores.length })
        if (stats !== undefined) {
          const st = stats()
          ctx.metric({ name: "judge_requests", value: st.requests })
          ctx.metric({ name: "judge_cost", value: st.cost })
        }
        const warning = judgeNeverScored(all)
          ? `the judge never returned a score: no reply of ${all.length} matched scorePattern /${j.scorePattern}/ (e.g. ${quoteReply(all.find((v) => v.reply !== null)?.reply ?? "")}); fix the pattern or the rubric`
          : undefined
        neverScored = warning !== undefined
        if (warning !== undefined) ctx.progress({ done: all.length, total: all.length, unit: "judged", facts: { warning } })
        judgeFacts = {
          judge: {
            teacher: teacher.name,
            node: ctx.inputNodes.judge ?? "judge",
            threshold: j.threshold,
            scorePattern: j.scorePattern,
            judged: all.length,
            scored: count("scored"),
            noScore: count("no_score"),
            failed: count("failed"),
            truncatedPrompts: encoder?.truncated ?? 0,
            ...(warning !== undefined ? { warning } : {})
          }
        }
      }
      const decisions = ruled.decisions.map((d, g) => {
        const v = judgements.get(g)
        if (v === undefined) return d
        const replied = v.reply !== null && v.outcome === "scored" ? ` (reply ${quoteReply(v.reply)})` : ""
        return v.keep ? { keep: true, reason: `${d.reason}; ${v.reason}${replied}` } : { keep: false, reason: `${v.reason}${replied}` }
      })
      const kept = decisions.filter((d) => d.keep).length
      // A judge that never scored leaves an empty output and a warning, with every row's reply recorded.
      if (kept === 0 && !neverScored) {
        const first = decisions.find((_, g) => judgements.has(g))!.reason
        return yield* fail(ctx, `every one of the ${G} samples was dropped (first judged: ${first}): lower param 'judge.threshold', or fix the rubric`)
      }
      const keep = decisions.map((d) => d.keep)
      const keptSamples = keepRows(samples, keep)
      const keptRows = keep.flatMap((k, g) => (k ? [g] : []))
      const sampled = sftCorpus(keptSamples, undefined, "replace")
      const prompts = keptRows.map((g) => recordPrompts.get(samples.promptIds[g]!) ?? samples.prompts[g]!)
      const output: TextCorpus = {
        ...sampled,
        prompts,
        texts: prompts.map((p, j) => p + sampled.completions![j]!),
        answers: keptRows.map((g) => (parsed[g] as { answer: string }).answer),
        rationales: keptRows.map((g) => (parsed[g] as { rationale: string }).rationale),
        metadata: sampled.metadata!.map((m, j) => {
          const g = keptRows[j]!
          const v = judgements.get(g)
          return {
            ...m,
            ...(prompts[j] !== samples.prompts[g] ? { teacherPrompt: samples.prompts[g]! } : {}),
            agreement: votes.get(samples.promptIds[g]!)!.agreement,
            ...(gold[g] !== null ? { gold: gold[g] } : {}),
            ...(v !== undefined ? { judgeScore: v.score, judgeReply: v.reply } : {})
          }
        })
      }
      const rows: Array<ExampleRow> = decisions.map((d, g) => ({
        split: "train",
        exampleId: g,
        label: -1,
        confidence: votes.get(samples.promptIds[g]!)!.agreement,
        ...(judgements.has(g) ? { subject: ctx.inputNodes.judge ?? "judge" } : {}),
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
        requireGold: params.requireGold,
        ...judgeFacts
      })
      return { samples: keptSamples, corpus: output }
    }).pipe(Effect.withSpan("lm_parse.run", { attributes: { node: ctx.nodeId } }))
})
