/**
 * Cross-process claims on cache keys, so that a node two processes need at once (two runs or sweeps on
 * one store) is computed by one of them while the other waits and then reads it as a cache hit.
 *
 * A claim is the file `<store>/claims/<key>.json` holding `{ key, node, pid, hostname, startedAt, token }`.
 * It is written whole to a temp file and hard-linked into place: the link fails when a claim exists, so
 * of any number of processes exactly one creates it, and nobody ever reads half a claim. The owner
 * touches the file every 30 s and removes it (only if it still holds its own token) when the node is
 * stored or fails. A claim is stale when its process is gone: on this host, when its pid is dead; from
 * another host (a shared file system), when it was last touched over 5 minutes ago. A stale claim is
 * taken over: renamed aside (one rename wins), checked to be the one judged stale, and removed, so a
 * killed process never blocks a key.
 *
 * Claims only save work; correctness does not rest on them. Artifact writes are atomic and a key's
 * bytes are the same whoever computes them, so the rare race they do not exclude (a takeover racing
 * a new claim) costs a second computation, never a wrong result.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Clock, Effect, Fiber, Schedule, Schema } from "effect"

/** Reading or writing a claim file failed. */
export class ClaimError extends Schema.TaggedError<ClaimError>()("ClaimError", {
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** Who holds a claim. */
export interface ClaimHolder {
  readonly key: string
  readonly node: string
  readonly pid: number
  readonly hostname: string
  /** When the claim was taken, ISO-8601 UTC. */
  readonly startedAt: string
  readonly token: string
}

/** A claim taken (release it once the result is stored or has failed), or held by another process. */
export type ClaimAttempt =
  | { readonly _tag: "Claimed"; readonly release: Effect.Effect<void> }
  | { readonly _tag: "Held"; readonly holder: ClaimHolder }

export interface Claims {
  /** Takes the claim on `key` if no live process holds it; never waits. */
  readonly tryClaim: (key: string, node: string) => Effect.Effect<ClaimAttempt, ClaimError>
}

/** Claims for a store no other process can see (in memory): always granted. */
export const claimsNone: Claims = {
  tryClaim: () => Effect.succeed({ _tag: "Claimed", release: Effect.void })
}

const HEARTBEAT = "30 seconds"
const FOREIGN_STALE_MS = 5 * 60_000
const TEMP_PREFIX = ".tmp-"

const errorCode = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined

const describeError = (e: unknown): string => (e instanceof Error ? e.message : String(e))

export const isProcessAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return errorCode(e) === "EPERM"
  }
}

/** The claim in `file` and when it was last touched; undefined when there is none (or it is not a claim). */
const readClaim = async (file: string): Promise<{ holder: ClaimHolder; touchedMs: number } | undefined> => {
  try {
    const [text, stat] = await Promise.all([fs.readFile(file, "utf8"), fs.stat(file)])
    const holder = JSON.parse(text) as ClaimHolder
    if (typeof holder.pid !== "number" || typeof holder.token !== "string") return undefined
    return { holder, touchedMs: stat.mtimeMs }
  } catch (e) {
    if (errorCode(e) === "ENOENT" || e instanceof SyntaxError) return undefined
    throw e
  }
}

const isStale = (holder: ClaimHolder, touchedMs: number, nowMs: number): boolean =>
  holder.hostname === os.hostname() ? !isProcessAlive(holder.pid) : nowMs - touchedMs > FOREIGN_STALE_MS

/** Claims as files under `dir` (created if missing); removes temp files left by killed processes. */
export const makeFileClaims = (dir: string): Effect.Effect<Claims, ClaimError> => {
  const fileOf = (key: string) => path.join(dir, `${key}.json`)
  const tryIo = <A>(file: string, doing: string, run: () => Promise<A>) =>
    Effect.tryPromise({
      try: run,
      catch: (cause) => new ClaimError({ path: file, message: `could not ${doing} ${file}: ${describeError(cause)}`, cause })
    })

  /** Links a whole claim into place; false when one is there already. */
  const create = async (file: string, holder: ClaimHolder): Promise<boolean> => {
    const temp = path.join(dir, `${TEMP_PREFIX}${holder.key}-${process.pid}-${randomBytes(6).toString("hex")}`)
    await fs.writeFile(temp, JSON.stringify(holder) + "\n", { flag: "wx" })
    try {
      await fs.link(temp, file)
      return true
    } catch (e) {
      if (errorCode(e) === "EEXIST") return false
      throw e
    } finally {
      await fs.rm(temp, { force: true })
    }
  }

  /** Removes the stale claim `judged` unless it was replaced meanwhile; true when the key is free. */
  const takeOver = async (file: string, judged: ClaimHolder): Promise<boolean> => {
    const aside = path.join(dir, `${TEMP_PREFIX}stale-${judged.key}-${process.pid}-${randomBytes(6).toString("hex")}`)
    try {
      await fs.rename(file, aside)
    } catch (e) {
      if (errorCode(e) === "ENOENT") return true
      throw e
    }
    const moved = await readClaim(aside)
    if (moved !== undefined && moved.holder.token !== judged.token) {
      // A live claim made since: put it back (unless yet another is there now).
      await fs.link(aside, file).catch(() => undefined)
      await fs.rm(aside, { force: true })
      return false
    }
    await fs.rm(aside, { force: true })
    return true
  }

  const release = (file: string, token: string, heartbeat: Fiber.RuntimeFiber<unknown>) =>
    Fiber.interrupt(heartbeat).pipe(
      Effect.zipRight(Effect.promise(async () => {
        const now = await readClaim(file).catch(() => undefined)
        if (now?.holder.token === token) await fs.rm(file, { force: true }).catch(() => undefined)
      }))
    )

  const tryClaim = (key: string, node: string) =>
    Effect.gen(function*() {
      const file = fileOf(key)
      const now = yield* Clock.currentTimeMillis
      const mine: ClaimHolder = {
        key,
        node,
        pid: process.pid,
        hostname: os.hostname(),
        startedAt: new Date(now).toISOString(),
        token: randomBytes(12).toString("hex")
      }
      const outcome = yield* tryIo(file, "claim", async (): Promise<ClaimHolder | undefined> => {
        // A few rounds: a claim may be released or taken over between the steps.
        let seen: ClaimHolder | undefined
        for (let round = 0; round < 3; round++) {
          if (await create(file, mine)) return undefined
          const found = await readClaim(file)
          if (found === undefined) continue
          seen = found.holder
          // Compared with the file's mtime, the file system's clock: wall time, not the Effect Clock.
          if (!isStale(found.holder, found.touchedMs, Date.now())) return found.holder
          await takeOver(file, found.holder)
        }
        return seen ?? mine
      })
      if (outcome !== undefined) return { _tag: "Held", holder: outcome } as ClaimAttempt
      const touch = tryIo(file, "touch", () => fs.utimes(file, new Date(), new Date())).pipe(Effect.ignore)
      // Interruptible although forked where the claim is taken (uninterruptibly), so that release can stop it.
      const heartbeat = yield* Effect.forkDaemon(
        Effect.interruptible(Effect.repeat(touch, Schedule.spaced(HEARTBEAT)).pipe(Effect.delay(HEARTBEAT)))
      )
      return { _tag: "Claimed", release: release(file, mine.token, heartbeat) } as ClaimAttempt
    })

  return tryIo(dir, "create the claims directory", async () => {
    await fs.mkdir(dir, { recursive: true })
    const names = await fs.readdir(dir)
    await Promise.all(
      names.filter((n) => n.startsWith(TEMP_PREFIX)).map(async (n) => {
        const pid = Number(/-(\d+)-[0-9a-f]+$/.exec(n)?.[1] ?? 0)
        if (pid !== process.pid && !isProcessAlive(pid)) await fs.rm(path.join(dir, n), { force: true })
      })
    )
    return { tryClaim }
  })
}

/** Polling a held claim: from 50 ms growing to at most 1 s, jittered so that waiters do not move in step. */
const waitSchedule = Schedule.exponential("50 millis", 1.5).pipe(Schedule.union(Schedule.spaced("1 second")), Schedule.jittered)

class Waiting {
  readonly _tag = "Waiting"
  constructor(readonly holder: ClaimHolder) {}
}

/**
 * Takes the claim on `key`, waiting as long as a live process holds it; `onWait` is told of each
 * holder waited for (once per holder). `waited` says whether anyone was waited for: then the result
 * is likely stored by now.
 */
export const acquireClaim = (
  claims: Claims,
  key: string,
  node: string,
  onWait: (holder: ClaimHolder) => Effect.Effect<void>
): Effect.Effect<{ readonly release: Effect.Effect<void>; readonly waited: boolean }, ClaimError> => {
  let told: string | undefined
  return Effect.uninterruptible(claims.tryClaim(key, node)).pipe(
    Effect.flatMap((attempt) =>
      attempt._tag === "Claimed" ? Effect.succeed(attempt.release) : Effect.fail(new Waiting(attempt.holder))
    ),
    Effect.tapError((e) => {
      if (e._tag !== "Waiting" || told === e.holder.token) return Effect.void
      told = e.holder.token
      return onWait(e.holder)
    }),
    Effect.retry({ schedule: waitSchedule, while: (e) => e._tag === "Waiting" }),
    Effect.map((release) => ({ release, waited: told !== undefined })),
    Effect.catchTag("Waiting", () => Effect.dieMessage("a claim wait stopped without the claim"))
  )
}
