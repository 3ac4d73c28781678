/**
 * The entry of a WorkerPool thread: readies the tfjs backend once, then runs the node jobs the pool
 * sends, one at a time, posting progress events and finally the result (as artifact bytes, whose
 * buffer is transferred) or the failure's message.
 */
import { parentPort, workerData } from "node:worker_threads"
import { Cause, Effect, Exit, Option } from "effect"
import type { BackendName } from "../backend/Backend.js"
import { initBackend } from "../backend/Backend.js"
import { decodeArtifact, encodeArtifact } from "../cache/Codec.js"
import type { Artifact } from "../domain/Artifact.js"
import type { Progress } from "../nodes/NodeKind.js"
import type { FromWorker, KindJob, ToWorker } from "./WorkerPool.js"
import { runJob } from "./WorkerPool.js"

const port = parentPort!
const backend: Promise<string> = initBackend((workerData as { backend: BackendName }).backend)
// Reported with the first job, not as an unhandled rejection.
backend.catch(() => undefined)

const post = (message: FromWorker, transfer: ReadonlyArray<ArrayBuffer> = []) => port.postMessage(message, [...transfer])

/** Batch-level progress is throttled; epoch reports (those with facts) always go through. */
const progressSender = (id: number) => {
  let last = 0
  return (progress: Progress) => {
    const now = performance.now()
    if (progress.facts === undefined && now - last < 100) return
    last = now
    post({ type: "progress", id, progress })
  }
}

const handle = async (message: ToWorker): Promise<void> => {
  const { id } = message
  try {
    await backend
  } catch (e) {
    post({ type: "failed", id, message: `the worker could not start the ${String((workerData as { backend: string }).backend)} backend: ${e instanceof Error ? e.message : String(e)}` })
    return
  }
  const job: KindJob = { ...message.job, inputs: decodeArtifact(message.inputs) as Record<string, Artifact> }
  const exit = await Effect.runPromiseExit(runJob(job, progressSender(id)))
  if (Exit.isSuccess(exit)) {
    let bytes: Uint8Array
    try {
      bytes = encodeArtifact(exit.value)
    } catch (e) {
      post({ type: "failed", id, message: `could not send the result back: ${e instanceof Error ? e.message : String(e)}` })
      return
    }
    post({ type: "done", id, result: bytes }, [bytes.buffer as ArrayBuffer])
    return
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    post({ type: "failed", id, message: failure.value.message, ...(failure.value._tag === "KindNotFoundError" ? { notFound: true } : {}) })
  } else {
    post({ type: "failed", id, message: `unexpected error: ${Cause.pretty(exit.cause)}` })
  }
}

// Jobs run one at a time: the pool sends the next only after this one answered.
port.on("message", (message: ToWorker) => {
  if (message.type !== "run") return
  handle(message).catch((e: unknown) =>
    post({ type: "failed", id: message.id, message: `unexpected error in the worker: ${e instanceof Error ? e.message : String(e)}` })
  )
})
