/**
 * Datasets read from the user's files, JSONL (one JSON object per line) or CSV (RFC 4180: a header row,
 * quoted fields with doubled inner quotes, CRLF or LF), with a declared schema: which columns are the
 * features (several numeric columns, or one column holding an array of numbers) and which the label.
 * Every problem is a `DataError` naming the file, the 1-based line and the column or key, and listing
 * the valid choices. Example ids are the index of the example among the file's data rows.
 */
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import type { Dataset } from "../domain/Artifact.js"
import { didYouMean } from "../domain/Suggest.js"
import { DataError } from "./DataError.js"
import type { SplitFractions } from "./split.js"
import { makeDataset } from "./split.js"

export type FileFormat = "jsonl" | "csv"

export interface FileDatasetOptions extends SplitFractions {
  /** The file, as the user wrote it (messages show it like this); relative paths resolve against `baseDir`. */
  readonly path: string
  readonly format: FileFormat
  /** Numeric columns (keys), in order; or the name of one column holding an array of numbers. */
  readonly features: string | ReadonlyArray<string>
  readonly label: string
  /**
   * Label names, in class-index order. A label must then be one of these names (or an integer index
   * into them). When absent: if every label is a non-negative integer they are used as is (classes
   * 0..max), else the distinct labels sorted are the classes.
   */
  readonly classes?: ReadonlyArray<string>
  /** Keep rows with no label (empty cell, missing key, null) as label -1 instead of failing. */
  readonly allowUnlabelled?: boolean
  /** Directory that relative paths resolve against; the current working directory when absent. */
  readonly baseDir?: string
  readonly seed: number
}

/** The file's absolute path: `path` itself when absolute, else resolved against `baseDir` (or the cwd). */
export const resolveDataPath = (path: string, baseDir?: string): string =>
  nodePath.resolve(baseDir ?? process.cwd(), path)

// ---------------------------------------------------------------------------------------------------
// CSV

export interface CsvRecord {
  /** 1-based line the record starts on. */
  readonly line: number
  readonly fields: ReadonlyArray<string>
}

export interface CsvSyntaxError {
  readonly line: number
  readonly message: string
}

/**
 * Splits CSV text into records (RFC 4180). A quoted field may hold commas, newlines and doubled
 * quotes; a quote inside an unquoted field is kept as a literal character. Blank lines are skipped.
 */
export const parseCsv = (text: string): Either.Either<Array<CsvRecord>, CsvSyntaxError> => {
  const records: Array<CsvRecord> = []
  let fields: Array<string> = []
  let field = ""
  let line = 1
  let start = 1
  let open = false // inside a quoted field
  let closed = false // the current field was quoted and its closing quote seen
  let openedOn = 1
  const endField = () => {
    fields.push(field)
    field = ""
    closed = false
  }
  const endRecord = () => {
    const blank = fields.length === 0 && field === "" && !closed
    endField()
    if (!blank) records.push({ line: start, fields })
    fields = []
  }
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0
  while (i < text.length) {
    const ch = text[i]!
    if (open) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"'
          i += 2
          continue
        }
        open = false
        closed = true
      } else {
        if (ch === "\n" || (ch === "\r" && text[i + 1] !== "\n")) line++
        field += ch
      }
      i++
      continue
    }
    if (ch === ",") {
      endField()
    } else if (ch === "\n" || ch === "\r") {
      endRecord()
      if (ch === "\r" && text[i + 1] === "\n") i++
      line++
      start = line
    } else if (closed) {
      return Either.left({
        line,
        message: `unexpected ${JSON.stringify(ch)} after a closing quote; a quoted field must end at ',' or the line's end`
      })
    } else if (ch === '"' && field === "") {
      open = true
      openedOn = line
    } else {
      field += ch
    }
    i++
  }
  if (open) return Either.left({ line: openedOn, message: "a quoted field opened here is never closed" })
  if (fields.length > 0 || field !== "" || closed) endRecord()
  return Either.right(records)
}

// ---------------------------------------------------------------------------------------------------
// Tables: CSV and JSONL behind one row interface

export interface Row {
  readonly line: number
  /** The raw value under `key`, undefined when the row has no such key. */
  readonly get: (key: string) => unknown
  readonly keys: ReadonlyArray<string>
}

export const listOf = (names: ReadonlyArray<string>): string => (names.length === 0 ? "(none)" : names.join(", "))

const quoted = (value: unknown): string => (typeof value === "string" ? `'${value}'` : JSON.stringify(value))

export const csvRows = (file: string, text: string, wanted: ReadonlyArray<string>): Effect.Effect<Array<Row>, DataError> =>
  Effect.gen(function* () {
    const parsed = parseCsv(text)
    if (Either.isLeft(parsed)) return yield* DataError.at({ file, line: parsed.left.line }, parsed.left.message)
    const [header, ...records] = parsed.right
    if (header === undefined) return yield* DataError.at({ file }, "the file is empty; expected a header row")
    const columns = header.fields.map((name) => name.trim())
    const index = new Map<string, number>()
    columns.forEach((name, i) => {
      if (!index.has(name)) index.set(name, i)
    })
    for (const key of wanted) {
      if (!index.has(key)) {
        return yield* DataError.at(
          { file, line: header.line, key },
          `column '${key}' not found${didYouMean(key, columns)}; columns are: ${listOf(columns)}`
        )
      }
    }
    const rows: Array<Row> = []
    for (const record of records) {
      if (record.fields.length !== columns.length) {
        return yield* DataError.at(
          { file, line: record.line },
          `expected ${columns.length} fields (${listOf(columns)}), found ${record.fields.length}`
        )
      }
      rows.push({ line: record.line, keys: columns, get: (key) => record.fields[index.get(key)!] })
    }
    return rows
  })

export const jsonlRows = (file: string, text: string): Effect.Effect<Array<Row>, DataError> =>
  Effect.gen(function* () {
    const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/)
    const rows: Array<Row> = []
    for (let i = 0; i < lines.length; i++) {
      const source = lines[i]!
      if (source.trim() === "") continue
      const line = i + 1
      const parsed = Either.try(() => JSON.parse(source) as unknown)
      if (Either.isLeft(parsed)) {
        const reason = (parsed.left as Error).message
        return yield* DataError.at({ file, line, cause: parsed.left }, `not valid JSON: ${reason}`)
      }
      const value = parsed.right
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        const found = Array.isArray(value) ? "an array" : JSON.stringify(value)
        return yield* DataError.at({ file, line }, `expected a JSON object per line, found ${found}`)
      }
      const object = value as Readonly<Record<string, unknown>>
      const get = (key: string) => (Object.hasOwn(object, key) ? object[key] : undefined)
      rows.push({ line, keys: Object.keys(object), get })
    }
    return rows
  })

// ---------------------------------------------------------------------------------------------------
// Values

/** A finite number, from a JSON number or (CSV) a numeric cell; undefined otherwise. */
const toNumber = (value: unknown, format: FileFormat): number | undefined => {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined
  if (format === "csv" && typeof value === "string" && value.trim() !== "") {
    const n = Number(value.trim())
    return Number.isFinite(n) ? n : undefined
  }
  return undefined
}

/** The elements of an array column: a JSON array, or (CSV) a cell holding "[1, 2]" or "1 2" / "1;2". */
const toVector = (value: unknown, format: FileFormat): ReadonlyArray<unknown> | undefined => {
  if (Array.isArray(value)) return value
  if (format !== "csv" || typeof value !== "string") return undefined
  const text = value.trim()
  if (text.startsWith("[")) {
    const parsed = Either.try(() => JSON.parse(text) as unknown)
    return Either.isRight(parsed) && Array.isArray(parsed.right) ? parsed.right : undefined
  }
  return text === "" ? [] : text.split(/[\s;]+/)
}

/** The label as a string token, undefined when the row has none (missing, null, empty). */
const toLabelToken = (value: unknown): string | undefined | { readonly invalid: unknown } => {
  if (value === undefined || value === null) return undefined
  if (typeof value === "string") return value.trim() === "" ? undefined : value.trim()
  if (typeof value === "number" || typeof value === "boolean") return String(value)
  return { invalid: value }
}

const isIndex = (token: string): boolean => /^\d+$/.test(token)

// ---------------------------------------------------------------------------------------------------
// Datasets

/** Builds the dataset from a file's text; `options.path` is used only in messages. */
export const parseFileDataset = (text: string, options: FileDatasetOptions): Effect.Effect<Dataset, DataError> =>
  Effect.gen(function* () {
    const file = options.path
    const { format, label } = options
    const featureKeys = typeof options.features === "string" ? [options.features] : options.features
    const rows = format === "csv" ? yield* csvRows(file, text, [...featureKeys, label]) : yield* jsonlRows(file, text)
    if (rows.length === 0) return yield* DataError.at({ file }, "no data rows")

    const values: Array<number> = []
    let width = typeof options.features === "string" ? -1 : featureKeys.length
    for (const row of rows) {
      for (const key of featureKeys) {
        const raw = row.get(key)
        if (raw === undefined) {
          return yield* DataError.at(
            { file, line: row.line, key },
            `key '${key}' not found${didYouMean(key, row.keys)}; keys are: ${listOf(row.keys)}`
          )
        }
        if (typeof options.features !== "string") {
          const n = toNumber(raw, format)
          if (n === undefined) {
            return yield* DataError.at(
              { file, line: row.line, key },
              `feature '${key}' has value ${quoted(raw)}, not a number`
            )
          }
          values.push(n)
          continue
        }
        const vector = toVector(raw, format)
        if (vector === undefined) {
          return yield* DataError.at(
            { file, line: row.line, key },
            `feature column '${key}' must hold an array of numbers, found ${quoted(raw)}`
          )
        }
        if (width === -1) width = vector.length
        if (vector.length !== width || width === 0) {
          return yield* DataError.at(
            { file, line: row.line, key },
            width === 0
              ? `feature column '${key}' holds an empty array`
              : `feature column '${key}' holds ${vector.length} values; earlier rows hold ${width}`
          )
        }
        for (let j = 0; j < vector.length; j++) {
          const n = toNumber(vector[j], format)
          if (n === undefined) {
            return yield* DataError.at(
              { file, line: row.line, key },
              `feature column '${key}' element ${j} is ${quoted(vector[j])}, not a number`
            )
          }
          values.push(n)
        }
      }
    }

    if (format === "jsonl" && !rows.some((row) => row.get(label) !== undefined)) {
      const keys = rows[0]!.keys
      return yield* DataError.at(
        { file, key: label },
        `label key '${label}' not found in any row${didYouMean(label, keys)}; keys are: ${listOf(keys)}`
      )
    }
    const tokens: Array<string | undefined> = []
    for (const row of rows) {
      const token = toLabelToken(row.get(label))
      if (typeof token === "object") {
        return yield* DataError.at(
          { file, line: row.line, key: label },
          `label ${quoted(token.invalid)} is not a string or number`
        )
      }
      if (token === undefined && options.allowUnlabelled !== true) {
        return yield* DataError.at(
          { file, line: row.line, key: label },
          `no label in '${label}'; set allowUnlabelled: true to keep unlabelled rows (as label -1)`
        )
      }
      tokens.push(token)
    }

    const present = tokens.filter((t): t is string => t !== undefined)
    let classNames: ReadonlyArray<string>
    let indexOf: (token: string) => number | undefined
    if (options.classes !== undefined) {
      classNames = options.classes
      const byName = new Map(classNames.map((name, i) => [name, i] as const))
      indexOf = (t) => byName.get(t) ?? (isIndex(t) && Number(t) < classNames.length ? Number(t) : undefined)
    } else if (present.every(isIndex)) {
      const count = present.reduce((m, t) => Math.max(m, Number(t) + 1), 0)
      classNames = Array.from({ length: count }, (_, i) => String(i))
      indexOf = Number
    } else {
      classNames = [...new Set(present)].sort()
      const byName = new Map(classNames.map((name, i) => [name, i] as const))
      indexOf = (t) => byName.get(t)
    }
    const y = new Int32Array(rows.length)
    for (let i = 0; i < rows.length; i++) {
      const token = tokens[i]
      const index = token === undefined ? -1 : indexOf(token)
      if (index === undefined) {
        return yield* DataError.at(
          { file, line: rows[i]!.line, key: label },
          `label '${token}' is not one of the classes: ${listOf(classNames)} (or an index below ${classNames.length})`
        )
      }
      y[i] = index
    }

    const name = nodePath.basename(file).replace(/\.[^.]*$/, "")
    const x = Float32Array.from(values)
    return makeDataset({ name, featureShape: [width], classNames, x, y }, options, options.seed)
  })

/** Reads the file (see `resolveDataPath`) and builds the dataset. */
export const loadFileDataset = (options: FileDatasetOptions): Effect.Effect<Dataset, DataError> =>
  Effect.gen(function* () {
    const resolved = resolveDataPath(options.path, options.baseDir)
    const text = yield* Effect.tryPromise({
      try: () => fs.promises.readFile(resolved, "utf8"),
      catch: (cause) =>
        DataError.at(
          { file: options.path, cause },
          `cannot read the file (resolved to ${resolved}): ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`
        )
    })
    return yield* parseFileDataset(text, options)
  })
