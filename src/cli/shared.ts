/**
 * Options and helpers shared by the CLI verbs: where the store lives, which backend to use, how to
 * print a table, and loading a pipeline file against the built-in kinds.
 *
 * Verb modules import heavy modules (the YAML parser and the kinds, the executor, the report) inside
 * their handlers, with `import()`, so that `--help` and every other verb start without them.
 */
import { Options } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { backendNames, defaultBackend } from "../backend/TfBackend.js"

export const storeOption = Options.directory("store").pipe(
  Options.withDescription("the store directory: cached artifacts and results.duckdb"),
  Options.withDefault(".distillery")
)

export const backendOption = Options.choice("backend", backendNames).pipe(
  Options.withDescription(
    "the tfjs backend: auto (default: tensorflow when @tensorflow/tfjs-node is installed, else webgpu on a GPU, else native where its kernels built, else wasm), native, wasm, cpu, tensorflow, webgpu"
  ),
  Options.withDefault(defaultBackend)
)

export const formatOption = Options.choice("format", ["table", "csv", "json"] as const).pipe(
  Options.withDescription("output format"),
  Options.withDefault("table" as const)
)

export const resultsFile = (store: string): string => join(store, "results.duckdb")

/** The YAML loader and the built-in kinds, imported when a verb first reads a pipeline. */
const loader = Effect.promise(() => Promise.all([import("../pipeline/Yaml.js"), import("../nodes/builtins.js")]))

export const loadPipeline = (file: string) =>
  Effect.flatMap(loader, ([yaml, kinds]) => yaml.loadPipelineFile(file, kinds.builtinRegistry))

/** A pipeline file's `sweep:` section, expanded into its trials. */
export const loadSweep = (file: string) =>
  Effect.flatMap(loader, ([yaml, kinds]) => yaml.loadSweepFile(file, kinds.builtinRegistry))

/** One worker thread per core: independent trainings then run side by side. */
export const defaultWorkers = Math.max(1, availableParallelism())

/** A `--run-id` or `--sweep-id` that the store already holds: ids name one run or sweep for good. */
export class IdTakenError extends Schema.TaggedError<IdTakenError>()("IdTakenError", {
  message: Schema.String
}) {}

/** Fails with IdTakenError when the store already records a run (or sweep) of this id. */
export const refuseTakenId = (what: "run" | "sweep", id: string) =>
  Effect.gen(function* () {
    const ReadModel = yield* Effect.promise(() => import("../store/ReadModel.js"))
    const found: Option.Option<{ readonly status: string }> = what === "run" ? yield* ReadModel.run(id) : yield* ReadModel.sweep(id)
    if (Option.isSome(found)) {
      const status = found.value.status
      return yield* new IdTakenError({
        message: `the store already holds a ${what} '${id}' (${status}); give another --${what}-id, or none for a fresh one (\`distillery show ${id}\` shows the old one)`
      })
    }
  })

/**
 * Keeps the content hashes of model files (GGUF teachers, nodes/lm/gguf.ts) in the store folder,
 * beside the artifacts whose keys they are part of, unless DISTILLERY_HASH_INDEX names another file.
 */
export const keepFileHashesIn = (store: string): void => {
  process.env["DISTILLERY_HASH_INDEX"] ??= join(store, "file-hashes.json")
}
