import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeFileClaims } from "../../src/cache/Claims.js"

const key = (c: string) => c.repeat(64)

const makeTempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "distillery-claims-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** The pid of a process that has exited. */
const deadPid = (): number => spawnSync(process.execPath, ["-e", "0"]).pid!

const claimFile = (dir: string, k: string, pid: number, hostname = os.hostname()) =>
  fs.writeFileSync(
    path.join(dir, `${k}.json`),
    JSON.stringify({ key: k, node: "teacher", pid, hostname, startedAt: "2026-01-01T00:00:00.000Z", token: `t${pid}` })
  )

describe("Claims (file)", () => {
  it.scoped("one claim per key: a second is refused while the first is held, granted once it is released", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const claims = yield* makeFileClaims(dir)
      const first = yield* claims.tryClaim(key("a"), "teacher")
      assert.strictEqual(first._tag, "Claimed")
      const second = yield* claims.tryClaim(key("a"), "teacher")
      assert.strictEqual(second._tag, "Held")
      if (second._tag === "Held") {
        assert.strictEqual(second.holder.pid, process.pid)
        assert.strictEqual(second.holder.node, "teacher")
      }
      assert.strictEqual((yield* claims.tryClaim(key("b"), "student"))._tag, "Claimed")
      if (first._tag === "Claimed") yield* first.release
      assert.isFalse(fs.existsSync(path.join(dir, `${key("a")}.json`)))
      assert.strictEqual((yield* claims.tryClaim(key("a"), "teacher"))._tag, "Claimed")
    }))

  it.scoped("a claim whose process is dead is stale and taken over", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const claims = yield* makeFileClaims(dir)
      const dead = deadPid()
      claimFile(dir, key("c"), dead)
      const attempt = yield* claims.tryClaim(key("c"), "teacher")
      assert.strictEqual(attempt._tag, "Claimed")
      const now = JSON.parse(fs.readFileSync(path.join(dir, `${key("c")}.json`), "utf8")) as { pid: number }
      assert.strictEqual(now.pid, process.pid)
    }))

  it.scoped("a live process's claim is respected; one from another host only once it is old", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const claims = yield* makeFileClaims(dir)
      // The parent process (the test runner) is alive.
      claimFile(dir, key("d"), process.ppid)
      assert.strictEqual((yield* claims.tryClaim(key("d"), "teacher"))._tag, "Held")
      claimFile(dir, key("e"), deadPid(), "another-host")
      assert.strictEqual((yield* claims.tryClaim(key("e"), "teacher"))._tag, "Held")
      const old = new Date(Date.now() - 10 * 60_000)
      fs.utimesSync(path.join(dir, `${key("e")}.json`), old, old)
      assert.strictEqual((yield* claims.tryClaim(key("e"), "teacher"))._tag, "Claimed")
    }))

  it.scoped("releasing leaves alone a claim that is no longer its own", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const claims = yield* makeFileClaims(dir)
      const mine = yield* claims.tryClaim(key("f"), "teacher")
      claimFile(dir, key("f"), process.ppid)
      if (mine._tag === "Claimed") yield* mine.release
      assert.isTrue(fs.existsSync(path.join(dir, `${key("f")}.json`)))
    }))
})
