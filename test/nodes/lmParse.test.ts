/**
 * `lm_parse` on hand-built samples: decisions and reasons as examples rows (unparseable, wrong answer,
 * self-consistency, kept), the kept rows sliced consistently, the corpus's answers and rationales, gold
 * answers from the corpus, and the refusals. Then `lm_generate`'s `template` on a tiny random model:
 * the rendered few-shot prompt is what was sampled from, and a missing column is refused by name.
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import type { Generations, LanguageModel, TextCorpus } from "../../src/domain/Artifact.js"
import { LmGenerateKind, LmGenerateParams } from "../../src/nodes/lm/generate.js"
import { LmParseKind, LmParseParams } from "../../src/nodes/lm/parse.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { runKind } from "../fixtures/context.js"
import { decisionsOf, makeGenerations, metricOf, rationaleSamples } from "../fixtures/generations.js"
import { wideLanguageModel } from "../fixtures/transformer.js"

type Out = { readonly samples: Generations; readonly corpus: TextCorpus }

// rationaleSamples: p1 (gold 14) 14, 14, 12, unparseable, 14; p2 (gold 5) 5, 6; p3 (no gold) 9, 9.
const samples = rationaleSamples()

describe("lm_parse", () => {
  it("records every row's decision and reason, and slices the kept rows consistently", async () => {
    const { outputs, recorded } = await runKind<Out>(LmParseKind, { normalise: "number", requireGold: true, selfConsistency: { minAgreement: 0.6 } }, { samples })
    assert.deepStrictEqual(decisionsOf(recorded), [
      "keep kept: answer 14, agreement 0.6",
      "keep kept: answer 14, agreement 0.6",
      "drop wrong answer: got 12, gold 14",
      "drop unparseable: no match of the answer pattern",
      "keep kept: answer 14, agreement 0.6",
      "drop self-consistency: agreement 0.5 < 0.6",
      "drop wrong answer: got 6, gold 5",
      "keep kept: answer 9, agreement 1",
      "keep kept: answer 9, agreement 1"
    ])
    assert.deepStrictEqual(recorded.examples.map((e) => e.exampleId), [0, 1, 2, 3, 4, 5, 6, 7, 8])
    const kept = outputs.samples
    assert.deepStrictEqual(kept.promptIds, ["p1", "p1", "p1", "p3", "p3"])
    assert.deepStrictEqual(Array.from(kept.sample), [0, 1, 4, 0, 1])
    assert.deepStrictEqual(kept.texts, [samples.texts[0], samples.texts[1], samples.texts[4], samples.texts[7], samples.texts[8]])
    // Tokens sliced with their rows: byte-level tokens decode to each row's text.
    for (let g = 0; g < kept.texts.length; g++) {
      assert.strictEqual(new TextDecoder().decode(Uint8Array.from(kept.tokens.subarray(kept.offsets[g]!, kept.offsets[g + 1]!))), kept.texts[g])
    }
    const corpus = outputs.corpus
    assert.deepStrictEqual(corpus.ids, ["p1#0", "p1#1", "p1#4", "p3#0", "p3#1"])
    assert.deepStrictEqual(corpus.prompts, ["Q1", "Q1", "Q1", "Q3", "Q3"])
    assert.deepStrictEqual(corpus.completions, kept.texts)
    assert.deepStrictEqual(corpus.answers, ["14", "14", "14", "9", "9"])
    assert.deepStrictEqual(corpus.rationales, ["3 + 11 = 14.", "3 plus 11.", "Sum.", "Nine.", "So"])
    assert.deepStrictEqual(Array.from(corpus.splits.train), [0, 1, 2, 3, 4])
    assert.strictEqual(corpus.metadata![0]!.gold, "14")
    assert.strictEqual(metricOf(recorded, "parsed"), 8)
    assert.strictEqual(metricOf(recorded, "unparseable"), 1)
    assert.strictEqual(metricOf(recorded, "correct"), 4)
    assert.strictEqual(metricOf(recorded, "kept"), 5)
    assert.strictEqual(metricOf(recorded, "dropped"), 4)
    assert.closeTo(metricOf(recorded, "majority_agreement")!, (0.6 + 0.5 + 1) / 3, 1e-9)
  })

  it("drops a sample that is not its prompt's majority, keeps every parsed one without rules, and reads gold answers from a corpus", async () => {
    const sc = await runKind<Out>(LmParseKind, { normalise: "number", selfConsistency: { minAgreement: 0.5 } }, { samples })
    assert.strictEqual(decisionsOf(sc.recorded)[2], "drop self-consistency: answer 12 is not the majority 14")
    // p2's tie goes to the first answer to reach it.
    assert.deepStrictEqual(decisionsOf(sc.recorded).slice(5, 7), ["keep kept: answer 5, agreement 0.5", "drop self-consistency: answer 6 is not the majority 5"])

    const plain = await runKind<Out>(LmParseKind, { normalise: "number" }, { samples })
    assert.strictEqual(plain.outputs.samples.texts.length, 8)
    assert.strictEqual(decisionsOf(plain.recorded)[2], "keep kept: answer 12")

    const bare = makeGenerations(samples.texts.map((text, g) => ({ promptId: samples.promptIds[g]!, sample: samples.sample[g]!, text })))
    const gold: TextCorpus = {
      _tag: "TextCorpus",
      name: "gold",
      ids: ["p1", "p2"],
      texts: ["Q1 14", "Q2 5"],
      answers: ["14", "5"],
      splits: { train: Int32Array.of(0, 1), validation: new Int32Array(0), test: new Int32Array(0) }
    }
    const withCorpus = await runKind<Out>(LmParseKind, { normalise: "number", requireGold: true }, { samples: bare, corpus: gold })
    assert.deepStrictEqual(decisionsOf(withCorpus.recorded), decisionsOf(await runKind<Out>(LmParseKind, { normalise: "number", requireGold: true }, { samples }).then((r) => r.recorded)))
  })

  it("gives its corpus the records' own prompts, not the few-shot prompt the teacher saw", async () => {
    const shots = makeGenerations([
      { promptId: "p1", sample: 0, prompt: "Q: 1+1?\nA: The answer is 2.\n\nQ1", text: " 3 + 11 = 14. The answer is 14." },
      { promptId: "p9", sample: 0, prompt: "Q: 1+1?\nA: The answer is 2.\n\nQ9", text: " The answer is 9." }
    ])
    const records: TextCorpus = {
      _tag: "TextCorpus",
      name: "records",
      ids: ["p1"],
      texts: ["Q1 14"],
      prompts: ["Q1"],
      completions: [" 14"],
      splits: { train: Int32Array.of(0), validation: new Int32Array(0), test: new Int32Array(0) }
    }
    const { outputs } = await runKind<Out>(LmParseKind, { normalise: "number" }, { samples: shots, corpus: records })
    // p1's record is known: its own prompt; p9's is not: the prompt sampled.
    assert.deepStrictEqual(outputs.corpus.prompts, ["Q1", "Q: 1+1?\nA: The answer is 2.\n\nQ9"])
    assert.deepStrictEqual(outputs.corpus.texts, ["Q1 3 + 11 = 14. The answer is 14.", "Q: 1+1?\nA: The answer is 2.\n\nQ9 The answer is 9."])
    assert.strictEqual(outputs.corpus.metadata![0]!.teacherPrompt, "Q: 1+1?\nA: The answer is 2.\n\nQ1")
    assert.isUndefined(outputs.corpus.metadata![1]!.teacherPrompt)
    assert.deepStrictEqual(outputs.corpus.rationales, ["3 + 11 = 14.", ""])
  })

  it("refuses a pattern that never matches (with an example), one without a single capture group, and dropping everything", async () => {
    const never = await runKind(LmParseKind, { answerPattern: "#### (\\d+)" }, { samples }).then(() => undefined, (e: Error) => e)
    assert.include(never?.message ?? "", "param 'answerPattern' /#### (\\d+)/ matched none of the 9 samples")
    assert.include(never?.message ?? "", "3 + 11 = 14. The answer is 14.")
    assert.throws(() => Schema.decodeUnknownSync(LmParseParams)({ answerPattern: "(a)(b)" }), /2 capture groups/)
    const wrong = makeGenerations([{ promptId: "p", text: "The answer is 3.", answer: "4" }])
    const none = await runKind(LmParseKind, { normalise: "number", requireGold: true }, { samples: wrong }).then(() => undefined, (e: Error) => e)
    assert.include(none?.message ?? "", "every one of the 1 samples was dropped (first: wrong answer: got 3, gold 4)")
  })
})

/** A tiny random byte-level transformer: enough to sample from. */
const tinyModel = (): LanguageModel => {
  const tokenizer = bytesTokenizer()
  const spec = decodeTransformerSpec({ type: "transformer", vocabSize: tokenizer.vocabSize, layers: 1, width: 8, heads: 2, context: 256 })
  return wideLanguageModel(spec, tokenizer, 3, 0.1)
}

describe("lm_generate template", () => {
  const corpus: TextCorpus = {
    _tag: "TextCorpus",
    name: "qa",
    ids: ["a", "b"],
    texts: ["2+2? 4", "3+3? 6"],
    prompts: ["2+2?", "3+3?"],
    completions: [" 4", " 6"],
    answers: ["4", null],
    metadata: [{ topic: "sums" }, { topic: "sums" }],
    splits: { train: new Int32Array(0), validation: new Int32Array(0), test: Int32Array.of(0, 1) }
  }

  it("samples from the rendered few-shot prompt, and leaves the params as they were without one", async () => {
    const template = { text: "[{topic}] Q: {prompt}\nA:", fewShot: [{ topic: "sums", prompt: "1+1?", completion: " The answer is 2." }] }
    const { outputs } = await runKind<{ generations: Generations }>(
      LmGenerateKind,
      { template, n: 1, maxNewTokens: 2, temperature: 0 },
      { model: tinyModel(), corpus }
    )
    const g = outputs.generations
    assert.deepStrictEqual(g.prompts, [
      "[sums] Q: 1+1?\nA: The answer is 2.\n\n[sums] Q: 2+2?\nA:",
      "[sums] Q: 1+1?\nA: The answer is 2.\n\n[sums] Q: 3+3?\nA:"
    ])
    assert.deepStrictEqual(Array.from(g.promptTokens.subarray(g.promptOffsets[0]!, g.promptOffsets[1]!)), Array.from(new TextEncoder().encode(g.prompts[0]!)))
    // Without a template the decoded params carry no 'template' key: the cache keys of existing pipelines stay.
    assert.isFalse("template" in Schema.decodeUnknownSync(LmGenerateParams)({}))
  })

  it("refuses a template naming a column a record lacks, naming the variable and the columns there are", async () => {
    const error = await runKind(LmGenerateKind, { template: { text: "Q: {prompt} ({answer})" }, maxNewTokens: 2 }, { model: tinyModel(), corpus }).then(
      () => undefined,
      (e: Error) => e
    )
    assert.include(error?.message ?? "", "param 'template' names {answer}, which prompt 'b' of qa:test lacks; its columns are topic, id, prompt")
    assert.throws(() => Schema.decodeUnknownSync(LmGenerateParams)({ template: { text: "{prompt} {x}", fewShot: [{ prompt: "p", completion: "c" }] } }), /fewShot\[0\] has no 'x'/)
  })
})
