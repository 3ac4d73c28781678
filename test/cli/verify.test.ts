/**
 * `distillery verify` on a real store (two-moons-kd run through the CLI), damaged four ways: a flipped
 * byte, a truncated artifact, an artifact whose bytes were deleted, a key file that does not parse, and
 * a run row left `running`. verify names each and exits 5; `--repair` mends them; verify is then clean;
 * and a `run` recomputes exactly the damaged nodes and ends with the same metrics. In-process: bytes
 * that hash right but do not decode, and corrupt bytes no key names.
 */
import { spawnSync } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { existsSync, mkdtempSync, readdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { encodeArtifact } from "../../src/cache/Codec.js"
import { formatVerifyReport, remainingProblems, verifyStore } from "../../src/cli/verify.js"
import type { CacheKey, RunId } from "../../src/domain/Ids.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { cli } from "../fixtures/cli.js"

const store = mkdtempSync(join(tmpdir(), "distillery-verify-"))

/** node id -> its key and artifact id, from the key files. */
const keysByNode = () =>
  new Map(readdirSync(join(store, "keys")).filter((n) => n.endsWith(".json")).map((n) => {
    const k = JSON.parse(readFileSync(join(store, "keys", n), "utf8")) as { key: string; artifactId: string; node: string }
    return [k.node, k] as const
  }))

const artifactPath = (id: string) => join(store, "artifacts", id.slice(0, 2), id)

const json = async (sql: string): Promise<Array<Record<string, unknown>>> => {
  const r = await cli("query", sql, "--format", "json", "--store", store)
  assert.strictEqual(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>
}

const LAST_RUN = "(SELECT run_id FROM runs WHERE status = 'succeeded' ORDER BY started_at DESC LIMIT 1)"

/** The last run's final quality metrics (not timings). */
const finalMetrics = () =>
  json(`SELECT node_id, name, value FROM metrics WHERE run_id = ${LAST_RUN} AND step IS NULL
        AND name IN ('accuracy', 'errors', 'nll', 'ece', 'agreement', 'fidelity_kl') ORDER BY node_id, name`)

const STALE_RUN = "20261201-000000-dead" as RunId

describe("distillery verify", () => {
  it("names every kind of damage, --repair mends it, and a run recomputes exactly what was lost", async () => {
    const first = await cli("run", "pipelines/two-moons-kd.yaml", "--store", store, "--workers", "0")
    assert.strictEqual(first.code, 0, first.stderr)
    const before = await finalMetrics()
    assert.isAbove(before.length, 6)

    const clean = await cli("verify", "--store", store)
    assert.strictEqual(clean.code, 0, clean.stdout + clean.stderr)
    assert.include(clean.stdout, "checked 9 artifacts, 9 keys, 9 recorded results of 1 run: no problems")

    // Damage: a flipped byte, a truncated file, bytes deleted, a key file cut short, a run left running.
    const keys = keysByNode()
    const student = keys.get("student")!
    const scratch = keys.get("scratch")!
    const evalTeacher = keys.get("eval_teacher")!
    const evalScratch = keys.get("eval_scratch")!
    const bytes = readFileSync(artifactPath(student.artifactId))
    bytes[bytes.length - 5] ^= 0x01
    writeFileSync(artifactPath(student.artifactId), bytes)
    truncateSync(artifactPath(scratch.artifactId), 100)
    unlinkSync(artifactPath(evalTeacher.artifactId))
    writeFileSync(join(store, "keys", `${evalScratch.key}.json`), "{\"key\": \"")
    await Effect.runPromise(
      Effect.flatMap(ResultsStore, (results) =>
        results.startRun({ runId: STALE_RUN, pipeline: "two-moons-kd", pipelinePath: "pipelines/two-moons-kd.yaml", backend: "cpu" }).pipe(
          // Left running by a process that is gone (this one is alive).
          Effect.zipRight(results.query("UPDATE runs SET pid = $1 WHERE run_id = $2", [spawnSync(process.execPath, ["-e", "0"]).pid!, STALE_RUN]))
        )
      ).pipe(Effect.provide(ResultsStore.layer(join(store, "results.duckdb"))))
    )

    const found = await cli("verify", "--store", store)
    assert.strictEqual(found.code, 5, found.stdout + found.stderr)
    const rowOf = (out: string, kind: string, where: string) =>
      out.split("\n").find((l) => l.startsWith(kind) && l.includes(where))
    assert.isDefined(rowOf(found.stdout, "corrupt artifact", `${student.artifactId.slice(0, 12)}… (student)`), found.stdout)
    assert.isDefined(rowOf(found.stdout, "corrupt artifact", `${scratch.artifactId.slice(0, 12)}… (scratch)`), found.stdout)
    assert.include(rowOf(found.stdout, "corrupt artifact", "(scratch)"), "sha256 mismatch: 100 bytes")
    assert.isDefined(rowOf(found.stdout, "key without artifact", "(eval_teacher)"), found.stdout)
    assert.isDefined(rowOf(found.stdout, "corrupt key", evalScratch.key), found.stdout)
    assert.include(rowOf(found.stdout, "run left running", STALE_RUN), "mark it interrupted")
    assert.include(found.stdout, "5 problems; `distillery verify --repair` mends them")
    assert.include(found.stderr, "error: 5 problems in the store; `distillery verify --repair` mends them")
    // Nothing was touched without --repair.
    assert.isTrue(existsSync(artifactPath(student.artifactId)))
    assert.isFalse(existsSync(join(store, "quarantine")))

    const repaired = await cli("verify", "--repair", "--store", store)
    assert.strictEqual(repaired.code, 0, repaired.stdout + repaired.stderr)
    assert.include(repaired.stdout, "5 problems, 5 repaired")
    assert.include(rowOf(repaired.stdout, "corrupt artifact", "(student)"), "quarantine it and drop its keys; the next run recomputes it: done")
    assert.include(repaired.stdout, "quarantine log (quarantine/events.jsonl): 2 events")
    assert.isFalse(existsSync(artifactPath(student.artifactId)))
    assert.isFalse(existsSync(join(store, "keys", `${evalTeacher.key}.json`)))
    assert.deepStrictEqual(await json(`SELECT status FROM runs WHERE run_id = '${STALE_RUN}'`), [{ status: "interrupted" }])

    // History is kept: the four results are listed as gone, to be recomputed, and are no problem.
    const after = await cli("verify", "--store", store)
    assert.strictEqual(after.code, 0, after.stdout + after.stderr)
    for (const node of ["student", "scratch", "eval_teacher", "eval_scratch"]) {
      assert.isDefined(rowOf(after.stdout, "results without artifacts", `node ${node} `), after.stdout)
    }
    assert.include(after.stdout, "no problems; 4 results without artifacts (`distillery run` recomputes them)")

    const again = await cli("run", "pipelines/two-moons-kd.yaml", "--store", store, "--workers", "0")
    assert.strictEqual(again.code, 0, again.stderr)
    const executed = await json(`SELECT node_id FROM nodes WHERE run_id = ${LAST_RUN} AND status = 'executed' ORDER BY node_id`)
    assert.deepStrictEqual(executed.map((r) => r.node_id), ["eval_scratch", "eval_teacher", "scratch", "student"])
    assert.deepStrictEqual(await finalMetrics(), before)

    const healed = await cli("verify", "--store", store)
    assert.strictEqual(healed.code, 0, healed.stdout + healed.stderr)
    assert.include(healed.stdout, "9 recorded results of 2 runs: no problems")
    assert.notInclude(healed.stdout, "results without artifacts")
  })
})

describe("verifyStore", () => {
  it.effect("quarantines bytes that hash right but do not decode, and removes corrupt bytes no key names", () =>
    Effect.gen(function*() {
      const artifacts = yield* ArtifactStore
      const good = yield* artifacts.put("a".repeat(64) as CacheKey, encodeArtifact({ w: new Float32Array([1, 2]) }), { node: "good", kind: "train" })
      yield* artifacts.put("b".repeat(64) as CacheKey, new Uint8Array([1, 2, 3]), { node: "garbled", kind: "train" })
      const orphan = yield* artifacts.put("c".repeat(64) as CacheKey, encodeArtifact([1]), { node: "gone", kind: "dataset" })
      yield* artifacts.removeKey("c".repeat(64) as CacheKey)
      Option.getOrThrow(yield* artifacts.readArtifact(orphan.artifactId))[0] ^= 0xff // the memory store's own array

      const found = yield* verifyStore({ repair: false })
      assert.deepStrictEqual(found.findings.map((f) => [f.kind, f.where.split(" (")[1] ?? f.where, f.problem]), [
        ["undecodable artifact", "garbled)", true],
        ["corrupt artifact", `artifact ${orphan.artifactId.slice(0, 12)}…`, true]
      ])
      assert.strictEqual(remainingProblems(found), 2)
      assert.include(formatVerifyReport(found), "remove it (no key names it)")

      const repaired = yield* verifyStore({ repair: true })
      assert.strictEqual(remainingProblems(repaired), 0)
      assert.deepStrictEqual(repaired.quarantined.map((e) => [e.node, e.reason.split(":")[0]]), [["garbled", "does not decode"]])
      assert.deepStrictEqual((yield* artifacts.artifacts()).map((a) => a.artifactId), [good.artifactId])
      const after = yield* verifyStore({ repair: false })
      assert.deepStrictEqual(after.findings, [])
      assert.include(formatVerifyReport(after), "checked 1 artifact, 1 key, 0 recorded results of 0 runs: no problems")
    }).pipe(Effect.provide(Layer.merge(ArtifactStore.layerMemory, ResultsStore.layerMemory))))
})
