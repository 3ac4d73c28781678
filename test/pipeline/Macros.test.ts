import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import { toMermaid } from "../../src/cli/graph.js"
import { pipelineCacheKeys } from "../../src/dag/Executor.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { expandMacros } from "../../src/pipeline/Macros.js"
import type { Pipeline, PipelineError } from "../../src/pipeline/Pipeline.js"
import { noSourceMap } from "../../src/pipeline/Pipeline.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"

const resolve = (text: string): Either.Either<Pipeline, PipelineError> =>
  Either.flatMap(parseYaml("p.yaml", text), (p) => resolvePipeline(p.value, builtinRegistry, p.source))

const ok = (text: string): Pipeline => {
  const r = resolve(text)
  if (Either.isLeft(r)) assert.fail(r.left.message)
  return r.right
}

const problems = (text: string): string => {
  const r = resolve(text)
  if (Either.isRight(r)) assert.fail("expected problems")
  return r.left.message
}

const header = `name: ban
seed: 4
nodes:
  - id: moons
    kind: dataset
    params: { source: two_moons, examples: 100 }
  - id: teacher
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [8] }, epochs: 1 }
`

const withTeacher = `${header}  - id: ban
    kind: born_again
    inputs: { data: moons, teacher: teacher }
    params:
      generations: 3
      model: { type: mlp, hidden: [4] }
      epochs: 2
      objective: { divergence: forward_kl, temperature: 2, alpha: 0.5 }
      generate: { topk: 1 }
  - id: after
    kind: evaluate
    inputs: { model: ban, data: moons }
`

/** id -> [kind, inputs as "port=node.port"] of a resolved pipeline. */
const wiring = (p: Pipeline) =>
  Object.fromEntries(
    p.nodes.map((n) => [n.id, [n.kind.kind, ...Object.entries(n.inputs).map(([port, ref]) => `${port}=${ref.node}.${ref.port}`).sort()]])
  )

describe("born_again macro", () => {
  it("expands into train, generate, evaluate and ensemble nodes, each generation distilled from the one before", () => {
    const p = ok(withTeacher)
    assert.deepStrictEqual(wiring(p), {
      moons: ["dataset"],
      teacher: ["train", "data=moons.dataset"],
      ban_teacher_soft: ["generate", "data=moons.dataset", "model=teacher.model"],
      ban_gen1: ["train", "data=moons.dataset", "teacher=ban_teacher_soft.soft"],
      ban_gen1_soft: ["generate", "data=moons.dataset", "model=ban_gen1.model"],
      ban_gen1_eval: ["evaluate", "data=moons.dataset", "model=ban_gen1.model", "teacher=teacher.model"],
      ban_gen1_test: ["generate", "data=moons.dataset", "model=ban_gen1.model"],
      ban_gen2: ["train", "data=moons.dataset", "teacher=ban_gen1_soft.soft"],
      ban_gen2_soft: ["generate", "data=moons.dataset", "model=ban_gen2.model"],
      ban_gen2_eval: ["evaluate", "data=moons.dataset", "model=ban_gen2.model", "teacher=ban_gen1.model"],
      ban_gen2_test: ["generate", "data=moons.dataset", "model=ban_gen2.model"],
      ban_gen3: ["train", "data=moons.dataset", "teacher=ban_gen2_soft.soft"],
      ban_gen3_eval: ["evaluate", "data=moons.dataset", "model=ban_gen3.model", "teacher=ban_gen2.model"],
      ban_gen3_test: ["generate", "data=moons.dataset", "model=ban_gen3.model"],
      ban_ensemble: ["ensemble", "a=ban_gen1_test.soft", "b=ban_gen2_test.soft", "c=ban_gen3_test.soft"],
      ban_ensemble_eval: ["evaluate_soft", "soft=ban_ensemble.soft"],
      // `ban` as an input means the last generation's model.
      after: ["evaluate", "data=moons.dataset", "model=ban_gen3.model"]
    })
    const params = (id: string) => p.nodes.find((n) => n.id === id)!.encodedParams as Record<string, any>
    assert.strictEqual(params("ban_gen2").objective.divergence, "forward_kl")
    assert.strictEqual(params("ban_gen2").epochs, 2)
    assert.strictEqual(params("ban_gen1_soft").topk, 1)
    assert.strictEqual(params("ban_gen3_test").split, "test")
    assert.isUndefined(params("ban_gen3_test").topk)
    // Every generation has its own seed; the other nodes keep the pipeline's.
    const seeds = ["ban_gen1", "ban_gen2", "ban_gen3"].map((id) => p.nodes.find((n) => n.id === id)!.seed)
    assert.strictEqual(new Set([...seeds, 4]).size, 4)
    assert.strictEqual(p.nodes.find((n) => n.id === "ban_gen1_eval")!.seed, 4)
  })

  it("without a teacher, generation 1 trains on hard labels and leaves the objective out of its cache key", () => {
    const text = (objective: string) => `${header}  - id: ban
    kind: born_again
    inputs: { data: moons }
    params: { generations: 2, model: { type: mlp, hidden: [4] }, objective: ${objective} }
`
    const p = ok(text("{ divergence: forward_kl, temperature: 2 }"))
    const gen1 = p.nodes.find((n) => n.id === "ban_gen1")!
    assert.deepStrictEqual(Object.keys(gen1.inputs), ["data"])
    // The macro's objective is left out: generation 1 gets train's default (hard labels only).
    assert.strictEqual((gen1.encodedParams as Record<string, any>).objective.divergence, "none")
    assert.deepStrictEqual(wiring(p).ban_gen1_eval, ["evaluate", "data=moons.dataset", "model=ban_gen1.model"])
    const k1 = pipelineCacheKeys(p)
    const k2 = pipelineCacheKeys(ok(text("{ divergence: forward_kl, temperature: 3 }")))
    assert.strictEqual(k1.get("ban_gen1"), k2.get("ban_gen1"))
    assert.notStrictEqual(k1.get("ban_gen2"), k2.get("ban_gen2"))
  })

  it("is deterministic: the same document, or its keys reordered, gives the same cache keys", () => {
    const reordered = withTeacher.replace(
      "generations: 3\n      model: { type: mlp, hidden: [4] }\n      epochs: 2",
      "epochs: 2\n      model: { hidden: [4], type: mlp }\n      generations: 3"
    )
    assert.notStrictEqual(reordered, withTeacher)
    assert.deepStrictEqual([...pipelineCacheKeys(ok(withTeacher))], [...pipelineCacheKeys(ok(reordered))])
  })

  it("ensembles more than four generations exactly, through a weighted chain", () => {
    const p = ok(`${header}  - id: ban
    kind: born_again
    inputs: { data: moons }
    params: { generations: 9, model: { type: mlp, hidden: [4] } }
`)
    const w = wiring(p)
    assert.deepStrictEqual(w.ban_ensemble_part1, ["ensemble", "a=ban_gen1_test.soft", "b=ban_gen2_test.soft", "c=ban_gen3_test.soft", "d=ban_gen4_test.soft"])
    assert.deepStrictEqual(w.ban_ensemble_part2, ["ensemble", "a=ban_ensemble_part1.soft", "b=ban_gen5_test.soft", "c=ban_gen6_test.soft", "d=ban_gen7_test.soft"])
    assert.deepStrictEqual(w.ban_ensemble, ["ensemble", "a=ban_ensemble_part2.soft", "b=ban_gen8_test.soft", "c=ban_gen9_test.soft"])
    const weights = (id: string) => (p.nodes.find((n) => n.id === id)!.encodedParams as { weights?: Array<number> }).weights
    assert.isUndefined(weights("ban_ensemble_part1"))
    assert.deepStrictEqual(weights("ban_ensemble_part2"), [4, 1, 1, 1])
    assert.deepStrictEqual(weights("ban_ensemble"), [7, 1, 1])
  })

  it("one generation has no ensemble", () => {
    const p = ok(`${header}  - id: ban
    kind: born_again
    inputs: { data: moons }
    params: { generations: 1, model: { type: mlp, hidden: [4] } }
`)
    assert.deepStrictEqual(p.nodes.map((n) => n.id).filter((id) => id.startsWith("ban")), ["ban_gen1", "ban_gen1_eval", "ban_gen1_test"])
  })

  it("reports the macro's problems once, at the macro node's lines", () => {
    const message = problems(`${header}  - id: ban
    kind: born_again
    inputs: { data: moons, teachr: teacher }
    params:
      generations: 0
      model: { type: mlp, hiden: [4] }
      epocs: 2
      generate: { topk: 0 }
      ensemble: { weights: [1, 2] }
`)
    assert.include(message, "p.yaml:15:7: node 'ban' (born_again): param 'generations' must be an integer from 1 to 16, got 0")
    assert.include(message, "p.yaml:19:19: node 'ban' (born_again): param 'ensemble.weights' is not allowed")
    assert.include(message, "p.yaml:13:28: node 'ban' (born_again): unknown input 'teachr'; inputs of born_again are: 'data' (Dataset) and 'teacher' (Model, optional)")
    const params = problems(`${header}  - id: ban
    kind: born_again
    inputs: { data: moons }
    params:
      generations: 2
      model: { type: mlp, hiden: [4] }
      epocs: 2
      generate: { topk: 0 }
`)
    assert.include(params, "p.yaml:16:27: node 'ban' (born_again): unknown param 'model.hiden' (did you mean 'hidden'?)")
    assert.include(params, "p.yaml:17:7: node 'ban' (born_again): unknown param 'epocs' (did you mean 'epochs'?)")
    assert.include(params, "p.yaml:18:19: node 'ban' (born_again): param 'generate.topk'")
    // Reported once, not once per generation.
    assert.strictEqual(params.split("'epocs'").length - 1, 1)
    assert.include(problems(`${header}  - id: ban
    kind: born_again
    params: { model: { type: mlp, hidden: [4] } }
`), "p.yaml:13:5: node 'ban' (born_again): missing required param 'generations'")
  })

  it("problems found in the expanded nodes point at the macro node", () => {
    const message = problems(`${header}  - id: ban
    kind: born_again
    inputs: { data: moon, teacher: moons }
    params: { generations: 2, model: { type: mlp, hidden: [4] } }
  - id: ban_gen2
    kind: dataset
    params: { source: two_moons }
`)
    // An unknown dataset named by the macro's input: reported at that input, for each node that reads it.
    assert.include(message, "p.yaml:13:15: node 'ban_gen1': input 'data' refers to unknown node 'moon' (did you mean 'moons'?)")
    // A Dataset given as the teacher: reported at the macro's teacher input.
    assert.include(message, "p.yaml:13:27: node 'ban_teacher_soft': input 'model' takes Model but 'moons.dataset' (dataset) gives Dataset")
    // A node id the expansion also makes.
    assert.match(message, /p\.yaml:15:\d+: duplicate node id 'ban_gen2' \(first defined at line 11\)/)
  })

  it("`distillery graph` shows the expanded nodes", () => {
    const mermaid = toMermaid(ok(withTeacher))
    assert.include(mermaid, 'ban_gen2["ban_gen2<br/><i>train</i>"]')
    assert.include(mermaid, "ban_gen1_soft -->|soft → teacher| ban_gen2")
    assert.notInclude(mermaid, "born_again")
  })

  it("leaves documents without macros untouched", () => {
    const doc = { name: "x", nodes: [{ id: "a", kind: "dataset" }] }
    const source = noSourceMap("x.yaml")
    const expansion = expandMacros(doc, source)
    assert.strictEqual(expansion.doc, doc)
    assert.strictEqual(expansion.source, source)
  })
})
