/**
 * `distillery export-model <run> <node> --format gguf [--f16] [--out file.gguf]`: writes the language
 * model a run's node produced as a file other runtimes load (llama.cpp, ollama, LM Studio). Also
 * `loadLanguageModel`, which finds that model for `serve` too: the run through `ReadModel`, the node's
 * cache key in the run's `nodes` rows, the artifact in the cache.
 */
import { statSync } from "node:fs"
import { resolve } from "node:path"
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option, Schema } from "effect"
import { ArtifactStore } from "../cache/ArtifactStore.js"
import type { Artifact, LanguageModel } from "../domain/Artifact.js"
import { choices, didYouMean } from "../domain/Suggest.js"
import * as ReadModel from "../store/ReadModel.js"
import { UnknownNodeError } from "./explain.js"
import { storeOption } from "./shared.js"

/** The node's outputs hold no LanguageModel; the message says what they hold. */
export class NotALanguageModelError extends Schema.TaggedError<NotALanguageModelError>()("NotALanguageModelError", {
  node: Schema.String,
  message: Schema.String
}) {}

/** The run recorded the node, but its result is not in the cache (failed, removed by gc, quarantined). */
export class ArtifactMissingError extends Schema.TaggedError<ArtifactMissingError>()("ArtifactMissingError", {
  node: Schema.String,
  key: Schema.String,
  message: Schema.String
}) {}

/** The model file could not be written. */
export class ExportModelError extends Schema.TaggedError<ExportModelError>()("ExportModelError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export const modelFormats = ["gguf"] as const
export type ModelFormat = (typeof modelFormats)[number]

/** A run's language model and where it came from. */
export interface FoundModel {
  readonly runId: string
  readonly nodeId: string
  readonly pipeline: string
  readonly cacheKey: string
  readonly model: LanguageModel
}

const short = (key: string) => `${key.slice(0, 12)}…`

/**
 * The LanguageModel that node `nodeId` of run `run` (an id, a unique prefix, or `last`) produced.
 * Fails naming the recent runs, the run's nodes, what the node produced instead, or how to recompute it.
 */
export const loadLanguageModel = (run: string, nodeId: string) =>
  Effect.gen(function*() {
    const target = yield* ReadModel.resolveTarget(run)
    if (target.kind === "sweep") {
      const trials = (yield* ReadModel.sweepRuns(target.id)).map((r) => r.runId)
      return yield* new ReadModel.UnknownRunError({
        id: run,
        message: `'${run}' is a sweep; give one of its trial runs: ${choices(trials)}`
      })
    }
    const record = Option.getOrUndefined(yield* ReadModel.run(target.id))
    const pipeline = record?.pipeline ?? "?"
    const nodes = yield* ReadModel.nodes([target.id])
    const node = nodes.find((n) => n.nodeId === nodeId)
    if (node === undefined) {
      const ids = nodes.map((n) => n.nodeId)
      return yield* new UnknownNodeError({
        node: nodeId,
        message: `run ${target.id} (${pipeline}) has no node '${nodeId}'${didYouMean(nodeId, ids)}; its nodes are: ${choices(ids)}`
      })
    }
    const recompute = `recompute it with \`distillery run ${record?.pipelinePath || "<pipeline>.yaml"}\``
    if (node.status === "failed") {
      return yield* new ArtifactMissingError({
        node: nodeId,
        key: node.cacheKey,
        message: `node '${nodeId}' failed in run ${target.id}: it has no model; fix it and ${recompute}`
      })
    }
    const store = yield* ArtifactStore
    const bytes = yield* store.get(node.cacheKey)
    if (Option.isNone(bytes)) {
      return yield* new ArtifactMissingError({
        node: nodeId,
        key: node.cacheKey,
        message: `the result of node '${nodeId}' (${node.kind}, key ${short(node.cacheKey)}) is not in the cache ` +
          `${store.root ?? ""} (removed by \`distillery gc\`, or quarantined); ${recompute}`
      })
    }
    const { decodeArtifact } = yield* Effect.promise(() => import("../cache/Codec.js"))
    const stored = yield* Effect.try({
      try: () => decodeArtifact(bytes.value) as { readonly outputs?: Readonly<Record<string, Artifact>> },
      catch: (cause) =>
        new ArtifactMissingError({
          node: nodeId,
          key: node.cacheKey,
          message: `the cached result of node '${nodeId}' (key ${short(node.cacheKey)}) does not decode (${String(cause)}); ` +
            `\`distillery verify --repair\` quarantines it, then ${recompute}`
        })
    })
    const outputs = Object.entries(stored.outputs ?? {})
    const model = outputs.find(([, a]) => a._tag === "LanguageModel")?.[1] as LanguageModel | undefined
    if (model === undefined) {
      const held = outputs.map(([port, a]) => `${a._tag} (port '${port}')`).join(", ") || "no outputs"
      const lms = nodes.filter((n) => n.kind === "lm_train").map((n) => n.nodeId)
      return yield* new NotALanguageModelError({
        node: nodeId,
        message: `node '${nodeId}' (${node.kind}) produced ${held}, not a LanguageModel` +
          (lms.length > 0 ? `; the run's language models: ${choices(lms)}` : "; the run trained no language model (kind lm_train)")
      })
    }
    return { runId: target.id, nodeId, pipeline, cacheKey: node.cacheKey, model } satisfies FoundModel
  })

/** Writes the model as GGUF at `file`; returns the file's size in bytes. */
export const writeModelFile = (found: FoundModel, file: string, options: { readonly format: ModelFormat; readonly f16: boolean }) =>
  Effect.gen(function*() {
    const [{ writeGguf }, { decodeTransformerSpec }] = yield* Effect.promise(() =>
      Promise.all([import("../formats/Gguf.js"), import("../models/TransformerSpec.js")])
    )
    const { model } = found
    yield* Effect.tryPromise({
      try: () =>
        writeGguf({ spec: decodeTransformerSpec(model.spec), weights: model.weights }, model.tokenizer, {
          file,
          type: options.f16 ? "f16" : "f32",
          name: found.nodeId
        }),
      catch: (cause) =>
        new ExportModelError({
          path: file,
          message: `could not write ${file}: ${cause instanceof Error ? cause.message : String(cause)}`,
          cause
        })
    })
    return statSync(file).size
  })

export const exportModel = Command.make(
  "export-model",
  {
    run: Args.text({ name: "run" }).pipe(Args.withDescription("a run id (or a unique prefix); `last` for the newest")),
    node: Args.text({ name: "node" }).pipe(Args.withDescription("the node whose language model to write (an lm_train node)")),
    format: Options.choice("format", modelFormats).pipe(
      Options.withDescription("file format: gguf (LLaMA architecture, for llama.cpp and the tools built on it)"),
      Options.withDefault("gguf" as const)
    ),
    f16: Options.boolean("f16").pipe(Options.withDescription("store the matrices as 16-bit floats (half the size); norms stay 32-bit")),
    out: Options.file("out").pipe(Options.withDescription("the file to write (default <node>.gguf in the current directory)"), Options.optional),
    store: storeOption
  },
  (o) =>
    Effect.gen(function*() {
      const found = yield* loadLanguageModel(o.run, o.node)
      const file = resolve(Option.getOrElse(o.out, () => `${o.node}.${o.format}`))
      const size = yield* writeModelFile(found, file, { format: o.format, f16: o.f16 })
      yield* Console.log(
        `wrote ${file} (${o.format}, ${o.f16 ? "F16" : "F32"}, ${(size / 1024).toFixed(1)} KiB): node '${found.nodeId}' of run ${found.runId} (${found.pipeline})`
      )
    })
).pipe(Command.withDescription("Write a run's language model (an lm_train node's result) as a GGUF file for llama.cpp"))
