/**
 * The built-in reasoning tasks: the same seed gives the same problems, N examples are the first N of
 * a larger count, and every answer checks out against its question and rationale: arithmetic
 * re-evaluated from the equations, last letters recomputed from the quoted words, coin flips counted,
 * compare labels within the label set and true of the two numbers. Bad params fail at decode.
 */
import { assert, describe, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { ANSWER_CUE, COMPARE_LABELS, generateTask, TaskNames } from "../../src/data/tasks.js"
import { TextParams } from "../../src/nodes/text.js"

describe("tasks", () => {
  it("are deterministic for a seed, differ across seeds, and N examples are a prefix of more", () => {
    for (const task of TaskNames) {
      const a = generateTask(task, {}, 50, 7)
      assert.deepStrictEqual(generateTask(task, {}, 50, 7), a)
      assert.deepStrictEqual(generateTask(task, {}, 200, 7).slice(0, 50), a)
      assert.notDeepEqual(generateTask(task, {}, 50, 8).map((e) => e.question), a.map((e) => e.question))
      assert.strictEqual(a[3]!.id, `${task}-000003`)
      for (const e of a) {
        assert.strictEqual(e.prompt, e.question + ANSWER_CUE)
        assert.strictEqual(e.completion, ` ${e.rationale} The answer is ${e.answer}.`)
        assert.strictEqual(e.metadata.task, task)
      }
      // Not one problem over and over.
      assert.isAbove(new Set(a.map((e) => e.question)).size, 40)
    }
  })

  it("arithmetic: evaluating the rationale's equations in turn gives the answer", () => {
    for (const [steps, digits] of [[2, 2], [1, 1], [5, 3]] as const) {
      for (const e of generateTask("arithmetic", { steps, digits }, 100, 1)) {
        const equations = Array.from(e.rationale.matchAll(/(\d+) ([+-]) (\d+) = (\d+)\./g))
        assert.strictEqual(equations.length, steps)
        assert.match(e.question, new RegExp(`^\\w+ has ${equations[0]![1]} \\w+\\.`))
        let value = Number(equations[0]![1])
        for (const [, left, op, right, result] of equations) {
          assert.strictEqual(Number(left), value)
          assert.strictEqual(String(right).length, digits)
          assert.include(e.question, ` ${right}`)
          value = op === "+" ? value + Number(right) : value - Number(right)
          assert.strictEqual(Number(result), value)
          assert.isAtLeast(value, 0)
        }
        assert.strictEqual(e.answer, String(value))
        assert.deepStrictEqual(e.metadata.operands, equations.map((m) => Number(m[3])))
      }
    }
  })

  it("last_letters: the answer is the concatenation of the last letters of the words in the prompt", () => {
    for (const words of [1, 3, 6]) {
      for (const e of generateTask("last_letters", { words }, 100, 2)) {
        const quoted = e.prompt.match(/"([^"]*)"/)![1]!.split(" ")
        assert.strictEqual(quoted.length, words)
        assert.strictEqual(e.answer, quoted.map((w) => w[w.length - 1]).join(""))
        for (const w of quoted) assert.include(e.rationale, `The last letter of "${w}" is "${w[w.length - 1]}".`)
      }
    }
  })

  it("coin_flip: the answer is yes exactly when the coin was flipped an even number of times", () => {
    const answers = new Set<string>()
    for (const e of generateTask("coin_flip", { people: 5 }, 200, 3)) {
      const flips = (e.prompt.match(/ flips the coin\./g) ?? []).length
      const not = (e.prompt.match(/ does not flip the coin\./g) ?? []).length
      assert.strictEqual(flips + not, 5)
      assert.strictEqual(e.answer, flips % 2 === 0 ? "yes" : "no")
      assert.match(e.rationale, new RegExp(`${e.answer === "yes" ? "heads" : "tails"} up\\.$`))
      answers.add(e.answer)
    }
    assert.deepStrictEqual([...answers].sort(), ["no", "yes"])
  })

  it("compare: labels are from the label set and true of the two numbers in the prompt", () => {
    const seen = new Set<string>()
    for (const digits of [1, 3, 6]) {
      for (const e of generateTask("compare", { digits }, 200, 4)) {
        assert.include(COMPARE_LABELS as ReadonlyArray<string>, e.answer)
        const [a, b] = e.question.match(/\d+/g)!.map(Number)
        assert.strictEqual(String(a).length, digits)
        assert.strictEqual(e.answer, a! > b! ? "greater" : a! < b! ? "less" : "equal")
        seen.add(e.answer)
      }
    }
    assert.deepStrictEqual([...seen].sort(), [...COMPARE_LABELS].sort())
  })

  it("bad params are decode errors that say what is allowed", () => {
    const decode = Schema.decodeUnknownEither(TextParams)
    const message = (input: unknown) => {
      const r = decode(input)
      return Either.isLeft(r) ? String(r.left) : "decoded"
    }
    const ok = decode({ source: "task", task: "arithmetic", examples: 10 })
    assert.isTrue(Either.isRight(ok) && ok.right.validation === 0.1)
    assert.match(message({ source: "task", task: "sudoku", examples: 10 }), /task must be one of: arithmetic, last_letters, coin_flip, compare/)
    assert.match(message({ source: "task", task: "arithmetic", examples: 0 }), /examples must be a whole number of at least 1/)
    assert.match(message({ source: "task", task: "arithmetic", examples: 10, steps: 0 }), /steps/)
    assert.match(message({ source: "task", task: "coin_flip", examples: 10, steps: 2 }), /task coin_flip does not read steps; it reads people/)
    assert.match(message({ source: "task", task: "arithmetic", examples: 10, validation: 0.5, test: 0.5 }), /validation \+ test/)
  })
})
