/**
 * Renders a query result for people and for other tools: an aligned text table, CSV (RFC 4180) or
 * JSON (an array of objects). Pure functions over `QueryResult`; the `query` verb picks one.
 */
import type { QueryResult } from "./ResultsStore.js"

const NUMERIC_TYPE = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL|BIGNUM)\b/

/** Whether a DuckDB type name is numeric (such columns are right-aligned). */
export const isNumericType = (type: string | undefined): boolean => type !== undefined && NUMERIC_TYPE.test(type)

/**
 * A number for reading: integers as they are; other numbers with 4 decimals when |x| >= 1
 * (`12.3457`), with 4 significant digits when |x| < 1 (`0.1235`, `0.0001234`), in exponent form when
 * very small or very large (`1.235e-7`, `1.235e+15`).
 */
export const formatNumber = (x: number): string => {
  if (Number.isNaN(x)) return "NaN"
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity"
  if (Number.isInteger(x)) return Math.abs(x) >= 1e15 ? x.toExponential(3) : String(x)
  const abs = Math.abs(x)
  if (abs >= 1e15 || abs < 1e-6) return x.toExponential(3)
  if (abs >= 1) return x.toFixed(4)
  return x.toPrecision(4)
}

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")

const charLength = (s: string): number => {
  let n = 0
  for (const _ of s) n++
  return n
}

const truncate = (s: string, width: number): string => {
  if (charLength(s) <= width) return s
  const chars = [...s]
  return chars.slice(0, Math.max(0, width - 1)).join("") + "…"
}

export interface TableOptions {
  /** Cells longer than this many characters are cut with `…` (default 40). */
  readonly maxCellWidth?: number
  /** How NULL is shown (default `-`). */
  readonly nullText?: string
  /** Append a `(N rows)` line (default true). */
  readonly footer?: boolean
}

/** One cell as table text: numbers formatted, objects as compact JSON, line breaks escaped. */
export const formatCell = (value: unknown, nullText = "-"): string => {
  if (value === null || value === undefined) return nullText
  if (typeof value === "number") return formatNumber(value)
  if (typeof value === "string") return value.replace(/\r?\n/g, "\\n").replace(/\t/g, " ")
  if (typeof value === "boolean" || typeof value === "bigint") return String(value)
  if (value instanceof Uint8Array) return `<${value.length} bytes>`
  return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) ?? String(value)
}

/** An aligned text table: header, a rule, the rows; numeric columns right-aligned. */
export const formatTable = (result: QueryResult, options: TableOptions = {}): string => {
  const maxWidth = Math.max(1, options.maxCellWidth ?? 40)
  const nullText = options.nullText ?? "-"
  const header = result.columns.map((c) => truncate(c, maxWidth))
  const cells = result.rows.map((row) => result.columns.map((_, c) => truncate(formatCell(row[c], nullText), maxWidth)))
  const rightAligned = result.columns.map((_, c) =>
    isNumericType(result.types[c]) ||
    (result.rows.length > 0 && result.rows.every((row) => row[c] === null || typeof row[c] === "number"))
  )
  const widths = result.columns.map((_, c) => Math.max(charLength(header[c]!), ...cells.map((row) => charLength(row[c]!))))
  const pad = (text: string, c: number) => {
    const fill = " ".repeat(widths[c]! - charLength(text))
    return rightAligned[c] ? fill + text : text + fill
  }
  const line = (row: ReadonlyArray<string>) => row.map(pad).join("  ").trimEnd()
  const lines = [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)]
  if (options.footer ?? true) lines.push(`(${result.rows.length} row${result.rows.length === 1 ? "" : "s"})`)
  return lines.join("\n") + "\n"
}

const csvField = (value: unknown): string => {
  if (value === null || value === undefined) return ""
  let text: string
  if (typeof value === "string") text = value
  else if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") text = String(value)
  else if (value instanceof Uint8Array) text = hex(value)
  else text = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) ?? String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, "\"\"")}"` : text
}

/** CSV per RFC 4180: a header line, CRLF line ends, fields with `,` `"` or line breaks quoted. NULL is empty. */
export const formatCsv = (result: QueryResult): string =>
  [result.columns, ...result.rows].map((row) => result.columns.map((_, c) => csvField(row[c])).join(",")).join("\r\n") +
  "\r\n"

/** Column names made unique, as DuckDB does: a repeated `x` becomes `x_1`, `x_2`... */
const uniqueNames = (columns: ReadonlyArray<string>): ReadonlyArray<string> => {
  const used = new Set<string>()
  return columns.map((name) => {
    let candidate = name
    for (let i = 1; used.has(candidate); i++) candidate = `${name}_${i}`
    used.add(candidate)
    return candidate
  })
}

const jsonValue = (value: unknown): unknown => {
  if (value === undefined) return null
  if (typeof value === "number" && !Number.isFinite(value)) return String(value)
  if (typeof value === "bigint") return value.toString()
  if (value instanceof Uint8Array) return hex(value)
  if (Array.isArray(value)) return value.map(jsonValue)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonValue(v)]))
  }
  return value
}

/**
 * A JSON array with one object per row (repeated column names get `_1`, `_2`...). NaN and ±Infinity
 * become the strings "NaN", "Infinity", "-Infinity"; blobs hex strings.
 */
export const formatJson = (result: QueryResult, options: { readonly pretty?: boolean } = {}): string => {
  const names = uniqueNames(result.columns)
  const objects = result.rows.map((row) => Object.fromEntries(names.map((name, c) => [name, jsonValue(row[c])])))
  return JSON.stringify(objects, null, options.pretty ? 2 : undefined)
}
