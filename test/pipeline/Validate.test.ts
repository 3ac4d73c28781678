import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import { pipelineCacheKeys } from "../../src/dag/Executor.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import type { KindRegistry } from "../../src/nodes/Registry.js"
import type { PipelineError } from "../../src/pipeline/Pipeline.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"
import { testRegistry } from "../fixtures/kinds.js"

const load = (text: string, registry: KindRegistry = testRegistry) =>
  Either.flatMap(parseYaml("p.yaml", text), (parsed) => resolvePipeline(parsed.value, registry, parsed.source))

const errorOf = (text: string, registry?: KindRegistry): PipelineError => {
  const result = load(text, registry)
  if (Either.isRight(result)) throw new Error("expected the pipeline to be rejected")
  return result.left as PipelineError
}

const ok = `
name: t
nodes:
  - id: one
    kind: constant
    params: { value: 1 }
  - id: sum
    kind: add
    inputs: { a: one, b: one.out }
`

describe("pipeline validation", () => {
  it("resolves a valid pipeline in dependency order", () => {
    const result = load(ok)
    assert.isTrue(Either.isRight(result))
    if (Either.isRight(result)) {
      assert.deepStrictEqual(result.right.nodes.map((n) => n.id), ["one", "sum"])
      assert.deepStrictEqual(result.right.nodes[1]!.inputs, { a: { node: "one", port: "out" }, b: { node: "one", port: "out" } })
    }
  })

  it("reports YAML syntax errors with line and column", () => {
    const e = errorOf("name: t\nnodes:\n  - id: a\n    kind: [unclosed\n")
    assert.strictEqual(e._tag, "PipelineError")
    assert.match(e.message, /p\.yaml:\d+:\d+: YAML: /)
  })

  it("reports duplicate YAML keys", () => {
    const e = errorOf("name: t\nname: u\nnodes: []\n")
    assert.match(e.message, /p\.yaml:2:1: YAML: Map keys must be unique/)
  })

  it("suggests the nearest kind and lists all kinds", () => {
    const e = errorOf("name: t\nnodes:\n  - id: one\n    kind: constnt\n    params: { value: 1 }\n")
    assert.include(e.message, "p.yaml:4:5: node 'one': unknown kind 'constnt' (did you mean 'constant'?); kinds are: 'constant', 'add', 'slow', 'boom', 'bulk' or 'total'")
  })

  it("reports unknown, missing and ill-typed params at their line", () => {
    const e = errorOf("name: t\nnodes:\n  - id: one\n    kind: constant\n    params:\n      valu: 1\n  - id: two\n    kind: constant\n    params:\n      value: high\n")
    assert.include(e.message, "p.yaml:6:7: node 'one' (constant): unknown param 'valu' (did you mean 'value'?)")
    assert.include(e.message, "node 'one' (constant): missing required param 'value'")
    assert.match(e.message, /p\.yaml:10:7: node 'two' \(constant\): param 'value': expected a number, got "high"/)
    assert.strictEqual(e.issues.length, 3)
  })

  it("reports duplicate ids with the first definition's line", () => {
    const e = errorOf("name: t\nnodes:\n  - id: one\n    kind: constant\n    params: { value: 1 }\n  - id: one\n    kind: constant\n    params: { value: 2 }\n")
    assert.include(e.message, "p.yaml:6:5: duplicate node id 'one' (first defined at line 3)")
  })

  it("reports unknown nodes, unknown ports, missing inputs and type mismatches", () => {
    const registry = builtinRegistry
    const e = errorOf(
      `name: t
nodes:
  - id: data
    kind: dataset
    params: { source: two_moons }
  - id: model
    kind: train
    inputs: { data: dta, techer: data }
    params: { model: { type: mlp, hidden: [4] } }
  - id: gen
    kind: generate
    inputs: { model: data, data: data }
  - id: ev
    kind: evaluate
    inputs: { data: data }
`,
      registry
    )
    assert.include(e.message, "p.yaml:8:15: node 'model': input 'data' refers to unknown node 'dta' (did you mean 'data'?)")
    assert.include(e.message, "p.yaml:8:26: node 'model' (train): unknown input 'techer' (did you mean 'teacher'?); inputs of train are: 'data', 'teacher', 'hint' or 'relation'")
    assert.include(e.message, "p.yaml:12:15: node 'gen': input 'model' takes Model but 'data.dataset' (dataset) gives Dataset")
    assert.include(e.message, "node 'ev' (evaluate): missing input 'model' (Model: the model to evaluate)")
  })

  it("prints a cycle as a path", () => {
    const e = errorOf("name: t\nnodes:\n  - id: a\n    kind: add\n    inputs: { a: b }\n  - id: b\n    kind: add\n    inputs: { a: a }\n")
    assert.match(e.message, /cycle: (a -> b -> a|b -> a -> b) \(each node needs the next\)/)
  })

  it("checks the document's own keys", () => {
    const e = errorOf("name: t\nnodez: []\n")
    assert.include(e.message, "unknown key 'nodez' (did you mean 'nodes'?)")
    assert.include(e.message, "missing required key 'nodes'")
  })

  it("gives the same cache keys whatever the key order or spelled-out defaults", () => {
    const a = load("name: t\nnodes:\n  - id: one\n    kind: constant\n    params: { value: 1 }\n  - id: s\n    kind: add\n    inputs: { a: one }\n")
    const b = load("nodes:\n  - kind: constant\n    params: { label: none, value: 1 }\n    id: one\n  - id: s\n    params: { extra: 0 }\n    inputs: { a: one.out }\n    kind: add\nname: t\n")
    const c = load("name: t\nnodes:\n  - id: one\n    kind: constant\n    params: { value: 2 }\n  - id: s\n    kind: add\n    inputs: { a: one }\n")
    const keys = (r: typeof a) => (Either.isRight(r) ? [...pipelineCacheKeys(r.right).values()] : [])
    assert.deepStrictEqual(keys(a), keys(b))
    assert.notDeepEqual(keys(a)[0], keys(c)[0])
    assert.notDeepEqual(keys(a)[1], keys(c)[1])
  })
})
