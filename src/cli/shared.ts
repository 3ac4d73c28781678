/**
 * Options and helpers shared by the CLI verbs: where the store lives, which backend to use, how to
 * print a table, and loading a pipeline file against the built-in kinds.
 */
import { Options } from "@effect/cli"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { backendNames } from "../backend/Backend.js"
import { builtinRegistry } from "../nodes/builtins.js"
import { loadPipelineFile } from "../pipeline/Yaml.js"

export const storeOption = Options.directory("store").pipe(
  Options.withDescription("the store directory: cached artifacts and results.duckdb"),
  Options.withDefault(".distillery")
)

export const backendOption = Options.choice("backend", backendNames).pipe(
  Options.withDescription("the tfjs backend: wasm (default), cpu, tensorflow (needs @tensorflow/tfjs-node), webgpu, auto"),
  Options.withDefault("wasm" as const)
)

export const formatOption = Options.choice("format", ["table", "csv", "json"] as const).pipe(
  Options.withDescription("output format"),
  Options.withDefault("table" as const)
)

export const resultsFile = (store: string): string => join(store, "results.duckdb")

export const loadPipeline = (file: string) => loadPipelineFile(file, builtinRegistry)

/** One worker thread per core: independent trainings then run side by side. */
export const defaultWorkers = Math.max(1, availableParallelism())
