/**
 * Multi-task corpora (distilling step-by-step): prefixes and targets, ids and carried fields, tasks
 * interleaved per source document in every split, `limit` cutting each input's train split only,
 * documents without a task's field skipped and counted, per-document weights and tasks, packing's
 * per-target weights (absent for unweighted corpora, so those packs stay as they were), the cache
 * codec keeping the new fields, and the problems in words.
 */
import { assert, describe, it } from "@effect/vitest"
import type { TextCorpus } from "../../src/domain/Artifact.js"
import { decodeArtifact, encodeArtifact } from "../../src/cache/Codec.js"
import type { TaskSpec } from "../../src/data/multitask.js"
import { multitaskCorpus, trainDocumentsPerTask } from "../../src/data/multitask.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { packCorpus } from "../../src/tokenizer/Pack.js"

/** Five documents q0..q4: train q0 q1 q2, validation q3, test q4; q1 has no rationale. */
const corpus = (over: Partial<TextCorpus> = {}): TextCorpus => ({
  _tag: "TextCorpus",
  name: "sums",
  ids: ["q0", "q1", "q2", "q3", "q4"],
  texts: ["Q0? A0 R0", "Q1? A1", "Q2? A2 R2", "Q3? A3 R3", "Q4? A4 R4"],
  prompts: ["Q0?", "Q1?", "Q2?", "Q3?", "Q4?"],
  completions: [" R0 A0", " A1", " R2 A2", " R3 A3", " R4 A4"],
  answers: ["A0", "A1", "A2", "A3", "A4"],
  rationales: ["R0", null, "R2", "R3", "R4"],
  metadata: [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }, { i: 4 }],
  splits: { train: Int32Array.from([0, 1, 2]), validation: Int32Array.from([3]), test: Int32Array.from([4]) },
  ...over
})

const task = (t: Partial<TaskSpec> & Pick<TaskSpec, "name" | "target">): TaskSpec => ({ from: "a", prefix: "", weight: 1, ...t })

const stepByStep = [
  task({ name: "answer", prefix: "[answer] ", target: "answer" }),
  task({ name: "rationale", prefix: "[rationale] ", target: "rationale", weight: 0.5 })
]

const built = (tasks: ReadonlyArray<TaskSpec>, inputs: Parameters<typeof multitaskCorpus>[1], limit?: number) => {
  const r = multitaskCorpus(tasks, inputs, limit)
  if (r._tag !== "Built") throw new Error(r.message)
  return r
}

const problem = (tasks: ReadonlyArray<TaskSpec>, inputs: Parameters<typeof multitaskCorpus>[1], limit?: number): string => {
  const r = multitaskCorpus(tasks, inputs, limit)
  if (r._tag !== "Problem") throw new Error("expected a problem")
  return r.message
}

describe("multitaskCorpus", () => {
  it("makes prefixed prompts and answer / rationale completions, interleaved per source document, skipping what lacks the field", () => {
    const { corpus: out, tasks } = built(stepByStep, { a: corpus() })
    assert.deepStrictEqual(out.ids, [
      "answer:q0",
      "rationale:q0",
      "answer:q1",
      "answer:q2",
      "rationale:q2",
      "answer:q3",
      "rationale:q3",
      "answer:q4",
      "rationale:q4"
    ])
    assert.deepStrictEqual(out.prompts!.slice(0, 3), ["[answer] Q0?", "[rationale] Q0?", "[answer] Q1?"])
    assert.deepStrictEqual(out.completions!.slice(0, 3), [" A0", " R0", " A1"])
    assert.deepStrictEqual(out.texts[1], "[rationale] Q0? R0")
    assert.deepStrictEqual(Array.from(out.splits.train), [0, 1, 2, 3, 4])
    assert.deepStrictEqual(Array.from(out.splits.validation), [5, 6])
    assert.deepStrictEqual(Array.from(out.splits.test), [7, 8])
    assert.deepStrictEqual(out.weights, [1, 0.5, 1, 1, 0.5, 1, 0.5, 1, 0.5])
    assert.deepStrictEqual(out.tasks, ["answer", "rationale", "answer", "answer", "rationale", "answer", "rationale", "answer", "rationale"])
    assert.deepStrictEqual(out.answers, ["A0", "A0", "A1", "A2", "A2", "A3", "A3", "A4", "A4"])
    assert.deepStrictEqual(out.rationales!.slice(0, 3), ["R0", "R0", null])
    assert.deepStrictEqual(out.metadata![1], { i: 0, task: "rationale" })
    assert.deepStrictEqual(tasks.map((t) => [t.name, t.documents, t.skipped]), [
      ["answer", { train: 3, validation: 1, test: 1 }, { train: 0, validation: 0, test: 0 }],
      ["rationale", { train: 2, validation: 1, test: 1 }, { train: 1, validation: 0, test: 0 }]
    ])
    assert.deepStrictEqual(tasks[1]!.decisions[1], { split: "train", source: "q1", kept: false, reason: "rationale: no rationale" })
    assert.deepStrictEqual(trainDocumentsPerTask(out), { answer: 3, rationale: 2 })
    assert.isUndefined(trainDocumentsPerTask(corpus()))
  })

  it("target completion keeps the completion as is; tasks read their own ports", () => {
    const other = corpus({ name: "other", ids: ["o0", "o1", "o2", "o3", "o4"] })
    const { corpus: out } = built([task({ name: "sft", target: "completion" }), task({ name: "ans", from: "b", prefix: "> ", target: "answer", weight: 2 })], {
      a: corpus(),
      b: other
    })
    assert.deepStrictEqual(out.ids.slice(0, 4), ["sft:q0", "ans:o0", "sft:q1", "ans:o1"])
    assert.deepStrictEqual(out.completions!.slice(0, 2), [" R0 A0", " A0"])
    assert.deepStrictEqual(out.prompts![1], "> Q0?")
    assert.strictEqual(out.name, "sft + ans of sums, other")
  })

  it("limit keeps the first train documents of each input, never validation or test", () => {
    const { corpus: out, tasks } = built(stepByStep, { a: corpus() }, 2)
    assert.deepStrictEqual(
      Array.from(out.splits.train, (d) => out.ids[d]),
      ["answer:q0", "rationale:q0", "answer:q1"]
    )
    assert.deepStrictEqual(tasks[0]!.documents, { train: 2, validation: 1, test: 1 })
    assert.deepStrictEqual(tasks[1]!.documents, { train: 1, validation: 1, test: 1 })
  })

  it("packs per-target weights for a weighted corpus, and no weights otherwise", () => {
    const tokenizer = bytesTokenizer()
    const { corpus: out } = built(stepByStep, { a: corpus() })
    const pack = packCorpus(tokenizer, out, "train", 8)
    assert.isDefined(pack.weights)
    assert.strictEqual(pack.weights!.length, pack.targets.length)
    for (let i = 0; i < pack.targets.length; i++) {
      if (pack.targets[i]! < 0) assert.strictEqual(pack.weights![i], 0)
      else assert.include([1, 0.5], pack.weights![i])
    }
    assert.isTrue(Array.from(pack.weights!).includes(0.5))
    // The unweighted view of the same documents packs the same tokens, without weights.
    const { weights: _w, tasks: _t, ...plain } = out
    const unweighted = packCorpus(tokenizer, plain, "train", 8)
    assert.isUndefined(unweighted.weights)
    assert.deepStrictEqual(unweighted.inputs, pack.inputs)
    assert.deepStrictEqual(unweighted.targets, pack.targets)
    assert.deepStrictEqual(Object.keys(unweighted).sort(), ["inputs", "length", "targets"])
  })

  it("survives the cache codec with its weights and tasks", () => {
    const { corpus: out } = built(stepByStep, { a: corpus() })
    const back = decodeArtifact(encodeArtifact(out)) as TextCorpus
    assert.deepStrictEqual(back.weights, out.weights)
    assert.deepStrictEqual(back.tasks, out.tasks)
    assert.deepStrictEqual(Array.from(back.splits.train), Array.from(out.splits.train))
  })

  it("says what is wrong: a port not wired, a name used twice, no rationales, no prompts, no train documents", () => {
    assert.match(problem([task({ name: "x", from: "b", target: "answer" })], { a: corpus() }), /task 'x' reads input 'b', which is not wired/)
    assert.match(problem([task({ name: "x", target: "answer" }), task({ name: "x", target: "rationale" })], { a: corpus() }), /task name 'x' is used twice/)
    const { rationales: _r, ...noRationales } = corpus()
    assert.strictEqual(
      problem(stepByStep, { a: noRationales }),
      "task 'rationale' (from input 'a', target rationale) has no train documents: input 'a' has no rationales: wire lm_parse's corpus or a task dataset with gold rationales (text with source: task)"
    )
    assert.match(problem(stepByStep, { a: corpus({ rationales: [null, null, null, "R3", "R4"] }) }), /none of the 3 train documents of input 'a' \('sums'\) has a rationale/)
    const { prompts: _p, completions: _c, ...plainText } = corpus()
    assert.match(problem(stepByStep, { a: plainText }), /input 'a' \('sums'\) has no prompts/)
    assert.match(
      problem(stepByStep, { a: corpus({ splits: { train: new Int32Array(0), validation: Int32Array.from([3]), test: Int32Array.from([4]) } }) }),
      /task 'answer' .* has no train documents: input 'a' \('sums'\) has no train documents/
    )
  })
})
