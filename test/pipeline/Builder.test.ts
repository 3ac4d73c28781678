import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mnistKd } from "../../examples/01_mnist_kd_as_code/pipeline.js"
import { lmKd } from "../../examples/02_lm_kd_as_code/pipeline.js"
import { pipelineCacheKeys } from "../../src/dag/Executor.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { DatasetKind } from "../../src/nodes/dataset.js"
import { EvaluateKind } from "../../src/nodes/evaluate.js"
import { TrainKind } from "../../src/nodes/train.js"
import { pipeline } from "../../src/pipeline/Builder.js"
import { loadPipelineFile, loadSweepFile } from "../../src/pipeline/Yaml.js"

describe("pipeline builder", () => {
  it.effect("the TypeScript and YAML forms of mnist-kd get the same cache keys", () =>
    Effect.gen(function* () {
      const fromYaml = yield* loadPipelineFile("pipelines/mnist-kd.yaml", builtinRegistry)
      const fromCode = Either.getOrThrow(mnistKd().build(builtinRegistry))
      const yamlKeys = pipelineCacheKeys(fromYaml)
      const codeKeys = pipelineCacheKeys(fromCode)
      assert.strictEqual(yamlKeys.size, 8)
      assert.deepStrictEqual([...codeKeys.entries()].sort(), [...yamlKeys.entries()].sort())
    })
  )

  it.effect("the TypeScript and YAML forms of lm-kd get the same trials and cache keys", () =>
    Effect.gen(function* () {
      const fromYaml = yield* loadSweepFile("pipelines/lm-kd.yaml", builtinRegistry)
      const fromCode = Either.getOrThrow(lmKd().buildSweep(builtinRegistry))
      assert.deepStrictEqual(fromCode.seeds, [1, 2, 3])
      assert.strictEqual(fromCode.baselineNode, "eval_scratch")
      assert.strictEqual(fromCode.trials.length, fromYaml.trials.length)
      fromYaml.trials.forEach((trial, i) => {
        const yamlKeys = pipelineCacheKeys(trial.pipeline)
        assert.strictEqual(yamlKeys.size, 25)
        assert.deepStrictEqual([...pipelineCacheKeys(fromCode.trials[i]!.pipeline).entries()].sort(), [...yamlKeys.entries()].sort())
      })
    })
  )

  it("runs the same checks as the YAML loader", () => {
    const p = pipeline({ name: "bad" })
    const data = p.add("data", DatasetKind, { params: { source: "two_moons" } })
    p.add("model", TrainKind, { inputs: { data: data.dataset }, params: { model: { type: "mlp", hidden: [-1] } } as never })
    const result = p.build(builtinRegistry)
    assert.isTrue(Either.isLeft(result))
    if (Either.isLeft(result)) {
      assert.include(result.left.message, "<code:bad>: node 'model' (train): param 'model.hidden[0]'")
    }
  })

  it("catches wrong wiring at compile time", () => {
    const p = pipeline({ name: "typed" })
    const data = p.add("data", DatasetKind, { params: { source: "two_moons" } })
    const model = p.add("model", TrainKind, { inputs: { data: data.dataset }, params: { model: { type: "mlp", hidden: [4] } } })
    // @ts-expect-error a Model output cannot feed the Dataset input `data`
    p.add("wrong", EvaluateKind, { inputs: { model: model.model, data: model.model } })
    // @ts-expect-error a required input is missing
    p.add("missing", EvaluateKind, { inputs: { data: data.dataset } })
    assert.strictEqual(p.doc().nodes.length, 4)
  })
})
