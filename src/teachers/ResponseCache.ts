/**
 * The teachers' response cache: one JSON file per answered request, `<dir>/<sha256>.json`, named by
 * the sha256 of the canonical JSON of `{ url, body }` (never a header, so never the API key). Writes
 * go to a temp file that is then renamed, so a reader sees a whole response or none; a generation that
 * was interrupted finds every response it already paid for.
 */
import { createHash, randomBytes } from "node:crypto"
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import { canonicalJson } from "../cache/CanonicalJson.js"

/** The cache key of a request: what it asks, where. */
export const requestKey = (url: string, body: unknown): string => createHash("sha256").update(canonicalJson({ url, body })).digest("hex")

export interface ResponseCache {
  /** The cached response body of a request, if any (an unreadable file counts as a miss). */
  readonly get: (key: string) => Effect.Effect<unknown | undefined>
  /** Stores a response; a failed write costs a future request, not this one. */
  readonly put: (key: string, url: string, body: unknown, response: unknown) => Effect.Effect<void>
}

export const none: ResponseCache = { get: () => Effect.succeed(undefined), put: () => Effect.void }

export const directory = (dir: string): ResponseCache => ({
  get: (key) =>
    Effect.promise(async () => {
      try {
        return (JSON.parse(await readFile(join(dir, `${key}.json`), "utf8")) as { response: unknown }).response
      } catch {
        return undefined
      }
    }),
  put: (key, url, body, response) =>
    Effect.promise(async () => {
      const file = join(dir, `${key}.json`)
      const temp = join(dir, `.${key}.${randomBytes(6).toString("hex")}.tmp`)
      try {
        await mkdir(dir, { recursive: true })
        await writeFile(temp, JSON.stringify({ url, request: body, response }), { flush: true })
        await rename(temp, file)
      } catch {
        await rm(temp, { force: true })
      }
    })
})
