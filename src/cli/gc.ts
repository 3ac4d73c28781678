/**
 * `distillery gc [--dry-run]`: removes cached results that no recorded run references. A cache key is
 * kept while some row of the `nodes` table names it; an artifact's bytes are kept while a kept key
 * names them. Everything else (keys of runs since deleted from the store, bytes a crash left without
 * a key) goes, and the bytes freed are reported. The results store is held while collecting, so no
 * run can add a key in between.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { ArtifactStore } from "../cache/ArtifactStore.js"
import type { CacheKey } from "../domain/Ids.js"
import * as ReadModel from "../store/ReadModel.js"
import { storeOption } from "./shared.js"

/** 1536 -> "1.5 KiB". */
export const formatBytes = (n: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`
}

export interface GcReport {
  readonly dryRun: boolean
  readonly keys: ReadonlyArray<{ readonly key: string; readonly node: string; readonly kind: string }>
  readonly artifacts: ReadonlyArray<{ readonly artifactId: string; readonly size: number }>
  readonly bytes: number
  readonly keptKeys: number
  readonly keptArtifacts: number
}

export const collectGarbage = (options: { readonly dryRun: boolean }) =>
  Effect.gen(function* () {
    const artifacts = yield* ArtifactStore
    const referenced = yield* ReadModel.referencedCacheKeys()
    const keys = yield* artifacts.keys()
    const dropKeys = keys.filter((k) => !referenced.has(k.key))
    const named = new Set(keys.filter((k) => referenced.has(k.key)).map((k) => k.artifactId))
    const blobs = yield* artifacts.artifacts()
    const dropBlobs = blobs.filter((b) => !named.has(b.artifactId))
    if (!options.dryRun) {
      // Keys first: a key never names bytes that are gone.
      for (const k of dropKeys) yield* artifacts.removeKey(k.key as CacheKey)
      for (const b of dropBlobs) yield* artifacts.removeArtifact(b.artifactId)
    }
    return {
      dryRun: options.dryRun,
      keys: dropKeys.map((k) => ({ key: k.key, node: k.node, kind: k.kind })),
      artifacts: dropBlobs,
      bytes: dropBlobs.reduce((n, b) => n + b.size, 0),
      keptKeys: keys.length - dropKeys.length,
      keptArtifacts: blobs.length - dropBlobs.length
    } satisfies GcReport
  })

export const formatGcReport = (r: GcReport): string => {
  const verb = r.dryRun ? "would remove" : "removed"
  const lines = [
    ...r.keys.map((k) => `  key ${k.key.slice(0, 12)}…  ${k.node} (${k.kind})`),
    ...r.artifacts.map((a) => `  artifact ${a.artifactId.slice(0, 12)}…  ${formatBytes(a.size)}`)
  ]
  return [
    ...lines,
    `${verb} ${r.keys.length} cache key${r.keys.length === 1 ? "" : "s"} and ${r.artifacts.length} artifact${r.artifacts.length === 1 ? "" : "s"} (${formatBytes(r.bytes)}); kept ${r.keptKeys} keys and ${r.keptArtifacts} artifacts` +
      (r.dryRun && r.keys.length + r.artifacts.length > 0 ? "\nrun without --dry-run to remove them" : "")
  ].join("\n")
}

export const gc = Command.make(
  "gc",
  {
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("only say what would be removed")),
    store: storeOption
  },
  (o) => Effect.flatMap(collectGarbage({ dryRun: o.dryRun }), (r) => Console.log(formatGcReport(r)))
).pipe(Command.withDescription("Remove cached artifacts that no recorded run references (--dry-run to preview)"))
