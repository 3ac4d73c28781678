/**
 * Loads a pipeline from a YAML file: parses it keeping source positions, so that every later check
 * can point at file:line:column, loads the plugins it names, and resolves it against the registry.
 * A `sweep:` section is checked too (pipeline/SweepGrammar.ts); `loadSweepFile` returns its trials.
 */
import { Effect, Either } from "effect"
import { readFile } from "node:fs/promises"
import { dirname } from "node:path"
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit } from "yaml"
import type { Document, Node as YamlNode } from "yaml"
import type { KindRegistry, PluginError, RegistryError } from "../nodes/Registry.js"
import { withPlugins } from "../nodes/Registry.js"
import type { Pipeline, PipelineIssue, SourceMap } from "./Pipeline.js"
import { PipelineError } from "./Pipeline.js"
import type { Sweep } from "./SweepGrammar.js"
import { resolveSweep } from "./SweepGrammar.js"
import { resolvePipeline } from "./Validate.js"

/** A parsed YAML document with its source map. */
export interface ParsedYaml {
  readonly value: unknown
  readonly source: SourceMap
}

const sourceMapOf = (file: string, doc: Document.Parsed, lines: LineCounter): SourceMap => ({
  file,
  locate: (path) => {
    let node: unknown = doc.contents
    let range: readonly [number, number, number] | undefined = (doc.contents as YamlNode | null)?.range ?? undefined
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment))
        if (pair === undefined) return undefined
        // Point at the key: that is where a reader looks for an unknown or ill-typed key.
        range = (pair.key as YamlNode).range ?? undefined
        node = pair.value
      } else if (isSeq(node) && typeof segment === "number") {
        const item = node.items[segment] as YamlNode | undefined
        if (item === undefined) return undefined
        range = item.range ?? undefined
        node = item
      } else {
        return undefined
      }
    }
    if (range === undefined) return undefined
    const pos = lines.linePos(range[0])
    return { line: pos.line, column: pos.col }
  }
})

/** Most aliases a document may expand to: more is an alias bomb (a few lines that expand exponentially). */
const maxAliasCount = 1000

/**
 * Parses YAML text. Every error the parser can raise becomes a PipelineError with positions: syntax
 * errors (duplicate keys, tabs as indentation, bad escapes...), an alias to an anchor not set before
 * it, and an alias bomb; a document is never expanded past `maxAliasCount` aliases.
 */
export const parseYaml = (file: string, text: string): Either.Either<ParsedYaml, PipelineError> => {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true, merge: true })
  if (doc.errors.length > 0) {
    const issues: Array<PipelineIssue> = doc.errors.map((e) => {
      const pos = e.linePos?.[0]
      const message = e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")
      return pos ? { message: `YAML: ${message}`, path: [], line: pos.line, column: pos.col } : { message: `YAML: ${message}`, path: [] }
    })
    return Either.left(new PipelineError({ file, issues }))
  }
  const at = (range: readonly [number, ...Array<number>] | null | undefined) => {
    if (range === undefined || range === null) return { line: 1, column: 1 }
    const pos = lines.linePos(range[0])
    return { line: pos.line, column: pos.col }
  }
  const unresolved: Array<PipelineIssue> = []
  let firstAlias: PipelineIssue | undefined
  visit(doc, {
    Alias(_, alias) {
      const issue = { path: [], ...at(alias.range) }
      firstAlias ??= { ...issue, message: "" }
      if (alias.resolve(doc) === undefined) {
        unresolved.push({ ...issue, message: `YAML: alias *${alias.source} names no anchor set before it (write &${alias.source} on an earlier value)` })
      }
    }
  })
  if (unresolved.length > 0) return Either.left(new PipelineError({ file, issues: unresolved }))
  try {
    return Either.right({ value: doc.toJS({ maxAliasCount }), source: sourceMapOf(file, doc, lines) })
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e)
    const bomb = /alias count/i.test(message)
    return Either.left(
      new PipelineError({
        file,
        issues: [{
          ...(firstAlias ?? { path: [], line: 1, column: 1 }),
          message: bomb ? `YAML: its aliases expand to more than ${maxAliasCount} values (an alias bomb?); write the values out instead` : `YAML: ${message}`
        }]
      })
    )
  }
}

export const readPipelineText = (file: string): Effect.Effect<string, PipelineError> =>
  Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (cause) =>
      new PipelineError({
        file,
        issues: [
          {
            message: (cause as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : `cannot read: ${String(cause)}`,
            path: []
          }
        ]
      })
  })

/** The plugins a document names, loaded relative to the pipeline file. */
export const pluginsOf = (value: unknown): ReadonlyArray<string> => {
  const plugins = (value as { plugins?: unknown } | null)?.plugins
  return Array.isArray(plugins) ? plugins.filter((p): p is string => typeof p === "string") : []
}

const hasSweep = (value: unknown): boolean =>
  typeof value === "object" && value !== null && (value as { sweep?: unknown }).sweep !== undefined

/**
 * Reads, parses, loads plugins and resolves a pipeline file. When it has a `sweep:` section, every
 * trial is checked too (so `run` and `validate` catch a bad sweep), and the pipeline as written is
 * returned.
 */
export const loadPipelineFile = (
  file: string,
  registry: KindRegistry
): Effect.Effect<Pipeline, PipelineError | PluginError | RegistryError> =>
  Effect.gen(function* () {
    const text = yield* readPipelineText(file)
    const parsed = yield* parseYaml(file, text)
    const withKinds = yield* withPlugins(registry, pluginsOf(parsed.value), dirname(file))
    if (hasSweep(parsed.value)) return (yield* resolveSweep(parsed.value, withKinds, parsed.source)).pipeline
    return yield* resolvePipeline(parsed.value, withKinds, parsed.source)
  })

/** Reads, parses, loads plugins and expands a pipeline file's `sweep:` section into its trials. */
export const loadSweepFile = (
  file: string,
  registry: KindRegistry
): Effect.Effect<Sweep, PipelineError | PluginError | RegistryError> =>
  Effect.gen(function* () {
    const text = yield* readPipelineText(file)
    const parsed = yield* parseYaml(file, text)
    const withKinds = yield* withPlugins(registry, pluginsOf(parsed.value), dirname(file))
    return yield* resolveSweep(parsed.value, withKinds, parsed.source)
  })
