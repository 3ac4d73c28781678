/**
 * Runs a node kind's computation off the main thread, so that independent training runs use every
 * core instead of taking turns on one. The executor keeps the DAG, the cache and the dedup of equal
 * keys; for kinds marked `heavy` it hands the pool a `KindJob` (kind name and version, encoded params,
 * input artifacts, seed, plugin specifiers, backend) and gets back the outputs, metrics, examples and
 * info, with progress events on the way.
 *
 * `layer(size)` keeps up to `size` Node worker_threads, started on first use, each of which readies
 * the tfjs backend once and then runs jobs one at a time. Inputs and results cross as artifact bytes
 * (cache/Codec.ts) whose ArrayBuffers are transferred, not copied. Interrupting a job terminates its
 * worker (a fresh one replaces it on demand); a worker that crashes fails only its job. Releasing the
 * layer terminates every worker. `layerInline` runs the same jobs on the calling thread (tests,
 * `--workers 0`).
 */
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import { Context, Effect, Either, Layer, Schema } from "effect"
import { decodeArtifact, encodeArtifact } from "../cache/Codec.js"
import type { Artifact } from "../domain/Artifact.js"
import { builtinRegistry } from "../nodes/builtins.js"
import type { ExampleRow, GenerationRow, MetricRow, Progress } from "../nodes/NodeKind.js"
import { NodeError } from "../nodes/NodeKind.js"
import type { KindRegistry } from "../nodes/Registry.js"
import { withPlugins } from "../nodes/Registry.js"

/** Everything a worker needs to run one node: plain data only. */
export interface KindJob {
  readonly kind: string
  readonly version: number
  readonly nodeId: string
  /** The node's params in their encoded (JSON) form; the worker decodes them with the kind's Schema. */
  readonly params: unknown
  readonly inputs: Readonly<Record<string, Artifact>>
  readonly inputNodes: Readonly<Record<string, string>>
  readonly seed: number
  readonly backend: string
  /** The pipeline's plugin specifiers and the directory they resolve against. */
  readonly plugins: ReadonlyArray<string>
  readonly baseDir: string
}

/** What a node computed. */
export interface KindResult {
  readonly outputs: Readonly<Record<string, Artifact>>
  readonly metrics: ReadonlyArray<MetricRow>
  readonly examples: ReadonlyArray<ExampleRow>
  readonly generations: ReadonlyArray<GenerationRow>
  readonly info: Readonly<Record<string, unknown>>
}

/** The job's kind is not in the registry a worker builds (a kind defined only in a TS pipeline): run it inline. */
export class KindNotFoundError extends Schema.TaggedError<KindNotFoundError>()("KindNotFoundError", {
  kind: Schema.String,
  message: Schema.String
}) {}

export interface WorkerPoolService {
  /** How many workers at most; 0 for the inline pool. */
  readonly size: number
  readonly run: (
    job: KindJob,
    onProgress: (progress: Progress) => void
  ) => Effect.Effect<KindResult, NodeError | KindNotFoundError>
}

// ---------------------------------------------------------------------------------------------------
// Running a job (in a worker, or inline)

const registries = new Map<string, Promise<KindRegistry>>()

/** The built-in kinds plus the job's plugins, loaded once per (plugins, baseDir). */
const registryFor = (job: Pick<KindJob, "plugins" | "baseDir">): Promise<KindRegistry> => {
  if (job.plugins.length === 0) return Promise.resolve(builtinRegistry)
  const key = `${job.baseDir}\u0000${job.plugins.join("\u0000")}`
  let registry = registries.get(key)
  if (registry === undefined) {
    registry = Effect.runPromise(withPlugins(builtinRegistry, job.plugins, job.baseDir))
    registries.set(key, registry)
    registry.catch(() => registries.delete(key))
  }
  return registry
}

/** Runs a job on the current thread: looks the kind up, decodes the params, runs the kind. */
export const runJob = (job: KindJob, onProgress: (progress: Progress) => void): Effect.Effect<KindResult, NodeError | KindNotFoundError> =>
  Effect.gen(function* () {
    const registry = yield* Effect.tryPromise({
      try: () => registryFor(job),
      catch: (cause) => new NodeError({ node: job.nodeId, kind: job.kind, message: `could not load the pipeline's plugins: ${String(cause)}`, cause })
    })
    const kind = registry.kinds.get(job.kind)
    if (kind === undefined || kind.version !== job.version) {
      return yield* new KindNotFoundError({ kind: job.kind, message: `kind '${job.kind}' v${job.version} is not registered here` })
    }
    const params = Schema.decodeUnknownEither(kind.params)(job.params)
    if (Either.isLeft(params)) {
      return yield* new NodeError({ node: job.nodeId, kind: job.kind, message: `params do not decode: ${params.left.message}` })
    }
    const metrics: Array<MetricRow> = []
    const examples: Array<ExampleRow> = []
    const generations: Array<GenerationRow> = []
    const info: Record<string, unknown> = {}
    const outputs = yield* kind.run({
      nodeId: job.nodeId,
      kind: job.kind,
      params: params.right,
      inputs: job.inputs,
      inputNodes: job.inputNodes,
      seed: job.seed,
      backend: job.backend,
      progress: onProgress,
      metric: (row) => metrics.push(row),
      examples: (rows) => {
        for (const row of rows) examples.push(row)
      },
      generations: (rows) => {
        for (const row of rows) generations.push(row)
      },
      info: (facts) => Object.assign(info, facts)
    })
    return { outputs: outputs as Record<string, Artifact>, metrics, examples, generations, info }
  }).pipe(
    Effect.catchAllDefect((defect) =>
      Effect.fail(
        new NodeError({ node: job.nodeId, kind: job.kind, message: defect instanceof Error ? defect.message : String(defect), cause: defect })
      )
    )
  )

// ---------------------------------------------------------------------------------------------------
// Messages between the pool and a worker

export type ToWorker = {
  readonly type: "run"
  readonly id: number
  readonly job: Omit<KindJob, "inputs">
  /** `encodeArtifact(job.inputs)`; its buffer is transferred. */
  readonly inputs: Uint8Array
}

export type FromWorker =
  | { readonly type: "progress"; readonly id: number; readonly progress: Progress }
  | { readonly type: "done"; readonly id: number; readonly result: Uint8Array }
  | { readonly type: "failed"; readonly id: number; readonly message: string; readonly notFound?: boolean }

/** How a worker is started: under tsx when this module is TypeScript, plainly when it is built JS. */
const workerEntry = (): { readonly code: string; readonly eval: true } | { readonly url: URL; readonly eval: false } => {
  const here = import.meta.url
  if (!here.endsWith(".ts")) return { url: new URL("./worker.js", here), eval: false }
  // Node 20 does not apply `--import tsx` hooks to a worker's entry module, so the worker registers
  // tsx's ESM loader itself and then imports the TypeScript entry (from the CLI and under vitest).
  const tsxDir = createRequire(here).resolve("tsx/package.json").replace(/package\.json$/, "")
  const api = pathToFileURL(`${tsxDir}dist/esm/api/index.mjs`).href
  const entry = new URL("./worker.ts", here).href
  return {
    eval: true,
    code: `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}) })`
  }
}

interface Handle {
  readonly worker: Worker
  /** Set once the worker has exited or was terminated: it is never reused. */
  dead: boolean
}

const spawn = (backend: string): Handle => {
  const entry = workerEntry()
  const options = { workerData: { backend }, stdout: true, stderr: true, execArgv: [] as Array<string> }
  const worker = entry.eval ? new Worker(entry.code, { ...options, eval: true }) : new Worker(entry.url, options)
  // tfjs greets on stdout; keep the CLI's stdout for its tables and pass the worker's chatter to stderr.
  worker.stdout.pipe(process.stderr, { end: false })
  worker.stderr.pipe(process.stderr, { end: false })
  const handle: Handle = { worker, dead: false }
  worker.once("exit", () => {
    handle.dead = true
  })
  // An 'error' with no listener would take the main thread down; a job's own listener reports it.
  worker.on("error", () => {
    handle.dead = true
  })
  return handle
}

const makePool = (size: number) =>
  Effect.gen(function* () {
    const idle: Array<Handle> = []
    const live = yield* Effect.acquireRelease(
      Effect.sync(() => new Set<Handle>()),
      (live) => Effect.promise(() => Promise.all([...live].map((h) => h.worker.terminate().catch(() => 0))))
    )
    const slots = yield* Effect.makeSemaphore(size)
    let nextId = 0

    const discard = (handle: Handle) => {
      live.delete(handle)
      if (!handle.dead) {
        handle.dead = true
        void handle.worker.terminate().catch(() => 0)
      }
    }

    // Every job of a process names the same backend (the executor's), so any idle worker will do.
    const checkout = (backend: string): Handle => {
      for (let h = idle.pop(); h !== undefined; h = idle.pop()) if (!h.dead) return h
      const handle = spawn(backend)
      live.add(handle)
      return handle
    }

    const runOn = (handle: Handle, job: KindJob, onProgress: (progress: Progress) => void) =>
      Effect.async<KindResult, NodeError | KindNotFoundError>((resume) => {
        const id = nextId++
        const nodeError = (message: string, cause?: unknown) =>
          new NodeError({ node: job.nodeId, kind: job.kind, message, ...(cause !== undefined ? { cause } : {}) })
        const cleanup = () => {
          handle.worker.off("message", onMessage)
          handle.worker.off("error", onError)
          handle.worker.off("exit", onExit)
        }
        const onMessage = (message: FromWorker) => {
          if (message.id !== id) return
          switch (message.type) {
            case "progress":
              onProgress(message.progress)
              return
            case "done": {
              cleanup()
              idle.push(handle)
              try {
                resume(Effect.succeed(decodeArtifact(message.result) as KindResult))
              } catch (cause) {
                resume(Effect.fail(nodeError(`could not read the worker's result: ${String(cause)}`, cause)))
              }
              return
            }
            case "failed":
              cleanup()
              idle.push(handle)
              resume(Effect.fail(message.notFound === true ? new KindNotFoundError({ kind: job.kind, message: message.message }) : nodeError(message.message)))
              return
          }
        }
        const onError = (error: Error) => {
          cleanup()
          discard(handle)
          resume(Effect.fail(nodeError(`the worker crashed: ${error.message}`, error)))
        }
        const onExit = (code: number) => {
          cleanup()
          discard(handle)
          resume(Effect.fail(nodeError(`the worker exited (code ${code}) while computing the node`)))
        }
        handle.worker.on("message", onMessage)
        handle.worker.on("error", onError)
        handle.worker.on("exit", onExit)
        try {
          const { inputs, ...rest } = job
          const bytes = encodeArtifact(inputs)
          const message: ToWorker = { type: "run", id, job: rest, inputs: bytes }
          handle.worker.postMessage(message, [bytes.buffer as ArrayBuffer])
        } catch (cause) {
          cleanup()
          idle.push(handle)
          resume(Effect.fail(nodeError(`could not send the inputs to a worker: ${String(cause)}`, cause)))
        }
        // Interrupted (Ctrl-C, a sweep stopping): the only sure way to stop tfjs mid-kernel is to end the thread.
        return Effect.sync(() => {
          cleanup()
          discard(handle)
        })
      })

    const run = (job: KindJob, onProgress: (progress: Progress) => void) =>
      slots.withPermits(1)(Effect.suspend(() => runOn(checkout(job.backend), job, onProgress)))

    const service: WorkerPoolService = { size, run }
    return service
  })

/** A pool of worker threads for heavy node kinds (see the module comment). */
export class WorkerPool extends Context.Tag("distillery/WorkerPool")<WorkerPool, WorkerPoolService>() {
  /** Up to `size` workers (at least 1), each on its jobs' backend; terminated when the layer is released. */
  static readonly layer = (size: number): Layer.Layer<WorkerPool> => Layer.scoped(WorkerPool, makePool(Math.max(1, Math.floor(size))))

  /** Runs jobs on the calling thread, one kind lookup away from the executor's own inline path. */
  static readonly layerInline: Layer.Layer<WorkerPool> = Layer.succeed(WorkerPool, { size: 0, run: runJob })
}
