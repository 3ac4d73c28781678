import { assert, describe, it } from "@effect/vitest"
import { downstreamOf, topologicalOrder } from "../../src/dag/Graph.js"
import { didYouMean, nearest } from "../../src/domain/Suggest.js"

const deps = (edges: Record<string, Array<string>>) => new Map(Object.entries(edges))

describe("Graph", () => {
  it("orders dependencies first, ties in declaration order", () => {
    const result = topologicalOrder(deps({ c: ["a", "b"], a: [], b: ["a"], d: [] }))
    assert.deepStrictEqual(result, { _tag: "Order", order: ["a", "b", "c", "d"] })
  })

  it("finds a cycle and returns its path", () => {
    const result = topologicalOrder(deps({ a: ["c"], b: ["a"], c: ["b"], d: [] }))
    assert.strictEqual(result._tag, "Cycle")
    if (result._tag === "Cycle") {
      assert.strictEqual(result.cycle[0], result.cycle[result.cycle.length - 1])
      assert.sameMembers(result.cycle.slice(0, -1), ["a", "b", "c"])
    }
  })

  it("finds a self-loop", () => {
    assert.deepStrictEqual(topologicalOrder(deps({ a: ["a"] })), { _tag: "Cycle", cycle: ["a", "a"] })
  })

  it("handles a 10,000-node chain without overflowing the stack", () => {
    const edges: Record<string, Array<string>> = {}
    for (let i = 0; i < 10_000; i++) edges[`n${i}`] = i === 0 ? [] : [`n${i - 1}`]
    const result = topologicalOrder(deps(edges))
    assert.strictEqual(result._tag, "Order")
    if (result._tag === "Order") assert.strictEqual(result.order[9_999], "n9999")
  })

  it("collects everything downstream of a node", () => {
    const d = deps({ a: [], b: ["a"], c: ["b"], x: [] })
    assert.sameMembers([...downstreamOf(d, ["b"])], ["b", "c"])
    assert.sameMembers([...downstreamOf(d, ["a"])], ["a", "b", "c"])
  })

  it("suggests the nearest name only when it is close", () => {
    assert.strictEqual(nearest("trian", ["train", "dataset", "evaluate"]), "train")
    assert.strictEqual(nearest("xyzzy", ["train", "dataset"]), undefined)
    assert.strictEqual(didYouMean("evalute", ["evaluate"]), " (did you mean 'evaluate'?)")
  })
})
