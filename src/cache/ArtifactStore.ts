/**
 * The artifact store: where node results are cached between runs. Two stores in one service
 * (hamilton `caching/stores/base.py`): cache key -> metadata (which artifact, which node made it), and
 * artifact id -> bytes, where the artifact id is the sha256 of the bytes, so equal results made under
 * different keys are stored once.
 *
 * Backends share one `make` over a small `ArtifactBackend`: `layerMemory` (tests, dry runs) and
 * `layerFileSystem(dir)`, laid out as
 * ```
 *   <dir>/artifacts/<id[0..2]>/<id>   the bytes
 *   <dir>/keys/<key>.json             { key, artifactId, node, kind, size, createdAt }
 * ```
 * File writes are atomic: bytes go to a `.tmp-*` file in the target's directory, are fsynced, then
 * renamed over the target, so a reader sees the whole file or none. The bytes are written before the
 * key, so a key never names bytes that were not written; a crash in between leaves only an
 * unreferenced artifact for `gc`. Temp files left by a killed process are never listed, and are removed
 * when a store is opened.
 *
 * Reads are verified: `get` checks the bytes' sha256 against the artifact id. Bytes that do not match
 * (flipped, truncated) are quarantined: moved to `<dir>/quarantine/<id>.<time>` with a line in
 * `<dir>/quarantine/events.jsonl` (what, which key, why, when), and the key is dropped, so the node is a
 * cache miss and the run recomputes it. `quarantine(key, reason)` does the same for bytes that hash
 * right but do not decode.
 *
 * A write that fails (the disk is full: ENOSPC) removes its temp file and fails with an
 * `ArtifactStoreError` saying so; nothing names the missing bytes, so the node is simply not cached and
 * the next run computes it again.
 *
 * `claims` (Claims.ts, `<dir>/claims/`) lets processes sharing the store compute each key once.
 *
 * `distillery verify` audits the files themselves: `keyNames` lists key files whether or not they parse,
 * `readArtifact` reads bytes without checking (or quarantining) them, `tempFiles` lists writes in flight.
 */
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Clock, Context, Effect, Layer, Option, Schema } from "effect"
import type { CacheKey } from "../domain/Ids.js"
import type { Claims } from "./Claims.js"
import { claimsNone, isProcessAlive, makeFileClaims } from "./Claims.js"

/** A failed read or write of the store; `path` is the file or directory concerned. */
export class ArtifactStoreError extends Schema.TaggedError<ArtifactStoreError>()("ArtifactStoreError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** What the store knows about a cache key. */
export const ArtifactMeta = Schema.Struct({
  /** sha256 hex of the bytes. */
  artifactId: Schema.String,
  /** The node id that produced it. */
  node: Schema.String,
  /** The node's kind. */
  kind: Schema.String,
  /** Size of the bytes. */
  size: Schema.Number,
  /** When the key was written, ISO-8601 UTC. */
  createdAt: Schema.String
})
export type ArtifactMeta = typeof ArtifactMeta.Type

/** One cache key and its metadata, as listed by `keys()`. */
export interface KeyEntry extends ArtifactMeta {
  readonly key: CacheKey
}

/** One quarantined artifact: what was moved aside, and why. */
export interface QuarantineEvent {
  readonly artifactId: string
  readonly key: string
  readonly node: string
  readonly reason: string
  readonly at: string
}

/** One stored artifact, as listed by `artifacts()`. */
export interface ArtifactEntry {
  readonly artifactId: string
  readonly size: number
}

const KeyFile = Schema.Struct({ key: Schema.String, ...ArtifactMeta.fields })

const HEX64 = /^[0-9a-f]{64}$/

/**
 * The storage primitives a backend provides; `make` builds the service's semantics (hashing, dedup,
 * ordering of writes, validation) on top of them once for all backends.
 */
export interface ArtifactBackend {
  readonly root: string | undefined
  readonly readMeta: (key: string) => Effect.Effect<Option.Option<ArtifactMeta>, ArtifactStoreError>
  readonly writeMeta: (key: string, meta: ArtifactMeta) => Effect.Effect<void, ArtifactStoreError>
  readonly deleteMeta: (key: string) => Effect.Effect<boolean, ArtifactStoreError>
  readonly listMeta: Effect.Effect<ReadonlyArray<KeyEntry>, ArtifactStoreError>
  /** Every key with a key file, whether or not the file parses. */
  readonly listKeyNames: Effect.Effect<ReadonlyArray<string>, ArtifactStoreError>
  /** Temp files of writes not yet renamed into place, relative to `root`. */
  readonly listTemps: Effect.Effect<ReadonlyArray<string>, ArtifactStoreError>
  readonly readBlob: (id: string) => Effect.Effect<Option.Option<Uint8Array>, ArtifactStoreError>
  readonly hasBlob: (id: string) => Effect.Effect<boolean, ArtifactStoreError>
  /** Stores the bytes under `id`; only called when `hasBlob(id)` was false. */
  readonly writeBlob: (id: string, bytes: Uint8Array) => Effect.Effect<void, ArtifactStoreError>
  readonly deleteBlob: (id: string) => Effect.Effect<boolean, ArtifactStoreError>
  readonly listBlobs: Effect.Effect<ReadonlyArray<ArtifactEntry>, ArtifactStoreError>
  /** Moves the bytes out of the store (kept for inspection where the backend can) and logs the event. */
  readonly quarantineBlob: (event: QuarantineEvent) => Effect.Effect<void, ArtifactStoreError>
  readonly quarantined: Effect.Effect<ReadonlyArray<QuarantineEvent>, ArtifactStoreError>
}

export interface ArtifactStoreService {
  /** The store's directory, or undefined for the in-memory store. */
  readonly root: string | undefined
  /**
   * The bytes cached under `key`; None when the key is unknown, its artifact was removed, or its bytes
   * do not hash to their id (then they are quarantined). The memory backend returns its stored array:
   * decode it, never write to it.
   */
  readonly get: (key: CacheKey) => Effect.Effect<Option.Option<Uint8Array>, ArtifactStoreError>
  /** Caches `bytes` under `key` (replacing what the key named before); equal bytes are stored once. */
  readonly put: (
    key: CacheKey,
    bytes: Uint8Array,
    meta: { readonly node: string; readonly kind: string }
  ) => Effect.Effect<{ readonly artifactId: string; readonly size: number }, ArtifactStoreError>
  /** Whether `get(key)` would find bytes. */
  readonly has: (key: CacheKey) => Effect.Effect<boolean, ArtifactStoreError>
  readonly meta: (key: CacheKey) => Effect.Effect<Option.Option<ArtifactMeta>, ArtifactStoreError>
  /** Every cache key with its metadata, sorted by key. */
  readonly keys: () => Effect.Effect<ReadonlyArray<KeyEntry>, ArtifactStoreError>
  /** Every stored artifact, sorted by id (some may be named by no key: `gc` removes those). */
  readonly artifacts: () => Effect.Effect<ReadonlyArray<ArtifactEntry>, ArtifactStoreError>
  /** Every key that has a key file, sorted, including files `meta` rejects as corrupt (for `verify`). */
  readonly keyNames: () => Effect.Effect<ReadonlyArray<CacheKey>, ArtifactStoreError>
  /** The bytes stored as `artifactId`, as they are: not checked against their sha256, never quarantined (for `verify`). */
  readonly readArtifact: (artifactId: string) => Effect.Effect<Option.Option<Uint8Array>, ArtifactStoreError>
  /**
   * Temp files present now, relative to the store's root: writes in flight (those of killed processes
   * are removed whenever a store is opened).
   */
  readonly tempFiles: () => Effect.Effect<ReadonlyArray<string>, ArtifactStoreError>
  /** Removes the bytes; keys naming them then miss. True when something was removed. */
  readonly removeArtifact: (artifactId: string) => Effect.Effect<boolean, ArtifactStoreError>
  /** Removes a key (not its bytes). True when the key existed. */
  readonly removeKey: (key: CacheKey) => Effect.Effect<boolean, ArtifactStoreError>
  /** Quarantines what `key` names (bytes that cannot be used, e.g. that do not decode) and drops the key. */
  readonly quarantine: (key: CacheKey, reason: string) => Effect.Effect<void, ArtifactStoreError>
  /** Every quarantine so far, oldest first. */
  readonly quarantined: () => Effect.Effect<ReadonlyArray<QuarantineEvent>, ArtifactStoreError>
  /** Cross-process claims on keys being computed (always granted for the in-memory store). */
  readonly claims: Claims
}

/** sha256 hex of the bytes: the artifact id. */
export const artifactIdOf = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const checkHex = (what: string, value: string): Effect.Effect<void, ArtifactStoreError> =>
  HEX64.test(value)
    ? Effect.void
    : Effect.fail(
      new ArtifactStoreError({
        path: value,
        message: `invalid ${what} ${JSON.stringify(value)}: expected 64 lowercase hex digits (a sha256)`
      })
    )

/** The service over any backend. */
export const make = (backend: ArtifactBackend, claims: Claims = claimsNone): ArtifactStoreService => {
  const meta = Effect.fn("ArtifactStore.meta")(function*(key: CacheKey) {
    yield* checkHex("cache key", key)
    return yield* backend.readMeta(key)
  })

  const setAside = (key: CacheKey, found: ArtifactMeta, reason: string) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* backend.quarantineBlob({ artifactId: found.artifactId, key, node: found.node, reason, at: new Date(now).toISOString() })
      yield* backend.deleteMeta(key)
    })

  const get = Effect.fn("ArtifactStore.get")(function*(key: CacheKey) {
    const found = yield* meta(key)
    if (Option.isNone(found)) return Option.none<Uint8Array>()
    const bytes = yield* backend.readBlob(found.value.artifactId)
    if (Option.isNone(bytes)) return bytes
    const actual = artifactIdOf(bytes.value)
    if (actual === found.value.artifactId) return bytes
    const size = bytes.value.byteLength === found.value.size ? `${bytes.value.byteLength} bytes` : `${bytes.value.byteLength} bytes of ${found.value.size}`
    yield* setAside(key, found.value, `sha256 mismatch: ${size} hash to ${actual.slice(0, 12)}, not ${found.value.artifactId.slice(0, 12)}`)
    return Option.none<Uint8Array>()
  })

  const quarantine = Effect.fn("ArtifactStore.quarantine")(function*(key: CacheKey, reason: string) {
    const found = yield* meta(key)
    if (Option.isSome(found)) yield* setAside(key, found.value, reason)
  })

  const has = Effect.fn("ArtifactStore.has")(function*(key: CacheKey) {
    const found = yield* meta(key)
    if (Option.isNone(found)) return false
    return yield* backend.hasBlob(found.value.artifactId)
  })

  const put = Effect.fn("ArtifactStore.put")(function*(
    key: CacheKey,
    bytes: Uint8Array,
    info: { readonly node: string; readonly kind: string }
  ) {
    yield* checkHex("cache key", key)
    const artifactId = artifactIdOf(bytes)
    if (!(yield* backend.hasBlob(artifactId))) yield* backend.writeBlob(artifactId, bytes)
    const now = yield* Clock.currentTimeMillis
    yield* backend.writeMeta(key, {
      artifactId,
      node: info.node,
      kind: info.kind,
      size: bytes.byteLength,
      createdAt: new Date(now).toISOString()
    })
    return { artifactId, size: bytes.byteLength }
  })

  const keys = Effect.fn("ArtifactStore.keys")(function*() {
    const entries = yield* backend.listMeta
    return [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  })

  const artifacts = Effect.fn("ArtifactStore.artifacts")(function*() {
    const entries = yield* backend.listBlobs
    return [...entries].sort((a, b) => (a.artifactId < b.artifactId ? -1 : a.artifactId > b.artifactId ? 1 : 0))
  })

  const removeArtifact = Effect.fn("ArtifactStore.removeArtifact")(function*(artifactId: string) {
    yield* checkHex("artifact id", artifactId)
    return yield* backend.deleteBlob(artifactId)
  })

  const removeKey = Effect.fn("ArtifactStore.removeKey")(function*(key: CacheKey) {
    yield* checkHex("cache key", key)
    return yield* backend.deleteMeta(key)
  })

  const keyNames = Effect.fn("ArtifactStore.keyNames")(function*() {
    const names = yield* backend.listKeyNames
    return names.filter((k) => HEX64.test(k)).sort() as ReadonlyArray<string> as ReadonlyArray<CacheKey>
  })

  const readArtifact = Effect.fn("ArtifactStore.readArtifact")(function*(artifactId: string) {
    yield* checkHex("artifact id", artifactId)
    return yield* backend.readBlob(artifactId)
  })

  return {
    root: backend.root,
    get,
    put,
    has,
    meta,
    keys,
    artifacts,
    keyNames,
    readArtifact,
    tempFiles: () => backend.listTemps,
    removeArtifact,
    removeKey,
    quarantine,
    quarantined: () => backend.quarantined,
    claims
  }
}

// ---------------------------------------------------------------------------------------------------
// Memory backend

/** A backend over two Maps; bytes are copied on the way in so a caller's later writes do not leak in. */
export const makeMemoryBackend = (): ArtifactBackend => {
  const metas = new Map<string, ArtifactMeta>()
  const blobs = new Map<string, Uint8Array>()
  const events: Array<QuarantineEvent> = []
  return {
    root: undefined,
    readMeta: (key) => Effect.sync(() => Option.fromNullable(metas.get(key))),
    writeMeta: (key, meta) => Effect.sync(() => void metas.set(key, meta)),
    deleteMeta: (key) => Effect.sync(() => metas.delete(key)),
    listMeta: Effect.sync(() => [...metas].map(([key, meta]) => ({ key: key as CacheKey, ...meta }))),
    listKeyNames: Effect.sync(() => [...metas.keys()]),
    listTemps: Effect.succeed([]),
    readBlob: (id) => Effect.sync(() => Option.fromNullable(blobs.get(id))),
    hasBlob: (id) => Effect.sync(() => blobs.has(id)),
    writeBlob: (id, bytes) => Effect.sync(() => void blobs.set(id, bytes.slice())),
    deleteBlob: (id) => Effect.sync(() => blobs.delete(id)),
    listBlobs: Effect.sync(() => [...blobs].map(([artifactId, bytes]) => ({ artifactId, size: bytes.byteLength }))),
    quarantineBlob: (event) =>
      Effect.sync(() => {
        blobs.delete(event.artifactId)
        events.push(event)
      }),
    quarantined: Effect.sync(() => [...events])
  }
}

// ---------------------------------------------------------------------------------------------------
// File-system backend

const TEMP_PREFIX = ".tmp-"

const errorCode = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined

const describeError = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const fsTry = <A>(file: string, doing: string, run: () => Promise<A>): Effect.Effect<A, ArtifactStoreError> =>
  Effect.tryPromise({
    try: run,
    catch: (cause) =>
      errorCode(cause) === "ENOSPC"
        ? new ArtifactStoreError({
          path: file,
          message: `no space left on the device holding ${file}: could not ${doing} it, and nothing was stored in its place; ` +
            "free some space (`distillery gc` removes artifacts no run needs), then run again: what was stored before is reused",
          cause
        })
        : new ArtifactStoreError({ path: file, message: `could not ${doing} ${file}: ${describeError(cause)}`, cause })
  })

/** Runs `run`, mapping a missing file to `onMissing`. */
const orMissing = async <A>(run: () => Promise<A>, onMissing: A): Promise<A> => {
  try {
    return await run()
  } catch (e) {
    if (errorCode(e) === "ENOENT") return onMissing
    throw e
  }
}

const fsyncDirectory = async (dir: string): Promise<void> => {
  // Makes the rename durable. Some platforms (Windows) cannot open a directory: the rename is still atomic.
  let handle: fs.FileHandle | undefined
  try {
    handle = await fs.open(dir, "r")
    await handle.sync()
  } catch {
    // best effort
  } finally {
    await handle?.close().catch(() => undefined)
  }
}

/** Writes the data into an open file; replaceable to simulate a failing disk. */
export type WriteData = (handle: fs.FileHandle, data: Uint8Array | string, target: string) => Promise<void>

const writeWhole: WriteData = (handle, data) => handle.writeFile(data)

/** Writes `data` to `target` atomically: temp file in the same directory, fsync, rename. */
const writeAtomic = async (target: string, data: Uint8Array | string, writeData: WriteData = writeWhole): Promise<void> => {
  const dir = path.dirname(target)
  await fs.mkdir(dir, { recursive: true })
  const temp = path.join(
    dir,
    `${TEMP_PREFIX}${path.basename(target)}-${process.pid}-${randomBytes(6).toString("hex")}`
  )
  try {
    const handle = await fs.open(temp, "wx")
    try {
      await writeData(handle, data, target)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await fs.rename(temp, target)
  } catch (e) {
    await fs.rm(temp, { force: true }).catch(() => undefined)
    throw e
  }
  await fsyncDirectory(dir)
}

/** A temp file is stale when the process that wrote it is gone. */
const isStaleTemp = (name: string): boolean => {
  if (!name.startsWith(TEMP_PREFIX)) return false
  const match = /-(\d+)-[0-9a-f]+$/.exec(name)
  if (match === null) return true
  const pid = Number(match[1])
  return pid !== process.pid && !isProcessAlive(pid)
}

const removeStaleTemps = async (dir: string): Promise<void> => {
  const names = await orMissing(() => fs.readdir(dir), [] as Array<string>)
  await Promise.all(names.filter(isStaleTemp).map((name) => fs.rm(path.join(dir, name), { force: true })))
}

export interface FileSystemOptions {
  /** How bytes are written into a temp file (tests pass one that fails as a full disk would). */
  readonly writeData?: WriteData
}

/** Opens (creating if needed) a store directory and removes temp files left by killed processes. */
export const openFileSystemBackend = (dir: string, options: FileSystemOptions = {}): Effect.Effect<ArtifactBackend, ArtifactStoreError> => {
  const root = path.resolve(dir)
  const artifactsDir = path.join(root, "artifacts")
  const keysDir = path.join(root, "keys")
  const quarantineDir = path.join(root, "quarantine")
  const eventsFile = path.join(quarantineDir, "events.jsonl")
  const blobPath = (id: string) => path.join(artifactsDir, id.slice(0, 2), id)
  const keyPath = (key: string) => path.join(keysDir, `${key}.json`)

  const backend: ArtifactBackend = {
    root,
    readMeta: (key) => {
      const file = keyPath(key)
      return fsTry(file, "read", () => orMissing(() => fs.readFile(file, "utf8"), undefined)).pipe(
        Effect.flatMap((text) =>
          text === undefined
            ? Effect.succeed(Option.none<ArtifactMeta>())
            : Effect.try({
              try: () => JSON.parse(text) as unknown,
              catch: (cause) =>
                new ArtifactStoreError({ path: file, message: `corrupt key file ${file}: not JSON`, cause })
            }).pipe(
              Effect.flatMap(Schema.decodeUnknown(KeyFile)),
              Effect.mapError((cause) =>
                cause._tag === "ArtifactStoreError" ? cause : new ArtifactStoreError({
                  path: file,
                  message: `corrupt key file ${file}: ${cause.message}`,
                  cause
                })
              ),
              Effect.map(({ key: _key, ...meta }) => Option.some(meta))
            )
        )
      )
    },
    writeMeta: (key, meta) => {
      const file = keyPath(key)
      return fsTry(file, "write", () => writeAtomic(file, JSON.stringify({ key, ...meta }, null, 2) + "\n", options.writeData))
    },
    deleteMeta: (key) => {
      const file = keyPath(key)
      return fsTry(file, "remove", () => orMissing(() => fs.unlink(file).then(() => true), false))
    },
    listMeta: Effect.gen(function*() {
      const names = yield* fsTry(keysDir, "list", () => orMissing(() => fs.readdir(keysDir), [] as Array<string>))
      const keys = names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -5)).filter((k) => HEX64.test(k))
      const metas = yield* Effect.forEach(keys, (key) => backend.readMeta(key), { concurrency: 16 })
      return keys.flatMap((key, i) => {
        const meta = metas[i]!
        return Option.isSome(meta) ? [{ key: key as CacheKey, ...meta.value }] : []
      })
    }),
    listKeyNames: fsTry(keysDir, "list", async () => {
      const names = await orMissing(() => fs.readdir(keysDir), [] as Array<string>)
      return names.filter((n) => n.endsWith(".json") && !n.startsWith(TEMP_PREFIX)).map((n) => n.slice(0, -5))
    }),
    listTemps: fsTry(root, "list temp files in", async () => {
      const temps = (dir: string) =>
        orMissing(() => fs.readdir(path.join(root, dir)), [] as Array<string>).then((names) =>
          names.filter((n) => n.startsWith(TEMP_PREFIX)).map((n) => path.join(dir, n))
        )
      const shards = (await orMissing(() => fs.readdir(artifactsDir), [] as Array<string>)).filter((s) => /^[0-9a-f]{2}$/.test(s))
      const found = await Promise.all([temps("keys"), ...shards.map((s) => temps(path.join("artifacts", s)))])
      return found.flat().sort()
    }),
    readBlob: (id) => {
      const file = blobPath(id)
      return fsTry(file, "read", () => orMissing(() => fs.readFile(file), undefined)).pipe(
        Effect.map((buf) =>
          buf === undefined
            ? Option.none<Uint8Array>()
            : Option.some(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength))
        )
      )
    },
    hasBlob: (id) => {
      const file = blobPath(id)
      return fsTry(file, "check", () => orMissing(() => fs.stat(file).then((s) => s.isFile()), false))
    },
    writeBlob: (id, bytes) => {
      const file = blobPath(id)
      return fsTry(file, "write", () => writeAtomic(file, bytes, options.writeData))
    },
    deleteBlob: (id) => {
      const file = blobPath(id)
      return fsTry(file, "remove", () => orMissing(() => fs.unlink(file).then(() => true), false))
    },
    listBlobs: fsTry(artifactsDir, "list", async () => {
      const shards = await orMissing(() => fs.readdir(artifactsDir), [] as Array<string>)
      const entries: Array<ArtifactEntry> = []
      for (const shard of shards.filter((s) => /^[0-9a-f]{2}$/.test(s))) {
        const shardDir = path.join(artifactsDir, shard)
        const names = await orMissing(() => fs.readdir(shardDir), [] as Array<string>)
        for (const name of names.filter((n) => HEX64.test(n) && n.startsWith(shard))) {
          const stat = await orMissing(() => fs.stat(path.join(shardDir, name)), undefined)
          if (stat?.isFile()) entries.push({ artifactId: name, size: stat.size })
        }
      }
      return entries
    }),
    quarantineBlob: (event) =>
      fsTry(quarantineDir, "quarantine an artifact in", async () => {
        await fs.mkdir(quarantineDir, { recursive: true })
        const aside = path.join(quarantineDir, `${event.artifactId}.${event.at.replace(/[:.]/g, "-")}`)
        await orMissing(() => fs.rename(blobPath(event.artifactId), aside), undefined)
        await fs.appendFile(eventsFile, JSON.stringify(event) + "\n")
      }),
    quarantined: fsTry(eventsFile, "read", async () => {
      const text = await orMissing(() => fs.readFile(eventsFile, "utf8"), "")
      return text.split("\n").filter((l) => l.trim() !== "").flatMap((l) => {
        try {
          return [JSON.parse(l) as QuarantineEvent]
        } catch {
          return [] // a line cut short by a crash
        }
      })
    })
  }

  return fsTry(root, "open the artifact store at", async () => {
    await fs.mkdir(artifactsDir, { recursive: true })
    await fs.mkdir(keysDir, { recursive: true })
    await removeStaleTemps(keysDir)
    const shards = (await fs.readdir(artifactsDir)).filter((s) => /^[0-9a-f]{2}$/.test(s))
    await Promise.all(shards.map((shard) => removeStaleTemps(path.join(artifactsDir, shard))))
    return backend
  })
}

// ---------------------------------------------------------------------------------------------------
// Service

/** Cached node results: cache key -> metadata -> content-addressed bytes. */
export class ArtifactStore extends Context.Tag("distillery/ArtifactStore")<ArtifactStore, ArtifactStoreService>() {
  /** An empty store in memory, gone when the layer is released. */
  static readonly layerMemory: Layer.Layer<ArtifactStore> = Layer.sync(ArtifactStore, () => make(makeMemoryBackend()))

  /** A store in `dir` (created if missing), claims in `<dir>/claims/`; cleans temp files left by killed runs. */
  static readonly layerFileSystem = (dir: string, options?: FileSystemOptions): Layer.Layer<ArtifactStore, ArtifactStoreError> =>
    Layer.effect(
      ArtifactStore,
      Effect.gen(function*() {
        const backend = yield* openFileSystemBackend(dir, options)
        const claims = yield* makeFileClaims(path.join(path.resolve(dir), "claims")).pipe(
          Effect.mapError((e) => new ArtifactStoreError({ path: e.path, message: e.message, cause: e }))
        )
        return make(backend, claims)
      })
    )
}
