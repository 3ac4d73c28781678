/**
 * `distillery verify [--repair]`: checks the whole store and says what is wrong with it.
 * - every artifact: its bytes hash to its name (sha256) and decode; `--repair` quarantines a bad one
 *   through the ArtifactStore (its keys dropped, so the next run recomputes the node);
 * - every key file parses and names bytes that exist; `--repair` drops one that does not;
 * - every result a run recorded (a `nodes` row executed or cached) has its artifact; one without is
 *   history, not damage: it is listed, and `distillery run` recomputes it when a pipeline needs it;
 * - runs and sweeps still `running` though their process is gone; `--repair` marks them interrupted;
 * - the quarantine log, summed up.
 * Problems that remain (after `--repair`, those it could not mend) fail with `VerifyFailedError` (exit 5).
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Option, Schema } from "effect"
import type { QuarantineEvent } from "../cache/ArtifactStore.js"
import { ArtifactStore, artifactIdOf } from "../cache/ArtifactStore.js"
import type { CacheKey, RunId } from "../domain/Ids.js"
import * as ReadModel from "../store/ReadModel.js"
import { formatTable } from "../store/Format.js"
import { ResultsStore } from "../store/ResultsStore.js"
import { storeOption } from "./shared.js"

/** The store has problems that verify found (with `--repair`: that it could not mend). */
export class VerifyFailedError extends Schema.TaggedError<VerifyFailedError>()("VerifyFailedError", {
  problems: Schema.Number,
  message: Schema.String
}) {}

export type FindingKind =
  | "corrupt artifact"
  | "undecodable artifact"
  | "corrupt key"
  | "key without artifact"
  | "run left running"
  | "sweep left running"
  | "results without artifacts"
  | "write in progress"

/** One thing verify found. */
export interface Finding {
  readonly kind: FindingKind
  /** Which artifact, key, run or node. */
  readonly where: string
  readonly detail: string
  /** What `--repair` does, or (when it ran) did. */
  readonly repair: string
  /** False for what needs no repair (results a run recomputes, writes in progress). */
  readonly problem: boolean
  readonly repaired: boolean
}

export interface VerifyReport {
  readonly repair: boolean
  readonly artifacts: number
  readonly keys: number
  readonly results: number
  readonly runs: number
  readonly findings: ReadonlyArray<Finding>
  /** The whole quarantine log after this check (including what `--repair` just quarantined). */
  readonly quarantined: ReadonlyArray<QuarantineEvent>
}

const short = (id: string) => `${id.slice(0, 12)}…`

const messageOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e ? String((e as { message: unknown }).message) : String(e)

const listRuns = (runIds: ReadonlyArray<string>) =>
  runIds.length <= 3 ? runIds.join(", ") : `${runIds.slice(0, 3).join(", ")} and ${runIds.length - 3} more`

/** Checks the store; with `repair`, mends what it can. Needs both stores (read-write for `repair`). */
export const verifyStore = (options: { readonly repair: boolean }) =>
  Effect.gen(function*() {
    const store = yield* ArtifactStore
    const results = yield* ResultsStore
    const { decodeArtifact } = yield* Effect.promise(() => import("../cache/Codec.js"))
    const findings: Array<Finding> = []
    /** Runs `mend` when repairing; the finding records what was (or would be, or could not be) done. */
    const found = (
      finding: Omit<Finding, "repaired" | "problem">,
      mend: Effect.Effect<unknown, unknown> | undefined
    ) =>
      Effect.gen(function*() {
        if (!options.repair || mend === undefined) {
          findings.push({ ...finding, problem: mend !== undefined, repaired: false })
          return
        }
        const done = yield* Effect.either(mend)
        findings.push(
          done._tag === "Right"
            ? { ...finding, repair: `${finding.repair}: done`, problem: true, repaired: true }
            : { ...finding, repair: `${finding.repair}: failed (${messageOf(done.left)})`, problem: true, repaired: false }
        )
      })

    // The key index: which keys parse, and what they name.
    const keyNames = yield* store.keyNames()
    const keysOf = new Map<string, Array<{ key: CacheKey; node: string }>>()
    const named: Array<{ key: CacheKey; artifactId: string; node: string; kind: string }> = []
    for (const key of keyNames) {
      const meta = yield* Effect.either(store.meta(key))
      if (meta._tag === "Left") {
        yield* found(
          { kind: "corrupt key", where: `keys/${key}.json`, detail: meta.left.message, repair: "remove the key file" },
          store.removeKey(key)
        )
        continue
      }
      if (Option.isNone(meta.right)) continue // removed meanwhile
      const { artifactId, node, kind } = meta.right.value
      named.push({ key, artifactId, node, kind })
      keysOf.set(artifactId, [...(keysOf.get(artifactId) ?? []), { key, node }])
    }

    // Every artifact: its bytes hash to its name and decode.
    const blobs = yield* store.artifacts()
    const sound = new Set<string>()
    for (const blob of blobs) {
      const bytes = yield* store.readArtifact(blob.artifactId)
      if (Option.isNone(bytes)) continue // removed meanwhile
      const actual = artifactIdOf(bytes.value)
      let trouble: { kind: FindingKind; reason: string } | undefined
      if (actual !== blob.artifactId) {
        trouble = { kind: "corrupt artifact", reason: `sha256 mismatch: ${bytes.value.byteLength} bytes hash to ${short(actual)}` }
      } else {
        try {
          decodeArtifact(bytes.value)
        } catch (e) {
          trouble = { kind: "undecodable artifact", reason: `does not decode: ${messageOf(e)}` }
        }
      }
      if (trouble === undefined) {
        sound.add(blob.artifactId)
        continue
      }
      const keys = keysOf.get(blob.artifactId) ?? []
      const nodes = [...new Set(keys.map((k) => k.node))]
      const reason = trouble.reason
      yield* found(
        {
          kind: trouble.kind,
          where: `artifact ${short(blob.artifactId)}${nodes.length > 0 ? ` (${nodes.join(", ")})` : ""}`,
          detail: reason,
          repair: keys.length > 0 ? "quarantine it and drop its keys; the next run recomputes it" : "remove it (no key names it)"
        },
        keys.length > 0
          ? Effect.forEach(keys, (k) => store.quarantine(k.key, reason), { discard: true })
          : store.removeArtifact(blob.artifactId)
      )
    }

    // Keys whose bytes are gone.
    const present = new Set(blobs.map((b) => b.artifactId))
    for (const k of named) {
      if (present.has(k.artifactId)) continue
      yield* found(
        {
          kind: "key without artifact",
          where: `key ${short(k.key)} (${k.node})`,
          detail: `names artifact ${short(k.artifactId)}, which is not in the store`,
          repair: "drop the key; the next run recomputes it"
        },
        store.removeKey(k.key)
      )
    }

    for (const temp of yield* store.tempFiles()) {
      yield* found(
        {
          kind: "write in progress",
          where: temp,
          detail: "a temp file of a process still running (those of killed processes are removed when a store is opened)",
          repair: "none"
        },
        undefined
      )
    }

    // Recorded results whose artifact is not usable (gone before, or quarantined just now).
    const usable = new Set(named.filter((k) => sound.has(k.artifactId)).map((k) => k.key as string))
    const recorded = yield* ReadModel.recordedResults()
    for (const r of recorded) {
      if (usable.has(r.cacheKey)) continue
      yield* found(
        {
          kind: "results without artifacts",
          where: `node ${r.nodeId} (key ${short(r.cacheKey)})`,
          detail: `recorded by run${r.runIds.length === 1 ? "" : "s"} ${listRuns(r.runIds)}; its artifact is gone`,
          repair: "none: the history stays; `distillery run` recomputes it"
        },
        undefined
      )
    }

    const running = yield* ReadModel.runsLeftRunning()
    for (const run of running) {
      yield* found(
        {
          kind: "run left running",
          where: `run ${run.runId} (${run.pipeline})`,
          detail: `started ${run.startedAt ?? "?"} and never finished, and its process is gone: it was killed`,
          repair: "mark it interrupted"
        },
        results.finishRun(run.runId as RunId, "interrupted", "left running by a process that stopped (marked by distillery verify --repair)")
      )
    }
    for (const sweepId of yield* ReadModel.sweepsLeftRunning()) {
      yield* found(
        {
          kind: "sweep left running",
          where: `sweep ${sweepId}`,
          detail: "never finished: its process was killed",
          repair: "mark it interrupted"
        },
        results.finishSweep(sweepId, "interrupted")
      )
    }

    const runs = new Set(recorded.flatMap((r) => r.runIds))
    return {
      repair: options.repair,
      artifacts: blobs.length,
      keys: keyNames.length,
      results: recorded.length,
      runs: runs.size,
      findings,
      quarantined: yield* store.quarantined()
    } satisfies VerifyReport
  })

/** Problems `--repair` did not (or, without it, would) mend. */
export const remainingProblems = (r: VerifyReport): number => r.findings.filter((f) => f.problem && !f.repaired).length

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

/** "12 events, the last 2026-12-02T07:50:00Z: sha256 mismatch ×2, does not decode ×1". */
const quarantineLine = (events: ReadonlyArray<QuarantineEvent>): string => {
  if (events.length === 0) return "quarantine log: empty"
  const reasons = new Map<string, number>()
  for (const e of events) {
    const reason = e.reason.split(":")[0]!
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
  }
  const byReason = [...reasons].map(([reason, n]) => `${reason} ×${n}`).join(", ")
  return `quarantine log (quarantine/events.jsonl): ${plural(events.length, "event")}, the last at ${events[events.length - 1]!.at}: ${byReason}`
}

/** The findings as a table (what `--repair` would do, or did), the quarantine log, a summary line. */
export const formatVerifyReport = (r: VerifyReport): string => {
  const lines: Array<string> = []
  if (r.findings.length > 0) {
    const rows = r.findings.map((f) => [f.kind, f.where, f.detail, f.repair])
    const columns = ["finding", "where", "detail", r.repair ? "repair" : "--repair would"]
    lines.push(formatTable({ columns, types: [], rows }, { maxCellWidth: 80, footer: false }).trimEnd())
  }
  lines.push(quarantineLine(r.quarantined))
  const problems = r.findings.filter((f) => f.problem).length
  const repaired = r.findings.filter((f) => f.repaired).length
  const remaining = remainingProblems(r)
  const notes = r.findings.filter((f) => f.kind === "results without artifacts").length
  const checked = `checked ${plural(r.artifacts, "artifact")}, ${plural(r.keys, "key")}, ${plural(r.results, "recorded result")} of ${plural(r.runs, "run")}`
  const outcome = problems === 0
    ? "no problems"
    : r.repair
      ? `${plural(problems, "problem")}, ${repaired} repaired${remaining > 0 ? `, ${remaining} remain` : ""}`
      : `${plural(problems, "problem")}; \`distillery verify --repair\` mends them`
  const recompute = notes > 0 ? `; ${plural(notes, "result")} without artifacts (\`distillery run\` recomputes them)` : ""
  lines.push(`${checked}: ${outcome}${recompute}`)
  return lines.join("\n")
}

export const verify = Command.make(
  "verify",
  {
    repair: Options.boolean("repair").pipe(
      Options.withDescription("quarantine corrupt artifacts, drop keys without artifacts, mark runs left running interrupted")
    ),
    store: storeOption
  },
  (o) =>
    Effect.gen(function*() {
      const report = yield* verifyStore({ repair: o.repair })
      yield* Console.log(formatVerifyReport(report))
      const remaining = remainingProblems(report)
      if (remaining > 0) {
        return yield* new VerifyFailedError({
          problems: remaining,
          message: o.repair
            ? `${plural(remaining, "problem")} could not be repaired (see above)`
            : `${plural(remaining, "problem")} in the store; \`distillery verify --repair\` mends them`
        })
      }
    })
).pipe(Command.withDescription("Check every artifact, cache key and recorded result in the store; --repair mends what it can"))
