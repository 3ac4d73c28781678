/**
 * `lm_generate`: samples a language model. Prompts come from a corpus split (a prompt/completion
 * record's prompt, or a plain document's first `promptTokens` tokens), from a prompt file, or from
 * nothing (`unconditional`: the token that precedes every document in training). Each row's draws
 * come from a seed derived from the node's seed, the prompt id and the sample index, so a row is the
 * same whatever the batch it ran in. The model is sampled through the teacher interface
 * (teachers/Teacher.ts): a LanguageModel, or an `http_teacher` endpoint, whose texts are tokenized with
 * the `tokenizer` input (the student's); such rows carry no scores, since the endpoint's vocabulary is
 * another, and a prompt that still failed after its retries is left out and recorded in the node's info.
 * A `gguf_teacher` file is sampled in-process: with the student's vocabulary its rows carry tokens and
 * the file's own top-k + tail scores, else its texts are tokenized like an endpoint's.
 * With a `teacher` of the same tokenizer, every generated position
 * is scored by it (top-k + tail log-probs, generation/Score.ts). `lm_score` scores a Generations
 * artifact again with another model, teacher-forced. Both record every row in the results store
 * (the `generations` view).
 */
import { Effect, Schema } from "effect"
import { readFileSync } from "node:fs"
import { resolveDataPath } from "../../data/files.js"
import type { Generations, GgufTeacherFile, LanguageModel, TeacherEndpoint, TextCorpus, Tokenizer } from "../../domain/Artifact.js"
import { deriveSeed } from "../../domain/Random.js"
import { checkTemplate, recordColumns, renderPrompt } from "../../generation/Template.js"
import { decodeTransformerSpec } from "../../models/TransformerSpec.js"
import { fileFingerprint } from "../dataset.js"
import { SplitParam } from "../generate.js"
import type { GenerationRow } from "../NodeKind.js"
import { defineKind, onRun } from "../NodeKind.js"
import type { PositionScores, SampleOutcome, TeacherError, TeacherSample } from "../../teachers/Teacher.js"
import { fail, PositiveInt, sameTokenizer, tokenizerMismatch } from "./common.js"

const Probability = Schema.Number.pipe(Schema.between(0, 1))

const scoreTopK = Schema.optionalWith(PositiveInt, { default: () => 20 }).annotations({
  description: "Next-token log-probs kept per scored position (the rest is one tail bucket)"
})
const batchSize = Schema.optionalWith(PositiveInt, { default: () => 16 }).annotations({
  description: "Rows per forward pass (rows share a batch only when their token counts agree)"
})

/** A prompt template (generation/Template.ts): text with {variables}, few-shot examples and their separator. */
export const PromptTemplateParam = Schema.Struct({
  text: Schema.NonEmptyString.annotations({ description: "The template, e.g. \"Q: {prompt}\\nA:\"; {{ and }} are literal braces" }),
  fewShot: Schema.optionalWith(
    Schema.Array(Schema.Struct({ completion: Schema.String }, Schema.Record({ key: Schema.String, value: Schema.String }))),
    { default: () => [] }
  ).annotations({ description: "Worked examples, each the template's variables and its completion, rendered by the template followed by the completion before the row's prompt" }),
  separator: Schema.optionalWith(Schema.String, { default: () => "\n\n" }).annotations({ description: "Between the few-shot examples and the row's prompt" })
}).annotations({ identifier: "PromptTemplate" })

export const LmGenerateParams = Schema.Struct({
  split: Schema.optionalWith(SplitParam, { default: () => "test" as const }).annotations({ description: "The corpus split whose documents prompt" }),
  limit: Schema.optional(PositiveInt).annotations({ description: "At most this many prompts, the first in order; absent: all" }),
  promptTokens: Schema.optionalWith(PositiveInt, { default: () => 16 }).annotations({
    description: "For plain-text documents: the prompt is each document's first this many tokens"
  }),
  promptFile: Schema.optional(Schema.NonEmptyString).annotations({
    description: "Prompts from a file instead of a corpus: .jsonl/.json, one { prompt, id?, answer? } per line; otherwise one prompt per non-blank line"
  }),
  baseDir: Schema.optional(Schema.String).annotations({ description: "The directory a relative promptFile is read from (default: the working directory)" }),
  unconditional: Schema.optionalWith(Schema.Boolean, { default: () => false }).annotations({
    description: "Sample n rows from no prompt: from <eos> (what precedes every document in training), else <bos>, else a newline"
  }),
  n: Schema.optionalWith(PositiveInt, { default: () => 1 }).annotations({ description: "Samples per prompt" }),
  temperature: Schema.optionalWith(Schema.NonNegative, { default: () => 1 }).annotations({
    description: "Softmax temperature; 0 is greedy (argmax)"
  }),
  topK: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0 }).annotations({ description: "Draw from the k most likely tokens (0: all)" }),
  topP: Schema.optionalWith(Probability, { default: () => 1 }).annotations({ description: "Nucleus sampling: the fewest tokens holding p of the mass (1: all)" }),
  minP: Schema.optionalWith(Probability, { default: () => 0 }).annotations({
    description: "Drop tokens less than minP times as likely as the most likely one (0: none)"
  }),
  maxNewTokens: Schema.optionalWith(PositiveInt, { default: () => 64 }).annotations({ description: "Tokens generated per row at most" }),
  stop: Schema.optionalWith(Schema.Array(Schema.NonEmptyString), { default: () => [] }).annotations({
    description: "A row ends (finish reason stop) once its generated text contains one of these; the stop string is kept in text and tokens. <eos> always stops"
  }),
  batchSize,
  scoreTopK,
  template: Schema.optional(PromptTemplateParam).annotations({
    description:
      "Wrap each prompt in a template, e.g. { text: \"Q: {prompt}\\nA:\", fewShot: [{ prompt: ..., completion: ... }] }: its variables name the record's columns (prompt, answer, rationale, id, any metadata key); absent: the prompt as it is"
  })
}).pipe(
  Schema.filter((p) => {
    if (p.unconditional && p.promptFile !== undefined) return "unconditional and promptFile exclude each other: pick one source of prompts"
    if (p.template !== undefined) return checkTemplate(p.template)
    return undefined
  }),
  Schema.annotations({ identifier: "LmGenerateParams" })
)
export type LmGenerateParams = typeof LmGenerateParams.Type

/** One prompt: its id, its text and tokens, and its reference answer if the data has one. */
interface Prompt {
  readonly id: string
  readonly text: string
  readonly tokens: Int32Array
  readonly answer: string | null
  /** The record's columns, for a prompt template (generation/Template.ts). */
  readonly columns: Record<string, string>
}

/** The token an empty prompt starts from: what precedes a document in training (Pack.ts), else <bos>, else "\n". */
export const startToken = (tokenizer: Tokenizer, encode: (t: Tokenizer, s: string) => ReadonlyArray<number>): number =>
  tokenizer.special["<eos>"] ?? tokenizer.special["<bos>"] ?? encode(tokenizer, "\n")[0]!

/** A prompt's tokens cut to their last context - 1, leaving room for one new token; the same array when they fit. */
export const fitToContext = (tokens: Int32Array, context: number | undefined): Int32Array =>
  context === undefined || tokens.length < context ? tokens : tokens.slice(tokens.length - (context - 1))

/**
 * Prompts in a model's vocabulary, as every node that samples a teacher gives them: the text encoded
 * (the start token for an empty one) and fitted to the context; `truncated` counts the prompts cut.
 */
export const promptEncoder = (tokenizer: Tokenizer, encode: (t: Tokenizer, s: string) => ReadonlyArray<number>, context: number | undefined) => {
  const start = startToken(tokenizer, encode)
  const encoder = {
    truncated: 0,
    tokensOf: (text: string): Int32Array => {
      const ids = encode(tokenizer, text)
      const tokens = Int32Array.from(ids.length > 0 ? ids : [start])
      const fitted = fitToContext(tokens, context)
      if (fitted !== tokens) encoder.truncated++
      return fitted
    }
  }
  return encoder
}

/** A prompt file's lines as prompts, or the first bad line's problem as `file:line: ...`. */
export const readPromptFile = (file: string, text: string): { readonly prompts: Array<{ id: string; text: string; answer: string | null }> } | { readonly error: string } => {
  const jsonl = /\.jsonl?$/i.test(file)
  const prompts: Array<{ id: string; text: string; answer: string | null }> = []
  const lines = text.split(/\r?\n/)
  for (const [i, line] of lines.entries()) {
    if (line.trim() === "") continue
    const at = `${file}:${i + 1}`
    if (!jsonl) {
      prompts.push({ id: at, text: line, answer: null })
      continue
    }
    let record: unknown
    try {
      record = JSON.parse(line)
    } catch (e) {
      return { error: `${at}: not JSON (${e instanceof Error ? e.message : String(e)}); a .jsonl prompt file holds one { "prompt": ..., "id"?: ..., "answer"?: ... } per line` }
    }
    if (typeof record !== "object" || record === null || Array.isArray(record)) return { error: `${at}: a line must be a JSON object with a string "prompt"` }
    const r = record as Record<string, unknown>
    if (typeof r.prompt !== "string") return { error: `${at}: key "prompt" must be a string; the line has keys ${Object.keys(r).join(", ") || "none"}` }
    if (r.id !== undefined && typeof r.id !== "string" && typeof r.id !== "number") return { error: `${at}: key "id" must be a string or a number` }
    if (r.answer !== undefined && r.answer !== null && typeof r.answer !== "string") return { error: `${at}: key "answer" must be a string or null` }
    prompts.push({ id: r.id !== undefined ? String(r.id) : at, text: r.prompt, answer: typeof r.answer === "string" ? r.answer : null })
  }
  return { prompts }
}

/** A Generations artifact's rows for the results store (`generations` view). */
export const generationRows = (g: Generations): Array<GenerationRow> =>
  g.promptIds.map((promptId, r) => {
    const [from, to] = [g.offsets[r]!, g.offsets[r + 1]!]
    let nll = 0
    if (g.scores !== undefined) for (let p = from; p < to; p++) nll -= g.scores.tokenLogProb[p]!
    return {
      row: r,
      promptId,
      sample: g.sample[r]!,
      seed: g.seeds[r]!,
      prompt: g.prompts[r]!,
      text: g.texts[r]!,
      tokens: to - from,
      meanLogProb: g.meanLogProb[r]!,
      finishReason: g.finishReasons[r]!,
      ...(g.scores !== undefined && to > from ? { teacherNll: nll / (to - from) } : {})
    }
  })

/** Every row's prompt and generated tokens, for scoring. */
export const scoreRowsOf = (g: Generations) =>
  g.promptIds.map((_, r) => ({
    prompt: g.promptTokens.subarray(g.promptOffsets[r]!, g.promptOffsets[r + 1]!),
    tokens: g.tokens.subarray(g.offsets[r]!, g.offsets[r + 1]!)
  }))

/** Per generated token: the mean of -log p under the scorer (NaN when nothing was generated). */
const meanNll = (tokenLogProb: Float32Array): number => {
  let total = 0
  for (const x of tokenLogProb) total -= x
  return tokenLogProb.length > 0 ? total / tokenLogProb.length : NaN
}

/** Scores `g`'s generated positions with `lm` through the teacher interface (teacher-forced) and returns `g` with those scores. */
export const rescore = (lm: LanguageModel, scorer: string, g: Generations, topK: number, batch: number) =>
  Effect.gen(function* () {
    const { make } = yield* onRun(() => import("../../teachers/DistilleryTeacher.js"))
    const { k, indices, logProbs, tailLogProb, tokenLogProb } = yield* make(lm, scorer).score(scoreRowsOf(g), topK, batch)
    return { ...g, scores: { scorer, k, indices: indices!, logProbs, tailLogProb, tokenLogProb } } satisfies Generations
  })

/** A scoring failure of the teacher interface, in the words of a node's error. */
export const scoringFailure = (e: TeacherError): string => (e.cause instanceof Error ? e.cause.message : e.message)

/** Per-row top-k + tail scores (one k) laid end to end, in row order. */
const concatTop = (tops: ReadonlyArray<PositionScores>) => {
  const join = <A extends Float32Array | Int32Array>(make: new (n: number) => A, parts: ReadonlyArray<A>): A => {
    const out = new make(parts.reduce((n, p) => n + p.length, 0))
    let at = 0
    for (const p of parts) (out.set(p, at), (at += p.length))
    return out
  }
  return {
    k: tops[0]?.k ?? 0,
    indices: join(Int32Array, tops.map((t) => t.indices!)),
    logProbs: join(Float32Array, tops.map((t) => t.logProbs)),
    tailLogProb: join(Float32Array, tops.map((t) => t.tailLogProb)),
    tokenLogProb: join(Float32Array, tops.map((t) => t.tokenLogProb))
  }
}

/** An http_teacher's endpoint as a teacher, its key read from the environment variable the endpoint names. */
const httpSource = (ctx: { readonly nodeId: string; readonly kind: string }, endpoint: TeacherEndpoint) =>
  Effect.gen(function* () {
    const apiKey = endpoint.apiKeyEnv !== undefined ? process.env[endpoint.apiKeyEnv] : undefined
    if (endpoint.apiKeyEnv !== undefined && (apiKey ?? "") === "") {
      return yield* fail(ctx, `the environment variable ${endpoint.apiKeyEnv} (param 'apiKeyEnv' of the http_teacher) is not set; export it with the API key`)
    }
    const { make } = yield* onRun(() => import("../../teachers/HttpTeacher.js"))
    const teacher = yield* make(endpoint, apiKey !== undefined ? { apiKey } : {})
    return { teacher, stats: teacher.stats }
  })

/**
 * The teacher a `Teacher` input stands for, named by the node wired to `port`: an http_teacher endpoint
 * (with its request statistics), a gguf_teacher file run in-process, or a Distillery LanguageModel.
 * Every node that samples a `Teacher` input gets it here.
 */
export const teacherOf = (
  ctx: { readonly nodeId: string; readonly kind: string; readonly inputNodes: Readonly<Record<string, string>> },
  model: LanguageModel | TeacherEndpoint | GgufTeacherFile,
  port: string
) =>
  Effect.gen(function* () {
    const name = ctx.inputNodes[port] ?? port
    if (model._tag === "TeacherEndpoint") return yield* httpSource(ctx, model)
    if (model._tag === "GgufTeacherFile") return { teacher: (yield* onRun(() => import("../../teachers/GgufTeacher.js"))).make(model, name), stats: undefined }
    return { teacher: (yield* onRun(() => import("../../teachers/DistilleryTeacher.js"))).make(model, name), stats: undefined }
  })

export const LmGenerateKind = defineKind({
  kind: "lm_generate",
  version: 1,
  heavy: true,
  description:
    "Samples a language model (temperature, top-k, top-p, min-p, stop strings, n per prompt; seeded per row) from a corpus split's prompts, a prompt file or no prompt; a teacher scores every generated position (top-k + tail log-probs)",
  params: LmGenerateParams,
  inputs: {
    model: { type: "Teacher", description: "the model sampled: a LanguageModel, an http_teacher endpoint or a gguf_teacher file" },
    tokenizer: { type: "Tokenizer", optional: true, description: "the student's tokenizer: needed with an http_teacher or a gguf_teacher of another vocabulary, whose texts it tokenizes" },
    corpus: { type: "TextCorpus", optional: true, description: "prompts from a split: records' prompts, or documents' first promptTokens tokens" },
    teacher: { type: "LanguageModel", optional: true, description: "a scorer of the same tokenizer: its top-k + tail log-probs at every generated position" }
  },
  outputs: { generations: "Generations" },
  fingerprint: (params) => (params.promptFile !== undefined ? fileFingerprint(params.promptFile, params.baseDir) : undefined),
  run: (ctx) =>
    Effect.gen(function* () {
      const { params } = ctx
      const model: LanguageModel | TeacherEndpoint | GgufTeacherFile = ctx.inputs.model
      const endpoint = model._tag === "TeacherEndpoint" ? model : undefined
      const gguf = model._tag === "GgufTeacherFile" ? model : undefined
      const lm = model._tag === "LanguageModel" ? model : undefined
      const corpus: TextCorpus | undefined = ctx.inputs.corpus
      const teacher: LanguageModel | undefined = ctx.inputs.teacher
      const given: Tokenizer | undefined = ctx.inputs.tokenizer
      if (endpoint !== undefined && given === undefined) {
        return yield* fail(ctx, `input 'model' is an http_teacher ('${ctx.inputNodes.model}'): wire the student's Tokenizer node to input 'tokenizer', which turns the endpoint's texts into tokens`)
      }
      if (gguf !== undefined && given === undefined && gguf.tokenizer === undefined) {
        return yield* fail(ctx, `input 'model' is a gguf_teacher ('${ctx.inputNodes.model}') whose vocabulary Distillery cannot represent (${gguf.vocabulary}): wire the student's Tokenizer node to input 'tokenizer', which turns its texts into tokens`)
      }
      const tokenizer: Tokenizer = lm?.tokenizer ?? given ?? gguf!.tokenizer!
      // A GGUF of the student's vocabulary samples its tokens and scores them; another is text only.
      const ggufTokens = gguf?.tokenizer !== undefined && sameTokenizer(gguf.tokenizer, tokenizer)
      const textOnly = endpoint !== undefined || (gguf !== undefined && !ggufTokens)
      if (lm !== undefined && given !== undefined) {
        const differs = tokenizerMismatch("input 'tokenizer'", given, tokenizer)
        if (differs !== undefined) return yield* fail(ctx, differs)
      }
      const mismatch = teacher !== undefined ? tokenizerMismatch("the teacher", teacher.tokenizer, tokenizer) : undefined
      if (mismatch !== undefined) return yield* fail(ctx, mismatch)
      const sources = [corpus !== undefined ? "input 'corpus'" : undefined, params.promptFile !== undefined ? "param 'promptFile'" : undefined, params.unconditional ? "param 'unconditional'" : undefined]
        .filter((s) => s !== undefined)
      if (sources.length !== 1) {
        return yield* fail(
          ctx,
          sources.length === 0
            ? "no prompts: wire a TextCorpus node to input 'corpus', give param 'promptFile', or set param 'unconditional: true'"
            : `prompts from ${sources.join(" and ")}: give exactly one of input 'corpus', param 'promptFile', param 'unconditional'`
        )
      }
      const { decode, encode } = yield* onRun(() => import("../../tokenizer/Tokenizer.js"))
      const spec = lm !== undefined ? decodeTransformerSpec(lm.spec) : undefined
      const start = startToken(tokenizer, encode)
      const tokensOf = (text: string) => {
        const ids = encode(tokenizer, text)
        return Int32Array.from(ids.length > 0 ? ids : [start])
      }
      let prompts: Array<Prompt>
      let source: string
      if (corpus !== undefined) {
        const docs = Array.from(corpus.splits[params.split])
        source = `${corpus.name}:${params.split}`
        prompts = docs.flatMap((d): Array<Prompt> => {
          const answer = corpus.answers?.[d] ?? null
          const columns = (prompt: string) =>
            recordColumns({ id: corpus.ids[d]!, prompt, answer, rationale: corpus.rationales?.[d], metadata: corpus.metadata?.[d] })
          if (corpus.prompts !== undefined) {
            return [{ id: corpus.ids[d]!, text: corpus.prompts[d]!, tokens: tokensOf(corpus.prompts[d]!), answer, columns: columns(corpus.prompts[d]!) }]
          }
          const ids = encode(tokenizer, corpus.texts[d]!).slice(0, params.promptTokens)
          const text = decode(tokenizer, ids)
          return ids.length === 0 ? [] : [{ id: corpus.ids[d]!, text, tokens: Int32Array.from(ids), answer, columns: columns(text) }]
        })
      } else if (params.promptFile !== undefined) {
        const file = params.promptFile
        source = file
        const text = yield* Effect.try({
          try: () => readFileSync(resolveDataPath(file, params.baseDir), "utf8"),
          catch: (cause) => fail(ctx, `param 'promptFile': cannot read ${resolveDataPath(file, params.baseDir)}: ${cause instanceof Error ? cause.message : String(cause)}`, cause)
        })
        const read = readPromptFile(file, text)
        if ("error" in read) return yield* fail(ctx, `param 'promptFile': ${read.error}`)
        prompts = read.prompts.map((p) => ({ ...p, tokens: tokensOf(p.text), columns: recordColumns({ id: p.id, prompt: p.text, answer: p.answer }) }))
      } else {
        source = "unconditional"
        prompts = [{ id: "unconditional", text: "", tokens: Int32Array.of(start), answer: null, columns: recordColumns({ id: "unconditional", prompt: "" }) }]
      }
      if (params.limit !== undefined) prompts = prompts.slice(0, params.limit)
      const template = params.template
      if (template !== undefined) {
        const rendered: Array<Prompt> = []
        for (const p of prompts) {
          const r = renderPrompt(template, p.columns)
          if ("missing" in r) {
            return yield* fail(
              ctx,
              `param 'template' names {${r.missing}}, which prompt '${p.id}' of ${source} lacks; its columns are ${r.available.join(", ")}`
            )
          }
          rendered.push({ ...p, text: r.text, tokens: tokensOf(r.text) })
        }
        prompts = rendered
      }
      if (prompts.length === 0) return yield* fail(ctx, `no prompts in ${source}: ${corpus !== undefined ? "the split has no non-empty documents" : "the file has no non-blank lines"}`)
      // A prompt longer than the context keeps its last tokens, leaving room for one new token.
      let truncated = 0
      const context = spec?.context ?? (ggufTokens ? gguf!.contextSize : undefined)
      prompts = prompts.map((p) => {
        const tokens = fitToContext(p.tokens, context)
        if (tokens === p.tokens) return p
        truncated++
        return { ...p, tokens }
      })
      let rows = prompts.flatMap((p) => Array.from({ length: params.n }, (_, s) => ({ prompt: p, sample: s, seed: deriveSeed(ctx.seed, p.id, s) })))

      const sampler = yield* teacherOf(ctx, model, "model")
      const drawn = { temperature: params.temperature, topK: params.topK, topP: params.topP, minP: params.minP, maxNewTokens: params.maxNewTokens, stop: params.stop }
      const settings = {
        ...drawn,
        // An endpoint's log-probs give each row's mean; a Distillery model's come with every sample; a
        // GGUF of the student's vocabulary scores its own samples when no teacher input rescores them.
        topLogprobs: endpoint?.topLogprobs ?? (ggufTokens && teacher === undefined ? params.scoreTopK : 0),
        batchSize: params.batchSize,
        onProgress: (done: number, total: number) => ctx.progress({ done, total, unit: "sample" })
      }
      const started = performance.now()
      const outcomes = yield* sampler.teacher
        .sample(rows.map((r) => ({ id: r.prompt.id, text: r.prompt.text, ...(gguf === undefined || ggufTokens ? { tokens: r.prompt.tokens } : {}), seed: r.seed })), settings)
        .pipe(Effect.mapError((e) => fail(ctx, `sampling failed: ${e.message}`, e)))
      const seconds = (performance.now() - started) / 1000
      const failures = rows.flatMap((r, g) => {
        const o = outcomes[g]!
        return o._tag === "Failed" ? [{ promptId: r.prompt.id, sample: r.sample, error: o.error }] : []
      })
      if (endpoint !== undefined) {
        const stats = sampler.stats!()
        ctx.metric({ name: "requests", value: stats.requests })
        ctx.metric({ name: "cache_hits", value: stats.cacheHits })
        ctx.metric({ name: "retries", value: stats.retries })
        ctx.metric({ name: "failures", value: stats.failures })
        ctx.metric({ name: "input_tokens", value: stats.inputTokens })
        ctx.metric({ name: "output_tokens", value: stats.outputTokens })
        ctx.metric({ name: "cost", value: stats.cost })
        if (failures.length / rows.length > endpoint.maxFailureFraction) {
          return yield* fail(
            ctx,
            `${failures.length} of ${rows.length} prompts failed after their retries, more than maxFailureFraction ${endpoint.maxFailureFraction} of http_teacher '${ctx.inputNodes.model}' allows; the answered ones are cached, so a re-run asks only for the rest. First: ${failures[0]!.error}`
          )
        }
      }
      const kept = rows.flatMap((r, g) => {
        const o: SampleOutcome = outcomes[g]!
        return o._tag === "Sampled" ? [{ ...r, out: o.sample }] : []
      })
      const tokensOfSample = (s: TeacherSample): Int32Array => s.tokens ?? Int32Array.from(encode(tokenizer, s.text))
      const sampled = { out: kept.map((r) => ({ ...r.out, tokens: tokensOfSample(r.out) })), seconds }
      rows = kept
      const G = rows.length
      const promptOffsets = new Int32Array(G + 1)
      const offsets = new Int32Array(G + 1)
      rows.forEach((r, g) => {
        promptOffsets[g + 1] = promptOffsets[g]! + r.prompt.tokens.length
        offsets[g + 1] = offsets[g]! + sampled.out[g]!.tokens.length
      })
      const promptTokens = new Int32Array(promptOffsets[G]!)
      const tokens = new Int32Array(offsets[G]!)
      const meanLogProb = new Float32Array(G)
      let logProbTotal = 0
      let logProbCount = 0
      rows.forEach((r, g) => {
        const s = sampled.out[g]!
        promptTokens.set(r.prompt.tokens, promptOffsets[g]!)
        tokens.set(s.tokens, offsets[g]!)
        // An endpoint's log-probs are over its own tokens; without them the mean is unknown (NaN).
        const logProbs = s.tokenLogProbs ?? new Float32Array()
        let total = 0
        for (const x of logProbs) total += x
        logProbTotal += total
        logProbCount += logProbs.length
        meanLogProb[g] = s.tokenLogProbs !== undefined ? total / logProbs.length : NaN
      })
      const hasAnswers = prompts.some((p) => p.answer !== null)
      let generations: Generations = {
        _tag: "Generations",
        tokenizer,
        generator: ctx.inputNodes.model ?? ctx.nodeId,
        source,
        promptIds: rows.map((r) => r.prompt.id),
        sample: Int32Array.from(rows, (r) => r.sample),
        seeds: Int32Array.from(rows, (r) => r.seed),
        prompts: rows.map((r) => r.prompt.text),
        texts: sampled.out.map((s) => (textOnly ? s.text : decode(tokenizer, s.tokens))),
        promptTokens,
        promptOffsets,
        tokens,
        offsets,
        finishReasons: sampled.out.map((s) => s.finishReason),
        meanLogProb,
        ...(hasAnswers ? { answers: rows.map((r) => r.prompt.answer) } : {}),
        settings: { ...drawn, n: params.n, seed: ctx.seed },
        tokensPerSecond: sampled.seconds > 0 ? tokens.length / sampled.seconds : 0
      }
      if (gguf !== undefined && ggufTokens && teacher === undefined) {
        generations = { ...generations, scores: { scorer: ctx.inputNodes.model ?? "model", ...concatTop(sampled.out.map((s) => s.top!)) } }
        ctx.metric({ name: "teacher_nll", value: meanNll(generations.scores!.tokenLogProb) })
      }
      if (teacher !== undefined) {
        generations = yield* rescore(teacher, ctx.inputNodes.teacher ?? "teacher", generations, params.scoreTopK, params.batchSize).pipe(
          Effect.mapError((e) => fail(ctx, `the teacher could not score the samples: ${scoringFailure(e)}`, e))
        )
        ctx.metric({ name: "teacher_nll", value: meanNll(generations.scores!.tokenLogProb) })
      }
      ctx.metric({ name: "samples", value: G })
      ctx.metric({ name: "tokens", value: tokens.length })
      ctx.metric({ name: "mean_tokens_per_second", value: generations.tokensPerSecond })
      ctx.metric({ name: "mean_log_prob", value: logProbCount > 0 ? logProbTotal / logProbCount : 0 })
      ctx.generations(generationRows(generations))
      ctx.info({
        source,
        prompts: prompts.length,
        truncatedPrompts: truncated,
        stopStrings: "kept in text and tokens",
        seconds: sampled.seconds,
        ...(endpoint !== undefined
          ? {
              sampledThrough: `${endpoint.baseUrl} (model ${endpoint.model}, ${endpoint.api})`,
              scores: "omitted: the endpoint's vocabulary is not the student's; texts are tokenized with input 'tokenizer', meanLogProb is over the endpoint's own tokens",
              failures
            }
          : {}),
        ...(gguf !== undefined
          ? {
              sampledThrough: `${gguf.path} (sha256 ${gguf.sha256.slice(0, 12)}, kvCache ${gguf.kvCache})`,
              scores: ggufTokens
                ? teacher === undefined ? "the GGUF's own top-k + tail at every generated position" : "by input 'teacher'"
                : `omitted: the GGUF's vocabulary is not the student's (${gguf.vocabulary}); texts are tokenized with input 'tokenizer', meanLogProb is over the GGUF's own tokens`
            }
          : {})
      })
      return { generations }
    }).pipe(Effect.withSpan("lm_generate.run", { attributes: { node: ctx.nodeId } }))
})

export const LmScoreParams = Schema.Struct({
  scoreTopK,
  batchSize,
  split: Schema.optionalWith(SplitParam, { default: () => "train" as const }).annotations({
    description: "With input 'corpus': the split whose documents are scored"
  }),
  limit: Schema.optional(PositiveInt).annotations({ description: "With input 'corpus': at most this many documents, the first in order; absent: all" }),
  promptTokens: Schema.optionalWith(PositiveInt, { default: () => 1 }).annotations({
    description:
      "With input 'corpus', for plain-text documents: the first this many tokens are the prompt (not scored), the rest of the document up to the model's context is scored; records keep their prompt and completion"
  })
}).annotations({ identifier: "LmScoreParams" })

/**
 * The documents of a corpus split as Generations rows to score teacher-forced: a record's prompt and
 * completion, or a plain document's first `promptTokens` tokens and the rest, cut to `context` tokens in
 * all (the prompt keeps at least one token). `generator` names the corpus; no sampler was involved.
 */
export const corpusRows = (
  corpus: TextCorpus,
  tokenizer: Tokenizer,
  split: "train" | "validation" | "test",
  o: { readonly promptTokens: number; readonly context: number; readonly limit?: number },
  codec: { readonly encode: (t: Tokenizer, s: string) => ReadonlyArray<number>; readonly decode: (t: Tokenizer, ids: ReadonlyArray<number>) => string }
): Generations => {
  const docs = Array.from(corpus.splits[split]).slice(0, o.limit ?? Infinity)
  const rows = docs.flatMap((d) => {
    const record = corpus.prompts !== undefined && corpus.completions !== undefined
    const prompt = record ? codec.encode(tokenizer, corpus.prompts![d]!) : codec.encode(tokenizer, corpus.texts[d]!).slice(0, o.promptTokens)
    const rest = record ? codec.encode(tokenizer, corpus.completions![d]!) : codec.encode(tokenizer, corpus.texts[d]!).slice(o.promptTokens)
    const head = prompt.slice(Math.max(0, prompt.length - (o.context - 1)))
    const body = rest.slice(0, o.context - head.length)
    return head.length === 0 || body.length === 0 ? [] : [{ id: corpus.ids[d]!, head, body, answer: corpus.answers?.[d] ?? null }]
  })
  const G = rows.length
  const promptOffsets = new Int32Array(G + 1)
  const offsets = new Int32Array(G + 1)
  rows.forEach((r, g) => {
    promptOffsets[g + 1] = promptOffsets[g]! + r.head.length
    offsets[g + 1] = offsets[g]! + r.body.length
  })
  const promptTokens = new Int32Array(promptOffsets[G]!)
  const tokens = new Int32Array(offsets[G]!)
  rows.forEach((r, g) => {
    promptTokens.set(r.head, promptOffsets[g]!)
    tokens.set(r.body, offsets[g]!)
  })
  return {
    _tag: "Generations",
    tokenizer,
    generator: corpus.name,
    source: `${corpus.name}:${split}`,
    promptIds: rows.map((r) => r.id),
    sample: new Int32Array(G),
    seeds: new Int32Array(G),
    prompts: rows.map((r) => codec.decode(tokenizer, r.head)),
    texts: rows.map((r) => codec.decode(tokenizer, r.body)),
    promptTokens,
    promptOffsets,
    tokens,
    offsets,
    finishReasons: rows.map(() => "length" as const),
    meanLogProb: new Float32Array(G).fill(NaN),
    ...(rows.some((r) => r.answer !== null) ? { answers: rows.map((r) => r.answer) } : {}),
    settings: { scored: "the corpus's own text, teacher-forced", promptTokens: o.promptTokens, context: o.context },
    tokensPerSecond: 0
  }
}

export const LmScoreKind = defineKind({
  kind: "lm_score",
  version: 1,
  heavy: true,
  description:
    "Scores sequences teacher-forced: another model's samples (the same Generations with this model's top-k + tail log-probs and token log-prob at every generated position), or a corpus split's documents (as Generations rows: prompt, then the scored text); scoreTopK = the vocabulary size keeps the dense distribution",
  params: LmScoreParams,
  inputs: {
    model: { type: "LanguageModel", description: "the scoring model (same tokenizer as the samples)" },
    samples: { type: "Generations", optional: true, description: "the samples scored, e.g. an lm_generate node's" },
    corpus: { type: "TextCorpus", optional: true, description: "or the documents of a split of this corpus (param 'split'), e.g. to distil from stored scores on the data itself" }
  },
  outputs: { generations: "Generations" },
  run: (ctx) =>
    Effect.gen(function* () {
      const lm: LanguageModel = ctx.inputs.model
      const given: Generations | undefined = ctx.inputs.samples
      const corpus: TextCorpus | undefined = ctx.inputs.corpus
      if ((given === undefined) === (corpus === undefined)) {
        return yield* fail(ctx, "wire exactly one of input 'samples' (a Generations node) and input 'corpus' (a TextCorpus node, scored by split)")
      }
      let samples: Generations
      if (given !== undefined) samples = given
      else {
        const { decode, encode } = yield* onRun(() => import("../../tokenizer/Tokenizer.js"))
        const { context } = decodeTransformerSpec(lm.spec)
        const p = ctx.params
        samples = corpusRows(corpus!, lm.tokenizer, p.split, { promptTokens: p.promptTokens, context, ...(p.limit !== undefined ? { limit: p.limit } : {}) }, { encode, decode })
        if (samples.promptIds.length === 0) {
          return yield* fail(ctx, `the ${p.split} split of corpus '${corpus!.name}' has no document of more than promptTokens ${p.promptTokens} tokens to score`)
        }
      }
      const mismatch = tokenizerMismatch("the samples", samples.tokenizer, lm.tokenizer)
      if (mismatch !== undefined) return yield* fail(ctx, mismatch)
      const generations = yield* rescore(lm, ctx.inputNodes.model ?? ctx.nodeId, samples, ctx.params.scoreTopK, ctx.params.batchSize).pipe(
        Effect.mapError((e) => fail(ctx, `could not score the samples: ${scoringFailure(e)}`, e))
      )
      ctx.metric({ name: "samples", value: samples.promptIds.length })
      ctx.metric({ name: "tokens", value: samples.tokens.length })
      ctx.metric({ name: "nll", value: meanNll(generations.scores!.tokenLogProb) })
      ctx.generations(generationRows(generations))
      return { generations }
    }).pipe(Effect.withSpan("lm_score.run", { attributes: { node: ctx.nodeId } }))
})
