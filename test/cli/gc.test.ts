import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { collectGarbage, formatGcReport } from "../../src/cli/gc.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { CacheKey } from "../../src/domain/Ids.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { executions, testRegistry } from "../fixtures/kinds.js"

const pipeline = Either.getOrThrow(
  Either.flatMap(
    parseYaml("p.yaml", `
name: collected
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: sum, kind: add, inputs: { a: one } }
`),
    (p) => resolvePipeline(p.value, testRegistry, p.source)
  )
)

const dir = mkdtempSync(join(tmpdir(), "distillery-gc-"))
const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(
      ArtifactStore.layerFileSystem(join(dir, "store")),
      ResultsStore.layer(join(dir, "results.duckdb")),
      TfBackend.layer("cpu"),
      Reporter.layerSilent
    )
  )
)

const stray = "f".repeat(64) as CacheKey

describe("collectGarbage", () => {
  it.live("a dry run lists what no recorded run references; a real one removes it and keeps the rest", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      yield* executor.run(pipeline)
      const artifacts = yield* ArtifactStore
      // A result whose run is not in the results store, and bytes that lost their key.
      yield* artifacts.put(stray, new Uint8Array(1000).fill(7), { node: "gone", kind: "constant" })
      const orphan = yield* artifacts.put("e".repeat(64) as CacheKey, new Uint8Array(24).fill(9), { node: "lost", kind: "add" })
      yield* artifacts.removeKey("e".repeat(64) as CacheKey)

      const preview = yield* collectGarbage({ dryRun: true })
      assert.deepStrictEqual(preview.keys.map((k) => [k.key, k.node]), [[stray, "gone"]])
      assert.strictEqual(preview.artifacts.length, 2)
      assert.strictEqual(preview.bytes, 1024)
      assert.include(formatGcReport(preview), "would remove 1 cache key and 2 artifacts (1.0 KiB); kept 2 keys and 2 artifacts")
      assert.include(formatGcReport(preview), "key ffffffffffff…  gone (constant)")
      // Nothing was removed.
      assert.isTrue(yield* artifacts.has(stray))
      assert.strictEqual((yield* artifacts.artifacts()).length, 4)

      const real = yield* collectGarbage({ dryRun: false })
      assert.include(formatGcReport(real), "removed 1 cache key and 2 artifacts (1.0 KiB)")
      assert.isFalse(yield* artifacts.has(stray))
      assert.notInclude((yield* artifacts.artifacts()).map((a) => a.artifactId), orphan.artifactId)
      assert.strictEqual((yield* collectGarbage({ dryRun: true })).keys.length, 0)
      // What recorded runs reference is still served from the cache.
      executions.length = 0
      const again = yield* executor.run(pipeline)
      assert.deepStrictEqual(again.nodes.map((n) => n.status), ["cached", "cached"])
      assert.deepStrictEqual(executions, [])
    }).pipe(Effect.provide(TestLayer))
  )
})
