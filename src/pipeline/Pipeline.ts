/**
 * The pipeline grammar as one Schema (what a YAML file or the TypeScript builder produces), the
 * resolved form the executor runs (kinds looked up, params decoded with defaults, inputs wired to
 * upstream ports, topological order), and the one error every load-time check reports through.
 */
import { Schema } from "effect"
import { NodeIdText } from "../domain/Ids.js"
import type { AnyNodeKind } from "../nodes/NodeKind.js"

export const NodeDoc = Schema.Struct({
  id: NodeIdText,
  kind: Schema.String,
  params: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  /** Input port -> "node" or "node.port". */
  inputs: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  seed: Schema.optional(Schema.Int),
  description: Schema.optional(Schema.String)
})
export type NodeDoc = typeof NodeDoc.Type

export const PipelineDoc = Schema.Struct({
  name: Schema.String,
  description: Schema.optional(Schema.String),
  seed: Schema.optional(Schema.Int),
  /** Plugin modules (paths relative to the pipeline file, or package names) that add node kinds. */
  plugins: Schema.optional(Schema.Array(Schema.String)),
  nodes: Schema.Array(NodeDoc),
  /** Sweep over params (grid / zip / random / seeds), expanded into trials before resolution. */
  sweep: Schema.optional(Schema.Unknown)
})
export type PipelineDoc = typeof PipelineDoc.Type

/** Where an input port's value comes from. */
export interface PortRef {
  readonly node: string
  readonly port: string
}

export interface ResolvedNode {
  readonly id: string
  readonly kind: AnyNodeKind
  /** Decoded params, defaults filled: what `run` receives. */
  readonly params: unknown
  /** The params encoded back to plain JSON, defaults spelled out: what the cache key hashes. */
  readonly encodedParams: unknown
  readonly inputs: Readonly<Record<string, PortRef>>
  readonly seed: number
}

export interface Pipeline {
  readonly name: string
  readonly description?: string
  /** The file it came from, or "<code>" for a pipeline built in TypeScript. */
  readonly source: string
  readonly seed: number
  /** Nodes in topological order (dependencies first). */
  readonly nodes: ReadonlyArray<ResolvedNode>
  readonly doc: PipelineDoc
}

/** One problem found while loading; positions are 1-based when known. */
export interface PipelineIssue {
  readonly message: string
  readonly path: ReadonlyArray<string | number>
  readonly line?: number
  readonly column?: number
}

const formatIssue = (file: string, issue: PipelineIssue): string =>
  `${file}${issue.line !== undefined ? `:${issue.line}:${issue.column ?? 1}` : ""}: ${issue.message}`

/** Every load-time problem of a pipeline, all reported at once, each with file:line:column. */
export class PipelineError extends Schema.TaggedError<PipelineError>()("PipelineError", {
  file: Schema.String,
  issues: Schema.Array(
    Schema.Struct({
      message: Schema.String,
      path: Schema.Array(Schema.Union(Schema.String, Schema.Number)),
      line: Schema.optional(Schema.Number),
      column: Schema.optional(Schema.Number)
    })
  )
}) {
  override get message(): string {
    const n = this.issues.length
    return `${n === 1 ? "1 problem" : `${n} problems`} in ${this.file}:\n${this.issues
      .map((i) => `  ${formatIssue(this.file, i)}`)
      .join("\n")}`
  }
}

/** Maps a path in the pipeline document to its position in the source text. */
export interface SourceMap {
  readonly file: string
  readonly locate: (path: ReadonlyArray<string | number>) => { readonly line: number; readonly column: number } | undefined
}

export const noSourceMap = (file: string): SourceMap => ({ file, locate: () => undefined })

/**
 * The position of `path`, or of its nearest ancestor that has one (a missing key has none of its
 * own), walking up no further than `floor` segments.
 */
export const locateNearest = (source: SourceMap, path: ReadonlyArray<string | number>, floor = 0) => {
  let at = path
  let pos = source.locate(at)
  while (pos === undefined && at.length > floor) {
    at = at.slice(0, -1)
    pos = source.locate(at)
  }
  return pos
}

/** An issue about `path`, placed at its nearest known position. */
export const issueAt = (source: SourceMap, path: ReadonlyArray<string | number>, message: string): PipelineIssue => {
  const pos = locateNearest(source, path)
  return pos === undefined ? { message, path } : { message, path, line: pos.line, column: pos.column }
}
