/**
 * Options and helpers shared by the CLI verbs: where the store lives, which backend to use, how to
 * print a table, and loading a pipeline file against the built-in kinds.
 */
import { Options } from "@effect/cli"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { backendNames, defaultBackend } from "../backend/TfBackend.js"
import { builtinRegistry } from "../nodes/builtins.js"
import { loadPipelineFile } from "../pipeline/Yaml.js"

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

export const loadPipeline = (file: string) => loadPipelineFile(file, builtinRegistry)

/** One worker thread per core: independent trainings then run side by side. */
export const defaultWorkers = Math.max(1, availableParallelism())
