/**
 * `distillery init`: the scaffolded pipeline loads and runs as written, its TypeScript version has the
 * YAML's cache keys, its schema line points at the grammar, and a folder that holds anything is refused.
 */
import { assert, describe, it } from "@effect/vitest"
import { NodeContext } from "@effect/platform-node"
import { Effect, Either, Layer } from "effect"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { installation, referenceFrom, scaffold, scaffoldFiles } from "../../src/cli/init.js"
import type { PipelineBuilder } from "../../src/index.js"
import {
  ArtifactStore,
  builtinRegistry,
  Executor,
  loadPipelineFile,
  pipelineCacheKeys,
  Reporter,
  ResultsStore,
  TfBackend
} from "../../src/index.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("cpu"), Reporter.layerSilent)
  ),
  Layer.merge(NodeContext.layer)
)

describe("distillery init", () => {
  it.live("scaffolds a pipeline that loads, runs, and has the cache keys of its TypeScript version", () =>
    Effect.gen(function* () {
      const dir = join(mkdtempSync(join(tmpdir(), "distillery-init-")), "my-experiment")
      const written = yield* scaffold(dir)
      assert.deepStrictEqual(written.map((p) => p.slice(dir.length + 1)), ["pipeline.yaml", "pipeline.ts", "README.md"])

      // Outside the repository the schema line is an absolute path to the grammar's schema.
      const yaml = readFileSync(join(dir, "pipeline.yaml"), "utf8")
      const schemaRef = /^# yaml-language-server: \$schema=(.+)$/m.exec(yaml.split("\n")[0]!)?.[1]
      assert.strictEqual(schemaRef, resolve("pipeline.schema.json"))

      const pipeline = yield* loadPipelineFile(join(dir, "pipeline.yaml"), builtinRegistry)
      assert.strictEqual(pipeline.name, "my-experiment")
      const result = yield* (yield* Executor).run(pipeline)
      assert.deepStrictEqual(result.nodes.map((n) => n.status), pipeline.nodes.map(() => "executed"))
      const accuracy = (id: string) => {
        const metrics = result.nodes.find((n) => n.id === id)?.result?.outputs.metrics
        return metrics?._tag === "Metrics" ? metrics.values.accuracy : -1
      }
      assert.isAbove(accuracy("eval_teacher")!, 0.8)
      assert.isAbove(accuracy("eval_student")!, 0.7)

      const code = (yield* Effect.promise(() => import(pathToFileURL(join(dir, "pipeline.ts")).href))) as { experiment: () => PipelineBuilder }
      const built = Either.getOrThrow(code.experiment().build(builtinRegistry))
      assert.deepStrictEqual([...pipelineCacheKeys(built).entries()].sort(), [...pipelineCacheKeys(pipeline).entries()].sort())
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("refuses a folder that holds anything, and fills an empty one", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "distillery-init-"))
      writeFileSync(join(dir, "notes.txt"), "mine\n")
      const refused = yield* Effect.flip(scaffold(dir))
      assert.strictEqual(refused._tag, "FolderNotEmptyError")
      assert.include(refused.message, `${dir} is not empty (it holds notes.txt)`)
      assert.strictEqual(readFileSync(join(dir, "notes.txt"), "utf8"), "mine\n")
      assert.isFalse(existsSync(join(dir, "pipeline.yaml")))

      const empty = join(dir, "empty")
      mkdirSync(empty)
      yield* scaffold(empty)
      assert.isTrue(existsSync(join(empty, "README.md")))
    }).pipe(Effect.provide(NodeContext.layer))
  )

  it("refers to the schema and the SDK relatively inside the repository, absolutely outside it", () => {
    const root = resolve(".")
    const install = installation()
    assert.strictEqual(install.schemaFile, join(root, "pipeline.schema.json"))
    assert.strictEqual(referenceFrom(join(root, "experiments", "moons"), install.schemaFile, root), "../../pipeline.schema.json")
    assert.strictEqual(referenceFrom(join(root, "experiments", "moons"), install.sdkModule, root), "../../src/index.js")
    assert.strictEqual(referenceFrom("/elsewhere/moons", install.schemaFile, root), install.schemaFile)
    const files = new Map(scaffoldFiles(join(root, "moons"), install, root))
    assert.match(files.get("pipeline.yaml")!, /^# yaml-language-server: \$schema=\.\.\/pipeline\.schema\.json\n/)
    assert.include(files.get("pipeline.ts")!, `from "../src/index.js"`)
  })
})
