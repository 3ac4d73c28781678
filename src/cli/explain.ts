/**
 * `distillery explain <pipeline> <node>`: whether the node will run or hit the cache and, when it will
 * run, what in its cache key changed since the last recorded run of the same node id: params (dotted
 * paths, before → after), the kind's version, the seed, and which upstream node's result changed.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option, Schema } from "effect"
import { ArtifactStore } from "../cache/ArtifactStore.js"
import * as CacheKey from "../cache/CacheKey.js"
import { pipelineCacheKeys } from "../dag/PipelineKeys.js"
import { choices, didYouMean } from "../domain/Suggest.js"
import type { Pipeline } from "../pipeline/Pipeline.js"
import { parseRef } from "../pipeline/Validate.js"
import * as ReadModel from "../store/ReadModel.js"
import { ResultsStore } from "../store/ResultsStore.js"
import { loadPipeline, loadSweep, storeOption } from "./shared.js"

export class UnknownNodeError extends Schema.TaggedError<UnknownNodeError>()("UnknownNodeError", {
  node: Schema.String,
  message: Schema.String
}) {}

export interface Explanation {
  readonly node: string
  readonly key: string
  readonly verdict: "cached" | "run"
  /** One sentence: why. */
  readonly reason: string
  /** What changed since the last run, one line each. */
  readonly changes: ReadonlyArray<string>
}

const short = (key: string | undefined) => (key === undefined || key === "undefined" ? "none" : `${key.slice(0, 12)}…`)

const show = (v: unknown): string => (v === undefined ? "(absent)" : JSON.stringify(v))

/** Why `nodeId` of `pipeline` will run or be served from the cache. */
export const explainNode = (pipeline: Pipeline, nodeId: string) =>
  Effect.gen(function* () {
    const node = pipeline.nodes.find((n) => n.id === nodeId)
    if (node === undefined) {
      const ids = pipeline.nodes.map((n) => n.id)
      return yield* new UnknownNodeError({
        node: nodeId,
        message: `pipeline '${pipeline.name}' has no node '${nodeId}'${didYouMean(nodeId, ids)}; its nodes are: ${choices(ids)}`
      })
    }
    const artifacts = yield* ArtifactStore
    const results = yield* ResultsStore
    const keys = pipelineCacheKeys(pipeline)
    const key = keys.get(nodeId)!
    const cached = yield* artifacts.has(key).pipe(Effect.orElseSucceed(() => false))
    const last = yield* results.lastNodeRecord(nodeId, pipeline.name).pipe(Effect.orElseSucceed(() => Option.none()))
    const base = { node: nodeId, key }
    if (cached) {
      return {
        ...base,
        verdict: "cached" as const,
        reason: `'${nodeId}' will hit the cache (key ${short(key)})${Option.isSome(last) && last.value.cacheKey === key ? `, as in run ${last.value.runId}` : ""}`,
        changes: []
      }
    }
    if (Option.isNone(last)) {
      return { ...base, verdict: "run" as const, reason: `'${nodeId}' will run: no recorded run of pipeline '${pipeline.name}' has computed it`, changes: [] }
    }
    const previous = last.value
    if (previous.cacheKey === key) {
      return {
        ...base,
        verdict: "run" as const,
        reason: previous.status === "failed"
          ? `'${nodeId}' will run: its last run (${previous.runId}) failed with this same key`
          : `'${nodeId}' will run: its key is unchanged since run ${previous.runId}, but the result is no longer in the store (removed by gc?)`,
        changes: []
      }
    }
    // The upstream keys of the previous run, to compare input by input.
    const upstream = yield* ReadModel.nodes([previous.runId]).pipe(Effect.orElseSucceed(() => []))
    const previousKeys = new Map(upstream.map((n) => [n.nodeId, n.cacheKey as string] as const))
    const recordedInputs = (previous.inputs ?? {}) as Record<string, string>
    const beforeInputs = Object.fromEntries(
      Object.entries(recordedInputs).map(([port, ref]) => {
        const { node: up, port: out } = parseRef(ref)
        return [port, `${previousKeys.get(up)}#${out ?? port}`]
      })
    )
    const afterInputs = Object.fromEntries(
      Object.entries(node.inputs).map(([port, ref]) => [port, `${keys.get(ref.node)}#${ref.port}`])
    )
    const diffs = CacheKey.diffKeyParts(
      { kind: previous.kind, version: previous.kindVersion, params: previous.params, inputs: beforeInputs, seed: previous.seed },
      {
        kind: node.kind.kind,
        version: node.kind.version,
        params: node.encodedParams,
        inputs: afterInputs,
        // Rows recorded before seeds were have none: do not report a change that cannot be known.
        seed: previous.seed === undefined ? undefined : node.seed
      }
    )
    const changes: Array<string> = []
    for (const d of diffs) {
      switch (d.field) {
        case "params":
          changes.push(`${d.path}: ${show(d.before)} → ${show(d.after)}`)
          break
        case "version":
          changes.push(`kind version: ${show(d.before)} → ${show(d.after)} (the ${node.kind.kind} implementation changed)`)
          break
        case "kind":
          changes.push(`kind: ${show(d.before)} → ${show(d.after)}`)
          break
        case "seed":
          changes.push(`seed: ${show(d.before)} → ${show(d.after)}`)
          break
        case "inputs": {
          const port = d.path.slice("inputs.".length)
          const now = node.inputs[port]
          const was = recordedInputs[port]
          if (now === undefined) {
            changes.push(`input '${port}': was ${was}, now not connected`)
          } else if (was === undefined) {
            changes.push(`input '${port}': newly connected to ${now.node}.${now.port}`)
          } else if (was !== `${now.node}.${now.port}`) {
            changes.push(`input '${port}': was ${was}, now ${now.node}.${now.port}`)
          } else {
            const upKey = keys.get(now.node)!
            const upCached = yield* artifacts.has(upKey).pipe(Effect.orElseSucceed(() => false))
            changes.push(
              `input '${port}': upstream '${now.node}' changed (key ${short(previousKeys.get(now.node))} → ${short(upKey)})` +
                (upCached ? "" : `; it will run too: distillery explain ${pipeline.source} ${now.node}`)
            )
          }
          break
        }
      }
    }
    if (changes.length === 0) {
      changes.push("no recorded part differs: what changed is not in the results store (e.g. a data file's contents)")
    }
    return {
      ...base,
      verdict: "run" as const,
      reason: `'${nodeId}' will run: its key changed since run ${previous.runId} (${short(previous.cacheKey)} → ${short(key)}):`,
      changes
    }
  })

export const formatExplanation = (e: Explanation): string => [e.reason, ...e.changes.map((c) => `  ${c}`)].join("\n")

export const explain = Command.make(
  "explain",
  {
    pipeline: Args.text({ name: "pipeline" }).pipe(Args.withDescription("the pipeline YAML file")),
    node: Args.text({ name: "node" }).pipe(Args.withDescription("the node id")),
    trial: Options.integer("trial").pipe(
      Options.withDescription("for a pipeline with a sweep: explain the node in this trial (0-based)"),
      Options.optional
    ),
    store: storeOption
  },
  (o) =>
    Effect.gen(function* () {
      const pipeline = Option.isSome(o.trial)
        ? yield* loadSweep(o.pipeline).pipe(
            Effect.flatMap((s) => {
              const trial = s.trials[o.trial.pipe(Option.getOrThrow)]
              return trial === undefined
                ? Effect.fail(new UnknownNodeError({ node: o.node, message: `the sweep has trials 0 to ${s.trials.length - 1}` }))
                : Effect.succeed(trial.pipeline)
            })
          )
        : yield* loadPipeline(o.pipeline)
      const explanation = yield* explainNode(pipeline, o.node)
      yield* Console.log(formatExplanation(explanation))
    })
).pipe(Command.withDescription("Say whether a node will run or hit the cache, and what changed in its key"))
