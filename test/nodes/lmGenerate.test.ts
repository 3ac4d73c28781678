/**
 * `lm_generate`, `lm_score` and `lm_evaluate`'s sample measures through the executor, with
 * pipelines/lm-generate-tiny.yaml itself: the Generations artifact is consistent, lm_score reproduces
 * the teacher scores lm_generate attached, every sample is a row of the `generations` view and a cached
 * re-run adds none, no tensor is left behind. Then lm_generate alone on the trained student: a row is
 * the same whatever its batch or the prompts around it, the n samples of a prompt differ, stop strings
 * end rows, prompt files and unconditional sampling, and the refusals.
 */
import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { Generations, LanguageModel, TextCorpus } from "../../src/domain/Artifact.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { LmEvaluateKind } from "../../src/nodes/lm/evaluate.js"
import { fitToContext, LmGenerateKind, LmScoreKind, promptEncoder } from "../../src/nodes/lm/generate.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { encode } from "../../src/tokenizer/Tokenizer.js"
import { runKind } from "../fixtures/context.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("wasm"), Reporter.layerSilent)
  )
)

const statuses = (r: { readonly nodes: ReadonlyArray<{ readonly id: string; readonly status: string }> }) =>
  Object.fromEntries(r.nodes.map((n) => [n.id, n.status]))

let student: LanguageModel
let corpus: TextCorpus

const rowTokens = (g: Generations, r: number) => Array.from(g.tokens.subarray(g.offsets[r]!, g.offsets[r + 1]!))

describe("lm-generate-tiny pipeline", () => {
  it.live("samples the student, scores with the teacher, records every sample once, then is all cache hits", () =>
    Effect.gen(function* () {
      const pipeline = yield* loadPipelineFile("pipelines/lm-generate-tiny.yaml", builtinRegistry)
      const executor = yield* Executor
      const tensors = tf.memory().numTensors
      const first = yield* executor.run(pipeline)
      const ids = ["brown", "bytes", "teacher", "student", "samples", "score", "eval_student"]
      assert.deepStrictEqual(statuses(first), Object.fromEntries(ids.map((id) => [id, "executed"])))
      assert.strictEqual(tf.memory().numTensors, tensors)
      const output = (id: string, port: string) => first.nodes.find((n) => n.id === id)!.result!.outputs[port]!
      student = output("student", "model") as LanguageModel
      corpus = output("brown", "corpus") as TextCorpus

      const g = output("samples", "generations") as Generations
      const G = g.promptIds.length
      assert.strictEqual(G, 2 * corpus.splits.test.length)
      assert.strictEqual(g.generator, "student")
      assert.strictEqual(g.source, "brown:test")
      assert.deepStrictEqual(Array.from(g.sample), Array.from({ length: G }, (_, r) => r % 2))
      assert.strictEqual(g.offsets[G], g.tokens.length)
      assert.strictEqual(g.promptOffsets[G], g.promptTokens.length)
      for (let r = 0; r < G; r++) {
        assert.strictEqual(g.promptOffsets[r + 1]! - g.promptOffsets[r]!, 12)
        const n = g.offsets[r + 1]! - g.offsets[r]!
        assert.isAtLeast(n, 1)
        assert.isAtMost(n, 16)
        if (g.finishReasons[r] === "length") assert.strictEqual(n, 16)
        if (g.finishReasons[r] === "stop") assert.isTrue(g.texts[r]!.includes(".") || g.texts[r]!.endsWith("<eos>"))
        assert.isBelow(g.meanLogProb[r]!, 0)
      }
      assert.isAbove(g.tokensPerSecond, 0)
      assert.strictEqual(g.scores!.scorer, "teacher")
      assert.strictEqual(g.scores!.k, 20)
      assert.strictEqual(g.scores!.tokenLogProb.length, g.tokens.length)

      // lm_score of the same samples by the same teacher: the same scores.
      const rescored = output("score", "generations") as Generations
      assert.deepStrictEqual(Array.from(rescored.tokens), Array.from(g.tokens))
      assert.deepStrictEqual(Array.from(rescored.scores!.indices), Array.from(g.scores!.indices))
      const diff = (a: Float32Array, b: Float32Array) => Math.max(...Array.from(a, (x, i) => (x === b[i] ? 0 : Math.abs(x - b[i]!))))
      assert.isBelow(diff(rescored.scores!.logProbs, g.scores!.logProbs), 1e-5)
      assert.isBelow(diff(rescored.scores!.tokenLogProb, g.scores!.tokenLogProb), 1e-5)

      const store = yield* ResultsStore
      const metrics = yield* store.query("SELECT node_id, name, value FROM metrics WHERE run_id = $1", [first.runId])
      const value = (node: string, name: string) => Number(metrics.rows.find((r) => r[0] === node && r[1] === name)?.[2])
      assert.strictEqual(value("samples", "samples"), G)
      assert.strictEqual(value("samples", "tokens"), g.tokens.length)
      assert.isAbove(value("samples", "mean_tokens_per_second"), 0)
      assert.isBelow(value("samples", "mean_log_prob"), 0)
      const d1 = value("eval_student", "distinct_1")
      assert.isTrue(d1 > 0 && d1 <= 1)
      assert.isAtMost(value("eval_student", "distinct_2"), 1)
      assert.isTrue(Number.isFinite(value("eval_student", "teacher_nll")) && value("eval_student", "teacher_nll") > 0)
      assert.closeTo(value("eval_student", "teacher_nll"), value("samples", "teacher_nll"), 1e-4)
      assert.closeTo(value("score", "nll"), value("samples", "teacher_nll"), 1e-4)
      assert.isTrue(value("eval_student", "repetition_rate") >= 0 && value("eval_student", "repetition_rate") <= 1)
      assert.isTrue(value("eval_student", "self_bleu") >= 0 && value("eval_student", "self_bleu") <= 1)
      assert.isBelow(value("eval_student", "bits_per_byte"), 8)
      const examples = yield* store.query("SELECT count(*), count(loss) FROM examples WHERE run_id = $1 AND node_id = 'eval_student'", [first.runId])
      assert.deepStrictEqual(examples.rows, [[G, G]])

      const rows = yield* store.query(
        "SELECT prompt_id, sample, text, tokens, finish_reason, teacher_nll FROM generations WHERE run_id = $1 AND node_id = 'samples' ORDER BY row_index",
        [first.runId]
      )
      assert.strictEqual(rows.rows.length, G)
      rows.rows.forEach((r, i) => {
        assert.deepStrictEqual(r.slice(0, 5), [g.promptIds[i], g.sample[i], g.texts[i], g.offsets[i + 1]! - g.offsets[i]!, g.finishReasons[i]])
        assert.isAbove(Number(r[5]), 0)
      })

      const second = yield* executor.run(pipeline)
      assert.deepStrictEqual(statuses(second), Object.fromEntries(ids.map((id) => [id, "cached"])))
      const counts = yield* store.query("SELECT count(*) FROM generation_rows")
      assert.deepStrictEqual(counts.rows, [[2 * G]])
      const perRun = yield* store.query("SELECT node_id, count(*) FROM generations WHERE run_id = $1 GROUP BY node_id ORDER BY node_id", [second.runId])
      assert.deepStrictEqual(perRun.rows, [["samples", G], ["score", G]])
    }).pipe(Effect.provide(TestLayer))
  )
})

const generateWith = (params: Record<string, unknown>, inputs: Record<string, unknown> = { model: student, corpus }) =>
  runKind<{ readonly generations: Generations }>(LmGenerateKind, params, inputs, { nodeId: "gen", seed: 7 })

describe("lm_generate", () => {
  it("gives a row the same tokens whatever its batch or the prompts around it, and n samples that differ", async () => {
    const before = tf.memory().numTensors
    const all = (await generateWith({ split: "train", limit: 6, n: 3, maxNewTokens: 10, batchSize: 16 })).outputs.generations
    assert.strictEqual(tf.memory().numTensors, before)
    const alone = (await generateWith({ split: "train", limit: 6, n: 3, maxNewTokens: 10, batchSize: 1 })).outputs.generations
    const fewer = (await generateWith({ split: "train", limit: 2, n: 3, maxNewTokens: 10, batchSize: 5 })).outputs.generations
    assert.deepStrictEqual(Array.from(alone.tokens), Array.from(all.tokens))
    assert.deepStrictEqual(Array.from(fewer.seeds), Array.from(all.seeds.subarray(0, 6)))
    for (let r = 0; r < 6; r++) assert.deepStrictEqual(rowTokens(fewer, r), rowTokens(all, r))
    const distinct = new Set([0, 1, 2].map((r) => JSON.stringify(rowTokens(all, r))))
    assert.strictEqual(distinct.size, 3)
    assert.strictEqual(new Set(Array.from(all.seeds)).size, all.seeds.length)
  })

  it("ends a row at a stop string (kept in its text) with finish reason stop", async () => {
    const g = (await generateWith({ split: "train", limit: 6, n: 2, maxNewTokens: 24, stop: [" ", "e"] })).outputs.generations
    const stopped = g.finishReasons.flatMap((f, r) => (f === "stop" ? [r] : []))
    assert.isAbove(stopped.length, 0)
    for (const r of stopped) {
      const text = g.texts[r]!
      assert.isTrue(text.includes(" ") || text.includes("e") || text.endsWith("<eos>"))
      // It stopped at the first token that completed a stop string: the text before that token has none.
      const before = text.slice(0, -1)
      if (!text.endsWith("<eos>")) assert.isFalse(before.includes(" ") || before.includes("e"))
    }
  })

  it("reads prompts from a file (ids, answers; file:line on a bad line), samples unconditionally, and refuses a missing source", async () => {
    const dir = mkdtempSync(join(tmpdir(), "distillery-lm-generate-"))
    const good = join(dir, "prompts.jsonl")
    writeFileSync(good, `{"prompt": "The ", "id": "a", "answer": "x"}\n\n{"prompt": "It was"}\n`)
    const g = (await generateWith({ promptFile: good, maxNewTokens: 4, temperature: 0 }, { model: student })).outputs.generations
    assert.deepStrictEqual(g.promptIds, ["a", `${good}:3`])
    assert.deepStrictEqual(g.prompts, ["The ", "It was"])
    assert.deepStrictEqual(g.answers, ["x", null])
    const evaluated = await runKind(LmEvaluateKind, { split: "test" }, { model: student, corpus, samples: g })
    const exact = evaluated.recorded.metrics.find((m) => m.name === "exact_match")
    assert.strictEqual(exact?.value, 0)
    assert.isUndefined(evaluated.recorded.metrics.find((m) => m.name === "teacher_nll"))

    const bad = join(dir, "bad.jsonl")
    writeFileSync(bad, `{"prompt": "ok"}\n{"prompt": 3}\n`)
    await generateWith({ promptFile: bad }, { model: student }).then(
      () => assert.fail("expected a refusal"),
      (e: Error) => assert.match(e.message, /param 'promptFile': .*bad\.jsonl:2: key "prompt" must be a string/)
    )

    const u = (await generateWith({ unconditional: true, n: 3, maxNewTokens: 5 }, { model: student })).outputs.generations
    assert.deepStrictEqual(u.promptIds, ["unconditional", "unconditional", "unconditional"])
    assert.deepStrictEqual(Array.from(u.promptTokens), [258, 258, 258])
    assert.strictEqual(u.source, "unconditional")

    await generateWith({}, { model: student }).then(
      () => assert.fail("expected a refusal"),
      (e: Error) => assert.match(e.message, /no prompts: wire a TextCorpus node to input 'corpus', give param 'promptFile', or set param 'unconditional: true'/)
    )
    await generateWith({ unconditional: true }, { model: student, corpus }).then(
      () => assert.fail("expected a refusal"),
      (e: Error) => assert.match(e.message, /give exactly one of/)
    )
  })
})

describe("lm_score on a corpus", () => {
  it("scores a split's documents after their first promptTokens, dense when scoreTopK is the vocabulary; one source only", async () => {
    const { encode } = await import("../../src/tokenizer/Tokenizer.js")
    const V = student.tokenizer.vocabSize
    const scored = await runKind<{ readonly generations: Generations }>(
      LmScoreKind,
      { split: "train", limit: 2, promptTokens: 4, scoreTopK: V },
      { model: student, corpus },
      { nodeId: "score", inputNodes: { model: "student", corpus: "brown" } }
    )
    const g = scored.outputs.generations
    const context = (student.spec as { context: number }).context
    assert.strictEqual(g.source, "brown:train")
    assert.deepStrictEqual(g.promptIds, Array.from(corpus.splits.train.slice(0, 2), (d) => corpus.ids[d]!))
    g.promptIds.forEach((_, r) => {
      const doc = encode(student.tokenizer, corpus.texts[corpus.splits.train[r]!]!)
      // The prompt is the first 4 tokens, the scored text the rest of the document up to the context.
      assert.deepStrictEqual(Array.from(g.promptTokens.subarray(g.promptOffsets[r]!, g.promptOffsets[r + 1]!)), doc.slice(0, 4))
      assert.deepStrictEqual(rowTokens(g, r), doc.slice(4, context))
    })
    // k = V: the tail is empty and each position's probabilities sum to 1 (the dense distribution).
    assert.strictEqual(g.scores!.k, V)
    for (let p = 0; p < 3; p++) {
      assert.strictEqual(g.scores!.tailLogProb[p], -Infinity)
      let total = 0
      for (let j = 0; j < V; j++) total += Math.exp(g.scores!.logProbs[p * V + j]!)
      assert.closeTo(total, 1, 1e-4)
    }
    assert.strictEqual(scored.recorded.generations.length, 2)

    await runKind(LmScoreKind, {}, { model: student }).then(
      () => assert.fail("expected a refusal"),
      (e: Error) => assert.match(e.message, /wire exactly one of input 'samples' \(a Generations node\) and input 'corpus'/)
    )
  })
})

describe("prompts in a teacher's vocabulary", () => {
  it("keep a long prompt's last context - 1 tokens, start an empty one from the start token, and count the cut ones", () => {
    const tokens = Int32Array.of(1, 2, 3, 4, 5)
    assert.strictEqual(fitToContext(tokens, undefined), tokens)
    assert.strictEqual(fitToContext(tokens, 6), tokens)
    assert.deepStrictEqual(Array.from(fitToContext(tokens, 5)), [2, 3, 4, 5])
    assert.deepStrictEqual(Array.from(fitToContext(tokens, 3)), [4, 5])
    const bytes = bytesTokenizer()
    const encoder = promptEncoder(bytes, encode, 4)
    assert.deepStrictEqual(Array.from(encoder.tokensOf("ab")), [97, 98])
    assert.deepStrictEqual(Array.from(encoder.tokensOf("")), [bytes.special["<eos>"]!])
    assert.strictEqual(encoder.truncated, 0)
    assert.deepStrictEqual(Array.from(encoder.tokensOf("abcdef")), [100, 101, 102])
    assert.strictEqual(encoder.truncated, 1)
  })
})
