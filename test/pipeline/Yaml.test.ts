/**
 * Every error the YAML parser can raise is a PipelineError with file:line:column, never a thrown
 * exception: syntax errors, duplicate keys, tabs, bad escapes, unresolved aliases, alias bombs.
 */
import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import { PipelineError } from "../../src/pipeline/Pipeline.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"

const errorOf = (text: string): PipelineError => {
  const parsed = parseYaml("p.yaml", text)
  assert.isTrue(Either.isLeft(parsed), "expected a PipelineError")
  const error = (parsed as Either.Left<PipelineError, unknown>).left
  assert.instanceOf(error, PipelineError)
  return error
}

/** 9 levels of 9 aliases each: 9^9 values if expanded. */
const aliasBomb = (() => {
  let text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
  let previous = "a"
  for (const name of "bcdefghi") {
    text += `${name}: &${name} [${Array(9).fill(`*${previous}`).join(", ")}]\n`
    previous = name
  }
  return text
})()

describe("parseYaml", () => {
  it("an alias to no anchor is located and says what to write", () => {
    const e = errorOf("name: t\nnodes:\n  - id: a\n    kind: *missing\n")
    assert.include(e.message, "p.yaml:4:11: YAML: alias *missing names no anchor set before it")
  })

  it("an alias used before its anchor is located too", () => {
    const e = errorOf("a: [*later]\nb: &later 1\n")
    assert.include(e.message, "p.yaml:1:5: YAML: alias *later")
  })

  it("an alias bomb is refused before it expands", () => {
    const e = errorOf(aliasBomb)
    assert.include(e.message, "p.yaml:2:")
    assert.include(e.message, "alias bomb")
  })

  it("syntax errors keep their positions: duplicate keys, tabs, bad escapes, unclosed brackets", () => {
    assert.include(errorOf("a: 1\na: 2\n").message, "p.yaml:2:1: YAML: Map keys must be unique")
    assert.include(errorOf("a:\n\tb: 1\n").message, "p.yaml:2:1: YAML: Tabs are not allowed as indentation")
    assert.include(errorOf('a: "\\q"\n').message, "p.yaml:1:5: YAML: Invalid escape sequence \\q")
    assert.match(errorOf("a: [1, 2\n").message, /p\.yaml:\d+:\d+: YAML: /)
  })

  it("aliases that resolve still load", () => {
    const parsed = parseYaml("p.yaml", "base: &m { type: mlp, hidden: [8] }\nother: *m\n")
    assert.isTrue(Either.isRight(parsed))
    if (Either.isRight(parsed)) assert.deepStrictEqual((parsed.right.value as { other: unknown }).other, { type: "mlp", hidden: [8] })
  })

  it("merge keys (<<) copy an anchored map, and the keys written beside them win", () => {
    const parsed = parseYaml("p.yaml", "base: &b { steps: 200, lr: 0.005, model: { width: 64 } }\nwarm:\n  <<: *b\n  steps: 100\n")
    assert.isTrue(Either.isRight(parsed))
    if (Either.isRight(parsed)) {
      assert.deepStrictEqual((parsed.right.value as { warm: unknown }).warm, { steps: 100, lr: 0.005, model: { width: 64 } })
    }
  })
})
