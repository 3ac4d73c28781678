/**
 * The expected failure of every data source: a file that cannot be read or parsed, a column or key that
 * is not there, a value that is not a number, a label outside the declared classes. The message always
 * starts with `file[:line]:` and, where there is a choice, lists the valid alternatives.
 */
import { Schema } from "effect"

export class DataError extends Schema.TaggedError<DataError>()("DataError", {
  /** The file as the user named it (or the package file, for built-in sets). */
  file: Schema.String,
  /** 1-based line of the offending record, when there is one. */
  line: Schema.optional(Schema.Number),
  /** The column or key at fault, when there is one. */
  key: Schema.optional(Schema.String),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  /** Builds the error with its `file:line: detail` message. */
  static at(
    where: { readonly file: string; readonly line?: number; readonly key?: string; readonly cause?: unknown },
    detail: string
  ): DataError {
    const prefix = where.line === undefined ? where.file : `${where.file}:${where.line}`
    return new DataError({ ...where, message: `${prefix}: ${detail}` })
  }
}
