/**
 * `distillery schema [pipeline]`: prints the JSON Schema of the pipeline grammar (pipeline/JsonSchema.ts)
 * for the YAML language server; with a pipeline, the kinds its `plugins:` add are in it too. The copy
 * at the repository root, pipeline.schema.json, is this verb's output for the built-in kinds.
 */
import { Args, Command, Options } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import { Console, Effect, Option, Schema } from "effect"
import { dirname } from "node:path"

/** The schema file could not be written. */
export class SchemaWriteError extends Schema.TaggedError<SchemaWriteError>()("SchemaWriteError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** The kinds, the YAML loader and the schema generator, imported when the verb runs. */
const loadModules = Effect.promise(() =>
  Promise.all([import("../nodes/builtins.js"), import("../nodes/Registry.js"), import("../pipeline/Yaml.js"), import("../pipeline/JsonSchema.js")])
)

/** The built-in kinds plus those of the plugins `file` names (loaded relative to it). */
export const pipelineRegistry = (file: string) =>
  Effect.gen(function* () {
    const [{ builtinRegistry }, { withPlugins }, { parseYaml, pluginsOf, readPipelineText }] = yield* loadModules
    const parsed = yield* parseYaml(file, yield* readPipelineText(file))
    return yield* withPlugins(builtinRegistry, pluginsOf(parsed.value), dirname(file))
  })

export const schema = Command.make(
  "schema",
  {
    pipeline: Args.text({ name: "pipeline" }).pipe(
      Args.withDescription("a pipeline YAML file: the kinds its plugins add are included"),
      Args.optional
    ),
    out: Options.text("out").pipe(
      Options.withDescription("write the schema to this file instead of printing it"),
      Options.optional
    )
  },
  (o) =>
    Effect.gen(function* () {
      const [{ builtinRegistry }, , , { pipelineJsonSchema, renderJsonSchema }] = yield* loadModules
      const registry = Option.isSome(o.pipeline) ? yield* pipelineRegistry(o.pipeline.value) : builtinRegistry
      const text = renderJsonSchema(pipelineJsonSchema(registry))
      if (Option.isNone(o.out)) return yield* Console.log(text.trimEnd())
      const file = o.out.value
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(file, text).pipe(
        Effect.mapError((cause) => new SchemaWriteError({ path: file, message: `could not write ${file}: ${cause.message}`, cause }))
      )
      yield* Console.error(`wrote ${file}`)
    })
).pipe(
  Command.withDescription(
    "Print the JSON Schema of the pipeline grammar for the YAML language server (# yaml-language-server: $schema=<file>)"
  )
)
