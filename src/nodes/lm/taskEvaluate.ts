/**
 * `lm_task_evaluate`: a multi-task student (distilling step by step, Hsieh et al. 2023) measured task
 * by task. Each task prepends its prefix ("[answer] ", "[rationale] ") to every prompt of a corpus
 * split; the model continues greedily until `<eos>` or a newline (maxNewTokens at most), and its output
 * is scored by the task's target (generation/TaskScore.ts): `answer` (the output is the answer: exact
 * match with the gold one), `completion` (a chain of thought whose answer an answer pattern finds) or
 * `rationale` (token F1, exact match and BLEU against the reference rationale: input `reference`'s,
 * e.g. a teacher's from lm_parse, matched by source example id, else the corpus's own). Metrics per task
 * as `<task>.<measure>`, and `accuracy`, the first answer or completion task's. Every output is a row of
 * the `generations` view (sample = the task's index), and every scored one an examples row whose
 * confidence is 1/0 (correct) or the F1, with its reason.
 *
 * The model is decoded through the teacher interface (teachers/Teacher.ts), so the same node measures
 * a Distillery LanguageModel, an OpenAI-compatible endpoint (`http_teacher`, e.g. `distillery serve`) or
 * a GGUF file: temperature 0, stop at a newline, each row seeded from the node's seed. A row whose request
 * still failed after the endpoint's retries counts wrong (F1 0) with reason "failed: ...".
 */
import { Effect, Schema } from "effect"
import type { GgufTeacherFile, LanguageModel, TeacherEndpoint, TextCorpus, Tokenizer } from "../../domain/Artifact.js"
import { TaskTargets } from "../../data/multitask.js"
import { deriveSeed } from "../../domain/Random.js"
import type { Normalisation } from "../../generation/Rationale.js"
import { checkAnswerPattern, DefaultAnswerPattern, Normalisations } from "../../generation/Rationale.js"
import { decodeTransformerSpec } from "../../models/TransformerSpec.js"
import { SplitParam } from "../generate.js"
import type { ExampleRow, GenerationRow } from "../NodeKind.js"
import { defineKind, onRun } from "../NodeKind.js"
import type { SampleOutcome } from "../../teachers/Teacher.js"
import { promptEncoder, teacherOf } from "./generate.js"
import { fail, PositiveInt } from "./common.js"

export const EvalTask = Schema.Struct({
  name: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_-]+$/)).annotations({
    description: "The task's name, the prefix of its metrics (<name>.accuracy, <name>.rationale_f1): letters, digits, _ and -"
  }),
  prefix: Schema.optionalWith(Schema.String, { default: () => "" }).annotations({
    description: "Prepended to every prompt, e.g. \"[answer] \"; as the training task had it"
  }),
  target: Schema.Literal(...TaskTargets).annotations({
    description:
      "answer: the whole output is the answer (exact match); completion: a chain of thought whose answer answerPattern finds (exact match); rationale: compared with the reference rationale (token F1, exact match, BLEU)"
  }),
  answerPattern: Schema.optional(Schema.NonEmptyString.pipe(Schema.filter((p) => checkAnswerPattern(p)))).annotations({
    description: `For target completion: a regular expression with exactly one capture group around the answer. Default: ${DefaultAnswerPattern}`
  }),
  maxNewTokens: Schema.optional(PositiveInt).annotations({ description: "This task's generation length, instead of the node's (a rationale needs more)" })
}).pipe(
  Schema.filter((t) => (t.answerPattern !== undefined && t.target !== "completion" ? `task '${t.name}': answerPattern is for target completion only` : undefined)),
  Schema.annotations({ identifier: "EvalTask" })
)

export const LmTaskEvaluateParams = Schema.Struct({
  split: Schema.optionalWith(SplitParam, { default: () => "test" as const }).annotations({ description: "The corpus split whose prompts are answered" }),
  limit: Schema.optional(PositiveInt).annotations({ description: "Only the split's first this many documents; absent: all" }),
  tasks: Schema.NonEmptyArray(EvalTask).annotations({
    description: "The tasks measured, each { name, prefix, target, answerPattern?, maxNewTokens? }; `accuracy` is the first answer or completion task's"
  }),
  maxNewTokens: Schema.optionalWith(PositiveInt, { default: () => 32 }).annotations({
    description: "Tokens generated per prompt at most (greedy; a newline or <eos> ends the output sooner)"
  }),
  normalise: Schema.optionalWith(Schema.Literal(...Normalisations), { default: () => "text" as const }).annotations({
    description: "How answers are compared: number (\"1,234\" -> 1234), label (lower case, surrounding punctuation stripped), text (whitespace and a trailing period)"
  }),
  batchSize: Schema.optionalWith(PositiveInt, { default: () => 16 }).annotations({
    description: "Prompts per forward pass (prompts share a batch only when their token counts agree)"
  })
}).pipe(
  Schema.filter((p) => {
    const seen = new Set<string>()
    for (const t of p.tasks) {
      if (seen.has(t.name)) return `task name '${t.name}' occurs twice: names must be unique`
      seen.add(t.name)
    }
    return undefined
  }),
  Schema.annotations({ identifier: "LmTaskEvaluateParams" })
)
export type LmTaskEvaluateParams = typeof LmTaskEvaluateParams.Type

/** Per source example id, the non-null rationales of `reference` (an lm_parse corpus has several samples per example). */
const referenceRationales = (reference: TextCorpus, sourceIdOf: (id: string, m: Readonly<Record<string, unknown>> | undefined) => string) => {
  const byId = new Map<string, Array<string>>()
  reference.ids.forEach((id, d) => {
    const r = reference.rationales?.[d]
    if (r == null) return
    const key = sourceIdOf(id, reference.metadata?.[d])
    const list = byId.get(key)
    if (list === undefined) byId.set(key, [r])
    else list.push(r)
  })
  return byId
}

export const LmTaskEvaluateKind = defineKind({
  kind: "lm_task_evaluate",
  version: 2,
  heavy: true,
  description:
    "Measures a multi-task language model (distilling step by step) task by task: each task's prefix before every prompt, greedy output to a newline or <eos>, scored as an answer (exact match), a chain of thought's answer, or a rationale (token F1, exact match, BLEU against the reference)",
  params: LmTaskEvaluateParams,
  inputs: {
    model: {
      type: "Teacher",
      description: "the model measured (trained on the tasks' prefixes): a LanguageModel, an http_teacher endpoint (e.g. `distillery serve`) or a gguf_teacher file"
    },
    corpus: { type: "TextCorpus", description: "prompt/completion records with gold answers (a `text` node's reasoning task)" },
    reference: {
      type: "TextCorpus",
      optional: true,
      description: "reference rationales for rationale tasks (e.g. the teacher's, from lm_parse), matched by source example id; absent: the corpus's own"
    }
  },
  outputs: { metrics: "Metrics" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params } = ctx
      const model: LanguageModel | TeacherEndpoint | GgufTeacherFile = ctx.inputs.model
      const lm = model._tag === "LanguageModel" ? model : undefined
      const gguf = model._tag === "GgufTeacherFile" ? model : undefined
      const corpus: TextCorpus = ctx.inputs.corpus
      const reference: TextCorpus | undefined = ctx.inputs.reference
      const subject = ctx.inputNodes.model ?? ctx.nodeId
      const how: Normalisation = params.normalise
      if (corpus.prompts === undefined) {
        return yield* fail(ctx, `corpus '${corpus.name}' has no prompts: lm_task_evaluate needs prompt/completion records (a text node's reasoning task, or records with a prompt column)`)
      }
      const prompts = corpus.prompts
      let docs = Array.from(corpus.splits[params.split])
      if (params.limit !== undefined) docs = docs.slice(0, params.limit)
      if (docs.length === 0) return yield* fail(ctx, `the ${params.split} split of corpus '${corpus.name}' is empty: nothing to evaluate`)
      const score = yield* onRun(() => import("../../generation/TaskScore.js"))

      // Gold answers and reference rationales, per document of the split.
      const gold = docs.map((d) => corpus.answers?.[d] ?? null)
      const refs = reference !== undefined ? referenceRationales(reference, score.sourceIdOf) : undefined
      const rationalesOf = docs.map((d): ReadonlyArray<string> => {
        if (refs !== undefined) return refs.get(score.sourceIdOf(corpus.ids[d]!, corpus.metadata?.[d])) ?? []
        const own = corpus.rationales?.[d]
        return own == null ? [] : [own]
      })
      for (const task of params.tasks) {
        if (task.target === "rationale" && !rationalesOf.some((r) => r.length > 0)) {
          return yield* fail(
            ctx,
            reference !== undefined
              ? `task '${task.name}' (target rationale): input 'reference' ('${reference.name}') has a rationale for none of the ${docs.length} documents of the ${params.split} split (matched by source example id, e.g. '${corpus.ids[docs[0]!]}'); wire the teacher's lm_parse corpus of the same prompts`
              : `task '${task.name}' (target rationale): corpus '${corpus.name}' has no rationales in the ${params.split} split and input 'reference' is not wired; wire a corpus with rationales (e.g. lm_parse's) to 'reference'`
          )
        }
        if (task.target !== "rationale" && !gold.some((g) => g !== null)) {
          return yield* fail(ctx, `task '${task.name}' (target ${task.target}): corpus '${corpus.name}' has no gold answers in the ${params.split} split`)
        }
      }

      // Greedy outputs, task by task, through the teacher interface: a LanguageModel, an endpoint, a GGUF file.
      const { decode, encode } = yield* onRun(() => import("../../tokenizer/Tokenizer.js"))
      // The vocabulary prompts are given in and outputs decoded with; an endpoint's is its own (text only).
      const tokenizer: Tokenizer | undefined = lm?.tokenizer ?? gguf?.tokenizer
      const context = lm !== undefined ? decodeTransformerSpec(lm.spec).context : gguf?.tokenizer !== undefined ? gguf.contextSize : undefined
      const specials = new Set(Object.values(tokenizer?.special ?? {}))
      const encoder = tokenizer !== undefined ? promptEncoder(tokenizer, encode, context) : undefined
      const rows = params.tasks.map((task, t) =>
        docs.map((d) => {
          const text = task.prefix + prompts[d]!
          const tokens = encoder?.tokensOf(text)
          return { id: corpus.ids[d]!, text, ...(tokens !== undefined ? { tokens } : {}), seed: deriveSeed(ctx.seed, corpus.ids[d]!, t) }
        })
      )
      const total = rows.length * docs.length
      const sampler = yield* teacherOf(ctx, model, "model")
      const started = performance.now()
      const outputs: Array<ReadonlyArray<SampleOutcome>> = []
      for (const [t, task] of params.tasks.entries()) {
        const before = t * docs.length
        const outcomes = yield* sampler.teacher
          .sample(rows[t]!, {
            temperature: 0,
            topK: 0,
            topP: 1,
            minP: 0,
            maxNewTokens: task.maxNewTokens ?? params.maxNewTokens,
            // <eos> stops a model that has it; the newline ends every task's output.
            stop: ["\n"],
            topLogprobs: 0,
            batchSize: params.batchSize,
            onProgress: (done) => ctx.progress({ done: before + done, total, unit: "prompt", facts: { task: task.name } })
          })
          .pipe(Effect.mapError((e) => fail(ctx, `could not run ${sampler.teacher.name}: ${e.message}`, e)))
        outputs.push(outcomes)
      }
      const seconds = (performance.now() - started) / 1000

      // Scores, rows and metrics.
      const examples: Array<ExampleRow> = []
      const generations: Array<GenerationRow> = []
      const values: Record<string, number> = {}
      let accuracy: number | undefined
      let generated = 0
      let failed = 0
      for (const [t, task] of params.tasks.entries()) {
        const pattern = new RegExp(task.answerPattern ?? DefaultAnswerPattern)
        const correct: Array<number> = []
        const f1s: Array<number> = []
        const exacts: Array<number> = []
        const bleus: Array<number> = []
        let unparseable = 0
        docs.forEach((d, i) => {
          const outcome = outputs[t]![i]!
          const row = { split: params.split, exampleId: d, label: -1, subject }
          const generation = { row: t * docs.length + i, promptId: corpus.ids[d]!, sample: t, seed: rows[t]![i]!.seed, prompt: rows[t]![i]!.text }
          if (outcome._tag === "Failed") {
            // A request that failed after its retries is a wrong answer (F1 0), not the end of the run.
            failed++
            generations.push({ ...generation, text: "", tokens: 0, meanLogProb: NaN, finishReason: "failed" })
            examples.push({ ...row, confidence: 0, reason: `${task.name}: failed: ${outcome.error}` })
            // Counted where the row would have been scored: a rationale against a reference, an answer against gold.
            if (task.target === "rationale") {
              if (rationalesOf[i]!.length > 0) (f1s.push(0), exacts.push(0), bleus.push(0))
            } else if (gold[i] !== null) correct.push(0)
            return
          }
          const out = outcome.sample
          const count = out.tokens?.length ?? out.usage?.output ?? out.tokenLogProbs?.length ?? 0
          generated += count
          const raw = out.tokens !== undefined && tokenizer !== undefined ? decode(tokenizer, Array.from(out.tokens).filter((id) => !specials.has(id))) : out.text
          const text = score.firstLine(raw)
          let meanLogProb = 0
          for (const lp of out.tokenLogProbs ?? []) meanLogProb += lp
          generations.push({
            ...generation,
            text: raw,
            tokens: count,
            meanLogProb: out.tokenLogProbs !== undefined && out.tokenLogProbs.length > 0 ? meanLogProb / out.tokenLogProbs.length : NaN,
            finishReason: out.finishReason
          })
          if (task.target === "rationale") {
            const references = rationalesOf[i]!
            if (references.length === 0) {
              examples.push({ ...row, reason: `${task.name}: no reference rationale; output ${JSON.stringify(text)}` })
              return
            }
            const s = score.scoreRationale(text, references)
            f1s.push(s.f1)
            exacts.push(s.exact ? 1 : 0)
            bleus.push(s.bleu)
            examples.push({ ...row, confidence: s.f1, reason: `${task.name}: ${s.reason}; output ${JSON.stringify(text)}` })
            return
          }
          const g = gold[i]
          if (g === null) {
            examples.push({ ...row, reason: `${task.name}: no gold answer; output ${JSON.stringify(text)}` })
            return
          }
          const s = task.target === "answer" ? score.scoreAnswer(text, g, how) : score.scoreCompletion(text, g, pattern, how)
          if (s.answer === undefined) unparseable++
          correct.push(s.correct ? 1 : 0)
          examples.push({
            ...row,
            confidence: s.correct ? 1 : 0,
            reason: `${task.name}: ${s.correct ? `correct: ${s.answer}` : s.reason}; output ${JSON.stringify(text)}`
          })
        })
        if (task.target === "rationale") {
          values[`${task.name}.rationale_f1`] = score.mean(f1s)
          values[`${task.name}.rationale_exact`] = score.mean(exacts)
          values[`${task.name}.rationale_bleu`] = score.mean(bleus)
          values[`${task.name}.scored`] = f1s.length
        } else {
          const a = score.mean(correct)
          values[`${task.name}.accuracy`] = a
          values[`${task.name}.scored`] = correct.length
          values[`${task.name}.unparseable`] = unparseable
          accuracy ??= a
        }
      }
      if (accuracy !== undefined) values.accuracy = accuracy
      values.examples = docs.length
      if (failed > 0) values.failed = failed
      values.generation_tokens_per_second = seconds > 0 ? generated / seconds : 0
      for (const [name, value] of Object.entries(values)) ctx.metric({ name, value })
      ctx.examples(examples)
      ctx.generations(generations)
      ctx.info({
        split: params.split,
        documents: docs.length,
        tasks: params.tasks.map((t) => ({
          name: t.name,
          prefix: t.prefix,
          target: t.target,
          maxNewTokens: t.maxNewTokens ?? params.maxNewTokens,
          ...(t.target === "completion" ? { answerPattern: t.answerPattern ?? DefaultAnswerPattern } : {})
        })),
        normalise: how,
        decoding: "greedy, until a newline or <eos>",
        sampledThrough: sampler.teacher.name,
        ...(reference !== undefined ? { reference: ctx.inputNodes.reference ?? "reference" } : {}),
        ...(encoder !== undefined && encoder.truncated > 0 ? { truncatedPrompts: encoder.truncated } : {}),
        examplesRows: "exampleId: the corpus document index; confidence: 1/0 correct, or the rationale's token F1; reason: task, verdict, output",
        generationsRows: "sample: the task's index in params.tasks"
      })
      return { metrics: { _tag: "Metrics" as const, subject, values } }
    }).pipe(Effect.withSpan("lm_task_evaluate.run", { attributes: { node: ctx.nodeId } }))
})
