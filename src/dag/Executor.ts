/**
 * Runs a resolved pipeline: every node in dependency order, independent nodes concurrently (bounded),
 * each result looked up by its cache key first and stored after it is computed. A node whose key is
 * already being computed (by this run or a concurrent one, as in a sweep) is awaited, not recomputed.
 * Every node, metric and per-example row lands in the results store; a failed node stops only what
 * depends on it, and everything already computed stays cached. Interrupting a run (Ctrl-C) marks it
 * interrupted; the next run resumes from the cache. Across processes sharing a store, a key is claimed
 * (cache/Claims.ts) before it is computed: a second process waits for the first and reads its result. When a WorkerPool is provided, nodes of `heavy`
 * kinds are computed on it (off the main thread); without one, every node runs inline.
 */
import { hostname } from "node:os"
import { dirname } from "node:path"
import { Cause, Clock, Context, Deferred, Effect, Exit, Layer, Option, Random, Schema } from "effect"
import type { BackendError } from "../backend/TfBackend.js"
import { TfBackend } from "../backend/TfBackend.js"
import { ArtifactStore } from "../cache/ArtifactStore.js"
import { acquireClaim } from "../cache/Claims.js"
import { decodeArtifact, encodeArtifact } from "../cache/Codec.js"
import type { Artifact } from "../domain/Artifact.js"
import type { CacheKey as CacheKeyType, RunId } from "../domain/Ids.js"
import type { ExampleRow, GenerationRow, MetricRow } from "../nodes/NodeKind.js"
import { NodeError } from "../nodes/NodeKind.js"
import type { Pipeline, ResolvedNode } from "../pipeline/Pipeline.js"
import { ResultsStore } from "../store/ResultsStore.js"
import { downstreamOf } from "./Graph.js"
import { pipelineCacheKeys } from "./PipelineKeys.js"

export { nodeCacheKey, pipelineCacheKeys } from "./PipelineKeys.js"
import type { NodeStatus } from "./Reporter.js"
import { Reporter } from "./Reporter.js"
import { WorkerPool } from "./WorkerPool.js"

/** What the artifact store holds for one node: its outputs and what it recorded while computing them. */
export interface StoredResult {
  readonly node: string
  readonly kind: string
  readonly version: number
  readonly outputs: Readonly<Record<string, Artifact>>
  readonly metrics: ReadonlyArray<MetricRow>
  readonly examples: ReadonlyArray<ExampleRow>
  /** Absent in results stored before samples were recorded. */
  readonly generations?: ReadonlyArray<GenerationRow>
  readonly info: Readonly<Record<string, unknown>>
}

export interface RunOptions {
  /** Recompute every node, ignoring the cache. */
  readonly force?: boolean
  /** Recompute these nodes and everything downstream of them. */
  readonly rerun?: ReadonlyArray<string>
  /** Nodes computed at the same time (default 2). */
  readonly concurrency?: number
  readonly runId?: string
  readonly sweepId?: string
  readonly trial?: number
}

export interface NodeOutcome {
  readonly id: string
  readonly kind: string
  readonly key: string
  readonly status: NodeStatus
  readonly durationMs: number
  readonly error?: string
  /**
   * The node's result. Absent for a failed or skipped node, and for a cache hit with bulk outputs that
   * no node of this run needed (see `readsOnDemand`; `ArtifactStore.get(key)` reads it).
   */
  readonly result?: StoredResult
}

/**
 * Whether a cache hit of this node is left unread unless a node that computes needs its outputs: so it
 * is for every kind with outputs other than Metrics (datasets, models, soft labels, features), and a
 * fully cached run of the default pipeline reads neither the 31 MB dataset nor the teacher's weights.
 * What the run records about such a node (info, metrics) is copied from the results store's earlier
 * record of the same cache key. Metrics are always read: they are the run's results.
 */
export const readsOnDemand = (node: ResolvedNode): boolean =>
  Object.values(node.kind.outputs as Record<string, string>).some((type) => type !== "Metrics")

export interface RunResult {
  readonly runId: RunId
  readonly pipeline: string
  readonly status: "succeeded" | "failed"
  /** In the pipeline's topological order. */
  readonly nodes: ReadonlyArray<NodeOutcome>
}

/** A run in which some node failed; names each failure. Nodes that succeeded stay cached. */
export class RunFailedError extends Schema.TaggedError<RunFailedError>()("RunFailedError", {
  runId: Schema.String,
  failures: Schema.Array(Schema.Struct({ node: Schema.String, message: Schema.String }))
}) {
  override get message(): string {
    return `run ${this.runId} failed:\n${this.failures.map((f) => `  node '${f.node}': ${f.message}`).join("\n")}\nNodes that finished are cached; fix the cause and run again to resume.`
  }
}

/** Marks a node that did not run because an input failed. */
class UpstreamFailed {
  readonly _tag = "UpstreamFailed"
  constructor(readonly node: string) {}
}

/** A finished node's result, read from the artifact store on first use when it was not read yet. */
type Finished = { readonly result: Effect.Effect<StoredResult, NodeError> }

const makeRunId = Effect.gen(function* () {
  const now = new Date(yield* Clock.currentTimeMillis)
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)
  const suffix = (yield* Random.nextIntBetween(0, 0xffff)).toString(16).padStart(4, "0")
  return `${stamp}-${suffix}`
})

const errorMessage = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value as { message?: unknown }
    return typeof e?.message === "string" ? e.message : String(failure.value)
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) {
    const d = defect.value
    return `unexpected error: ${d instanceof Error ? d.message : String(d)}`
  }
  return Cause.pretty(cause)
}

export class Executor extends Context.Tag("distillery/Executor")<
  Executor,
  {
    readonly run: (pipeline: Pipeline, options?: RunOptions) => Effect.Effect<RunResult, RunFailedError | BackendError>
  }
>() {
  static readonly layer = Layer.effect(
    Executor,
    Effect.gen(function* () {
      const artifacts = yield* ArtifactStore
      const results = yield* ResultsStore
      const reporter = yield* Reporter
      const backend = yield* TfBackend
      // Optional: without a pool every node runs on this thread.
      const pool = yield* Effect.serviceOption(WorkerPool)
      // Keys being computed right now, shared by every run in this process (sweep trials dedupe here).
      const inflight = new Map<string, Deferred.Deferred<StoredResult, NodeError>>()

      /**
       * The cached result of `key`. A miss when there is none, and also when its bytes cannot be used:
       * the store quarantines bytes that fail their sha256 check, and bytes that do not decode are
       * quarantined here; the node is then recomputed and the entry rewritten.
       */
      const lookup = (key: CacheKeyType) =>
        artifacts.get(key).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.succeed(Option.none<StoredResult>()),
            onSome: (bytes) =>
              Effect.try(() => Option.some(decodeArtifact(bytes) as StoredResult)).pipe(
                Effect.catchAll((e) =>
                  artifacts.quarantine(key, `does not decode: ${e.error instanceof Error ? e.error.message : String(e.error)}`).pipe(
                    Effect.as(Option.none<StoredResult>())
                  )
                )
              )
          })),
          Effect.catchAll(() => Effect.succeed(Option.none<StoredResult>()))
        )

      /** The backend's name, readied on first use (a run readies it before its first node when anything computes). */
      const backendFor = (node: ResolvedNode) =>
        backend.use.pipe(Effect.mapError((e) => new NodeError({ node: node.id, kind: node.kind.kind, message: e.message, cause: e })))

      const computeInline = (node: ResolvedNode, inputs: Record<string, Artifact>) =>
        Effect.gen(function* () {
          const backendName = yield* backendFor(node)
          const metrics: Array<MetricRow> = []
          const examples: Array<ExampleRow> = []
          const generations: Array<GenerationRow> = []
          const info: Record<string, unknown> = {}
          const outputs = yield* node.kind.run({
            nodeId: node.id,
            kind: node.kind.kind,
            params: node.params,
            inputs,
            inputNodes: Object.fromEntries(Object.entries(node.inputs).map(([port, ref]) => [port, ref.node])),
            seed: node.seed,
            backend: backendName,
            progress: (p) => reporter.progress(node.id, p),
            metric: (row) => metrics.push(row),
            examples: (rows) => {
              for (const row of rows) examples.push(row)
            },
            generations: (rows) => {
              for (const row of rows) generations.push(row)
            },
            info: (facts) => Object.assign(info, facts)
          })
          const result: StoredResult = {
            node: node.id,
            kind: node.kind.kind,
            version: node.kind.version,
            outputs: outputs as Record<string, Artifact>,
            metrics,
            examples,
            generations,
            info
          }
          return result
        }).pipe(
          Effect.catchAllDefect((defect) =>
            Effect.fail(
              new NodeError({
                node: node.id,
                kind: node.kind.kind,
                message: defect instanceof Error ? defect.message : String(defect),
                cause: defect
              })
            )
          )
        )

      /** A heavy node on the worker pool (when there is one and it knows the kind), else inline. */
      const compute = (pipeline: Pipeline, node: ResolvedNode, inputs: Record<string, Artifact>) => {
        if (Option.isNone(pool) || node.kind.heavy !== true) return computeInline(node, inputs)
        const onPool = pool.value
        return backendFor(node).pipe(Effect.flatMap((backendName) => onPool
          .run(
            {
              kind: node.kind.kind,
              version: node.kind.version,
              nodeId: node.id,
              params: node.encodedParams,
              inputs,
              inputNodes: Object.fromEntries(Object.entries(node.inputs).map(([port, ref]) => [port, ref.node])),
              seed: node.seed,
              backend: backendName,
              plugins: pipeline.doc.plugins ?? [],
              baseDir: dirname(pipeline.source)
            },
            (p) => reporter.progress(node.id, p)
          )
          .pipe(
            Effect.map((r): StoredResult => ({ node: node.id, kind: node.kind.kind, version: node.kind.version, ...r })),
            // A kind only this process knows (defined in a TypeScript pipeline) cannot run on a worker.
            Effect.catchTag("KindNotFoundError", () => computeInline(node, inputs))
          )))
      }

      /**
       * The node's result: from the cache, from a computation in flight, or computed now and stored.
       * A key is claimed in `inflight` before the cache is read, in one synchronous step, so that of
       * any number of concurrent requests for a key exactly one computes it and the others wait; the
       * owner stores the result before releasing the claim, so a later claimer finds it cached.
       */
      const obtain = (
        pipeline: Pipeline,
        node: ResolvedNode,
        key: CacheKeyType,
        inputs: Effect.Effect<Record<string, Artifact>, NodeError>,
        recompute: boolean
      ): Effect.Effect<{ readonly status: "cached" | "executed"; readonly result: StoredResult }, NodeError> =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            const mine = yield* Deferred.make<StoredResult, NodeError>()
            const running = inflight.get(key)
            if (running !== undefined) {
              const awaited = yield* Effect.exit(restore(Deferred.await(running)))
              // The owner was interrupted (its run alone was stopped; the claim is settled): this request
              // claims the key anew. When this fiber is the one interrupted, the claim is still pending.
              if (Exit.isFailure(awaited) && Cause.isInterruptedOnly(awaited.cause) && (yield* Deferred.isDone(running))) {
                return yield* obtain(pipeline, node, key, inputs, recompute)
              }
              return { status: "cached" as const, result: yield* awaited }
            }
            inflight.set(key, mine)
            const owned = Effect.gen(function* () {
              if (!recompute) {
                const hit = yield* lookup(key)
                if (Option.isSome(hit)) return { status: "cached" as const, result: hit.value }
              }
              // Another process on this store may be computing the key: wait for its claim, then read
              // what it stored. Only the waits are interruptible, so a claim taken is always released.
              const claim = acquireClaim(artifacts.claims, key, node.id, (holder) =>
                Effect.sync(() =>
                  reporter.log(`waiting for ${node.id}, computed by pid ${holder.pid}${holder.hostname === hostname() ? "" : ` on ${holder.hostname}`}`)
                )).pipe(
                  Effect.interruptible,
                  Effect.mapError((e) => new NodeError({ node: node.id, kind: node.kind.kind, message: e.message, cause: e }))
                )
              return yield* Effect.acquireUseRelease(claim, () =>
                Effect.gen(function* () {
                  if (!recompute) {
                    const hit = yield* lookup(key)
                    if (Option.isSome(hit)) return { status: "cached" as const, result: hit.value }
                  }
                  const result = yield* Effect.flatMap(inputs, (read) => compute(pipeline, node, read)).pipe(
                    Effect.tap((result) =>
                      artifacts.put(key, encodeArtifact(result), { node: node.id, kind: node.kind.kind }).pipe(
                        Effect.mapError(
                          (e) => new NodeError({ node: node.id, kind: node.kind.kind, message: `could not store the result: ${e.message}`, cause: e })
                        )
                      )
                    )
                  )
                  return { status: "executed" as const, result }
                }), ({ release }) => release)
            })
            // Whatever happens (success, failure, interruption), waiters are released and the key freed.
            return yield* restore(owned).pipe(
              Effect.onExit((exit) =>
                Effect.suspend(() => {
                  inflight.delete(key)
                  return Deferred.done(mine, Exit.map(exit, (o) => o.result))
                })
              )
            )
          })
        )

      const run = (pipeline: Pipeline, options: RunOptions = {}) =>
        Effect.gen(function* () {
          const runId = (options.runId ?? (yield* makeRunId)) as RunId
          const concurrency = Math.max(1, options.concurrency ?? 2)
          const deps = new Map(pipeline.nodes.map((n) => [n.id, Object.values(n.inputs).map((r) => r.node)] as const))
          const rerun = downstreamOf(deps, options.rerun ?? [])
          const done = new Map(
            yield* Effect.forEach(pipeline.nodes, (n) =>
              Deferred.make<Finished, UpstreamFailed>().pipe(Effect.map((d) => [n.id, d] as const))
            )
          )
          const outcomes = new Map<string, NodeOutcome>()
          const semaphore = yield* Effect.makeSemaphore(concurrency)
          // The backend is readied (tfjs loaded) only when some node will compute; a run whose every node
          // is a cache hit records backend "none".
          const keys = pipelineCacheKeys(pipeline)
          const hits = new Map(
            yield* Effect.forEach(pipeline.nodes, (n) =>
              artifacts.has(keys.get(n.id)!).pipe(Effect.orElseSucceed(() => false), Effect.map((hit) => [n.id, hit] as const))
            )
          )
          const willCompute = (n: ResolvedNode) => options.force === true || rerun.has(n.id) || !hits.get(n.id)
          // Nodes whose outputs a computing node reads: their results are read even when large.
          const needed = new Set(pipeline.nodes.filter(willCompute).flatMap((n) => Object.values(n.inputs).map((ref) => ref.node)))
          const backendName = pipeline.nodes.some(willCompute) ? yield* backend.use : "none"

          yield* results
            .startRun({
              runId,
              pipeline: pipeline.name,
              pipelinePath: pipeline.source,
              backend: backendName,
              ...(options.sweepId !== undefined ? { sweepId: options.sweepId } : {}),
              ...(options.trial !== undefined ? { trial: options.trial } : {})
            })
            .pipe(Effect.orDie)

          const nodeRecord = (node: ResolvedNode, key: CacheKeyType, status: "executed" | "cached" | "failed", startedAt: number, ms: number, info: Readonly<Record<string, unknown>>) => ({
                runId,
                nodeId: node.id,
                kind: node.kind.kind,
                kindVersion: node.kind.version,
                cacheKey: key,
                params: node.encodedParams,
                inputs: Object.fromEntries(Object.entries(node.inputs).map(([p, r]) => [p, `${r.node}.${r.port}`])),
                status,
                durationMs: ms,
                info,
                startedAt,
                seed: node.seed
              })

          const record = (node: ResolvedNode, key: CacheKeyType, status: "executed" | "cached" | "failed", startedAt: number, ms: number, result?: StoredResult) =>
            (result === undefined
              ? results.recordNode(nodeRecord(node, key, status, startedAt, ms, {}))
              : results.recordResult(nodeRecord(node, key, status, startedAt, ms, result.info), {
                metrics: result.metrics,
                examples: result.examples,
                generations: result.generations ?? []
              })).pipe(Effect.orDie)

          const runNode = (node: ResolvedNode) =>
            Effect.gen(function* () {
              const upstream: Array<readonly [string, string, Finished]> = []
              for (const [port, ref] of Object.entries(node.inputs)) upstream.push([port, ref.port, yield* Deferred.await(done.get(ref.node)!)])
              // Read only when this node computes.
              const inputs = Effect.map(
                Effect.forEach(upstream, ([port, output, got]) => Effect.map(got.result, (r) => [port, r.outputs[output]!] as const)),
                (entries) => Object.fromEntries(entries) as Record<string, Artifact>
              )
              // Keys depend only on params and upstream keys: the ones computed before the run started.
              const key = keys.get(node.id)!
              const recompute = options.force === true || rerun.has(node.id)
              if (!recompute && readsOnDemand(node) && !needed.has(node.id) && hits.get(node.id) === true && !inflight.has(key)) {
                const startedAt = yield* Clock.currentTimeMillis
                if (yield* results.recordCachedNode(nodeRecord(node, key, "cached", startedAt, 0, {})).pipe(Effect.orDie)) {
                  reporter.started(node.id, node.kind.kind)
                  reporter.finished(node.id, "cached", 0)
                  outcomes.set(node.id, { id: node.id, kind: node.kind.kind, key, status: "cached", durationMs: 0 })
                  // Read when a node that computes needs it after all (its own cached result turned out
                  // unusable); should these bytes be unusable too, the node is computed then.
                  const read = yield* Effect.cached(
                    lookup(key).pipe(
                      Effect.flatMap(Option.match({
                        onNone: () => Effect.map(obtain(pipeline, node, key, inputs, true), (o) => o.result),
                        onSome: Effect.succeed
                      }))
                    )
                  )
                  return yield* Deferred.succeed(done.get(node.id)!, { result: read })
                }
              }
              const { exit, startedAt, ms } = yield* semaphore.withPermits(1)(
                Effect.gen(function* () {
                  const startedAt = yield* Clock.currentTimeMillis
                  reporter.started(node.id, node.kind.kind)
                  const exit = yield* Effect.exit(obtain(pipeline, node, key, inputs, recompute))
                  return { exit, startedAt, ms: (yield* Clock.currentTimeMillis) - startedAt }
                })
              )
              if (Exit.isSuccess(exit)) {
                const { status, result } = exit.value
                reporter.finished(node.id, status, ms)
                yield* record(node, key, status, startedAt, ms, result)
                outcomes.set(node.id, { id: node.id, kind: node.kind.kind, key, status, durationMs: ms, result })
                yield* Deferred.succeed(done.get(node.id)!, { result: Effect.succeed(result) })
              } else {
                if (Cause.isInterruptedOnly(exit.cause)) return yield* Effect.interrupt
                const message = errorMessage(exit.cause)
                reporter.finished(node.id, "failed", ms, message)
                yield* record(node, key, "failed", startedAt, ms)
                outcomes.set(node.id, { id: node.id, kind: node.kind.kind, key, status: "failed", durationMs: ms, error: message })
                yield* Deferred.fail(done.get(node.id)!, new UpstreamFailed(node.id))
              }
            }).pipe(
              Effect.catchAll((upstreamFailure: UpstreamFailed) =>
                Effect.gen(function* () {
                  reporter.finished(node.id, "skipped", 0, `input '${upstreamFailure.node}' failed`)
                  outcomes.set(node.id, {
                    id: node.id,
                    kind: node.kind.kind,
                    key: "",
                    status: "skipped",
                    durationMs: 0,
                    error: `not run: upstream node '${upstreamFailure.node}' failed`
                  })
                  yield* Deferred.fail(done.get(node.id)!, upstreamFailure)
                })
              )
            )

          const finish = (status: "succeeded" | "failed" | "interrupted", error?: string) =>
            results.finishRun(runId, status, error).pipe(Effect.orDie)

          yield* Effect.forEach(pipeline.nodes, runNode, { concurrency: "unbounded", discard: true }).pipe(
            Effect.onInterrupt(() => finish("interrupted"))
          )

          const nodes = pipeline.nodes.map((n) => outcomes.get(n.id)!)
          const failures = nodes.filter((n) => n.status === "failed").map((n) => ({ node: n.id, message: n.error ?? "failed" }))
          if (failures.length > 0) {
            yield* finish("failed", failures.map((f) => `${f.node}: ${f.message}`).join("; "))
            return yield* new RunFailedError({ runId, failures })
          }
          yield* finish("succeeded")
          return { runId, pipeline: pipeline.name, status: "succeeded" as const, nodes }
        })

      return { run }
    })
  )
}
