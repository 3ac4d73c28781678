/**
 * `lm_parse` with a judge, against real teachers: an OpenAI-compatible server on loopback (fixed replies
 * by the answer in the rubric: scores above and below the threshold, a reply without a score, a 400)
 * through `http_teacher`'s endpoint, and a tiny random Distillery LanguageModel that never writes a
 * score (the node finishes with every row's reason and a warning). Then the chain lm_generate ->
 * lm_filter -> lm_parse with a judge, and the refusals.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Generations, TeacherEndpoint, TextCorpus } from "../../src/domain/Artifact.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { LmFilterKind } from "../../src/nodes/lm/filter.js"
import { LmGenerateKind } from "../../src/nodes/lm/generate.js"
import { LmParseKind, LmParseParams } from "../../src/nodes/lm/parse.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { Effect } from "effect"
import { runKind } from "../fixtures/context.js"
import { decisionsOf, metricOf, rationaleSamples } from "../fixtures/generations.js"
import { tinyLm } from "../teachers/loopback.js"

type Out = { readonly samples: Generations; readonly corpus: TextCorpus }

/** What the server says to a prompt: a judge rubric gets a verdict by its answer, a question its worked answer. */
const reply = (prompt: string): string | { readonly status: number } => {
  const judged = /Answer: (\S+)/.exec(prompt)
  if (judged !== null) {
    const verdicts: Record<string, string | { status: number }> = { "14": "Good. Score: 5", "12": "Score: 3", "5": "Score: 4", "6": { status: 400 }, "4": "Score: 4.5" }
    return verdicts[judged[1]!] ?? "looks right to me"
  }
  const q = /what is (\d+)\+(\d+)/.exec(prompt)
  return q !== null ? ` ${q[1]} plus ${q[2]}. The answer is ${Number(q[1]) + Number(q[2])}.` : " I do not know."
}

let server: Server
let baseUrl = ""
const requests: Array<string> = []
beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { prompt: string }
      requests.push(body.prompt)
      const r = reply(body.prompt)
      if (typeof r !== "string") {
        res.writeHead(r.status, { "content-type": "application/json" })
        return void res.end(JSON.stringify({ error: { message: "planned refusal" } }))
      }
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({ choices: [{ index: 0, text: r, finish_reason: "stop" }], usage: { prompt_tokens: 10, completion_tokens: 4 } }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

const endpoint = (): TeacherEndpoint => ({
  _tag: "TeacherEndpoint",
  baseUrl,
  model: "fixed",
  api: "completions",
  concurrency: 2,
  timeoutSeconds: 10,
  retries: 0,
  topLogprobs: 0,
  maxFailureFraction: 1,
  price: { input: 0, output: 0 }
})

const samples = rationaleSamples()

const rubric = "Question: {question}\nReasoning: {rationale}\nAnswer: {answer}\nRate the reasoning from 1 to 5 as 'Score: N'."
const failure = (p: Promise<unknown>) => p.then(() => "", (e: Error) => e.message)

describe("lm_parse judge", () => {
  it("keeps by the judge's score over HTTP, and records every row's score, reply and reason", async () => {
    const { outputs, recorded } = await runKind<Out>(
      LmParseKind,
      { normalise: "number", judge: { rubric, threshold: 4 } },
      { samples, judge: endpoint() },
      { inputNodes: { samples: "gen", judge: "judge_api" } }
    )
    const r = decisionsOf(recorded)
    assert.deepStrictEqual(r.slice(0, 6), [
      `keep kept: answer 14; judge score 5 >= 4 (reply "Good. Score: 5")`,
      `keep kept: answer 14; judge score 5 >= 4 (reply "Good. Score: 5")`,
      `drop judge: score 3 < 4 (reply "Score: 3")`,
      "drop unparseable: no match of the answer pattern",
      `keep kept: answer 14; judge score 5 >= 4 (reply "Good. Score: 5")`,
      `keep kept: answer 5; judge score 4 >= 4 (reply "Score: 4")`
    ])
    assert.match(r[6]!, /^drop judge: failed: POST http:\/\/127\.0\.0\.1:\d+\/v1\/completions: 400 Bad Request: planned refusal$/)
    assert.deepStrictEqual(r.slice(7), [`drop judge: no score in "looks right to me"`, `drop judge: no score in "looks right to me"`])
    // The judged rows name the judge; the unparseable one was never judged.
    assert.deepStrictEqual(recorded.examples.map((e) => e.subject), ["judge_api", "judge_api", "judge_api", undefined, "judge_api", "judge_api", "judge_api", "judge_api", "judge_api"])
    assert.deepStrictEqual(outputs.corpus.answers, ["14", "14", "14", "5"])
    assert.deepStrictEqual(outputs.corpus.metadata!.map((m) => [m.judgeScore, m.judgeReply]), [
      [5, "Good. Score: 5"],
      [5, "Good. Score: 5"],
      [5, "Good. Score: 5"],
      [4, "Score: 4"]
    ])
    // The rubric was rendered with the parsed rationale and answer.
    assert.include(requests, "Question: Q1\nReasoning: 3 + 11 = 14.\nAnswer: 14\nRate the reasoning from 1 to 5 as 'Score: N'.")
    assert.strictEqual(metricOf(recorded, "judged"), 8)
    assert.strictEqual(metricOf(recorded, "judge_kept"), 4)
    assert.strictEqual(metricOf(recorded, "judge_no_score"), 2)
    assert.strictEqual(metricOf(recorded, "judge_failed"), 1)
    assert.closeTo(metricOf(recorded, "judge_mean_score")!, (5 * 3 + 3 + 4) / 5, 1e-9)
    const info = recorded.info.judge as Record<string, unknown>
    assert.deepStrictEqual([info.scored, info.noScore, info.failed, info.warning], [5, 2, 1, undefined])
  })

  it("finishes with every row's reason and a warning when a real Distillery model never writes a score; the same seed gives the same replies", async () => {
    const run = () =>
      runKind<Out>(LmParseKind, { normalise: "number", judge: { rubric, threshold: 3, maxNewTokens: 6, temperature: 1 } }, { samples, judge: tinyLm() }, { seed: 7 })
    const { outputs, recorded } = await run()
    const judged = recorded.examples.filter((e) => e.subject !== undefined)
    assert.strictEqual(judged.length, 8)
    for (const e of judged) assert.match(e.reason!, /^judge: no score in ".*"$/s)
    assert.strictEqual(outputs.samples.texts.length, 0)
    assert.strictEqual(outputs.corpus.ids.length, 0)
    const info = recorded.info.judge as Record<string, unknown>
    assert.match(String(info.warning), /^the judge never returned a score: no reply of 8 matched scorePattern \/\[Ss\]core:/)
    assert.strictEqual(info.teacher, "judge")
    assert.deepStrictEqual(decisionsOf((await run()).recorded), decisionsOf(recorded))
  })

  it("refuses param judge without input judge and the reverse, an unknown rubric variable and a score pattern without one group", async () => {
    assert.include(await failure(runKind(LmParseKind, { judge: { rubric, threshold: 4 } }, { samples })), "param 'judge' is set but input 'judge' is not wired")
    assert.include(await failure(runKind(LmParseKind, {}, { samples, judge: endpoint() }, { inputNodes: { samples: "s", judge: "api" } })), "input 'judge' is wired ('api') but param 'judge' is not set")
    assert.throws(
      () => Schema.decodeUnknownSync(LmParseParams)({ judge: { rubric: "Is {reasoning} right? Score:", threshold: 4 } }),
      /rubric names \{reasoning\}, which is not a judge variable; the valid ones are \{question\}, \{prompt\}, \{rationale\}, \{answer\}, \{completion\}, \{gold\}/
    )
    assert.throws(() => Schema.decodeUnknownSync(LmParseParams)({ judge: { rubric, threshold: 4, scorePattern: "Score: \\d+" } }), /0 capture groups/)
    assert.throws(() => Schema.decodeUnknownSync(LmParseParams)({ judge: { rubric, threshold: 4, scorePattern: "(S)core: (\\d+)" } }), /2 capture groups/)
  })
})

describe("lm_generate -> lm_filter -> lm_parse", () => {
  const dir = mkdtempSync(join(tmpdir(), "distillery-judge-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const promptFile = join(dir, "questions.jsonl")
  writeFileSync(
    promptFile,
    [
      { id: "a", prompt: "what is 2+2?", answer: "4" },
      { id: "b", prompt: "what is 7+7?", answer: "14" },
      { id: "c", prompt: "what is 3+3?", answer: "7" },
      { id: "d", prompt: "who are you?", answer: "me" }
    ]
      .map((r) => JSON.stringify(r))
      .join("\n") + "\n"
  )

  it("parses the filter's kept samples: answers, rationales, prompts and gold survive the chain, and the judge sees them", async () => {
    const tokenizer = bytesTokenizer()
    const gen = await runKind<{ generations: Generations }>(
      LmGenerateKind,
      { promptFile, n: 2, maxNewTokens: 40, template: { text: "Q: {prompt}\nA:" } },
      { model: endpoint(), tokenizer }
    )
    assert.strictEqual(gen.outputs.generations.texts.length, 8)
    const filtered = await runKind<Out>(LmFilterKind, { dedupe: "exact", minTokens: 16 }, { samples: gen.outputs.generations })
    // Each prompt's two identical samples: the second is an exact duplicate; "I do not know." is too short.
    assert.deepStrictEqual(filtered.outputs.samples.promptIds, ["a", "b", "c"])
    const parsed = await runKind<Out>(
      LmParseKind,
      { normalise: "number", requireGold: true, judge: { rubric: "Answer: {answer} (gold {gold})", threshold: 4 } },
      { samples: filtered.outputs.samples, judge: endpoint() }
    )
    assert.deepStrictEqual(decisionsOf(parsed.recorded), [
      `keep kept: answer 4; judge score 4.5 >= 4 (reply "Score: 4.5")`,
      `keep kept: answer 14; judge score 5 >= 4 (reply "Good. Score: 5")`,
      "drop wrong answer: got 6, gold 7"
    ])
    const corpus = parsed.outputs.corpus
    assert.deepStrictEqual(corpus.ids, ["a#0", "b#0"])
    assert.deepStrictEqual(corpus.prompts, ["Q: what is 2+2?\nA:", "Q: what is 7+7?\nA:"])
    assert.deepStrictEqual(corpus.completions, [" 2 plus 2. The answer is 4.", " 7 plus 7. The answer is 14."])
    assert.deepStrictEqual(corpus.answers, ["4", "14"])
    assert.deepStrictEqual(corpus.rationales, ["2 plus 2.", "7 plus 7."])
    assert.deepStrictEqual(corpus.metadata!.map((m) => m.gold), ["4", "14"])
    assert.deepStrictEqual(Array.from(corpus.splits.train), [0, 1])
    assert.include(requests, "Answer: 14 (gold 14)")
  })

  it("a pipeline wires lm_filter's samples into lm_parse and an http_teacher into its judge", async () => {
    const file = join(dir, "judge.yaml")
    writeFileSync(
      file,
      `name: judge
seed: 1
nodes:
  - { id: bytes, kind: tokenizer, params: { type: bytes } }
  - { id: api, kind: http_teacher, params: { baseUrl: "${baseUrl}", model: fixed } }
  - id: gen
    kind: lm_generate
    inputs: { model: api, tokenizer: bytes }
    params: { promptFile: ${JSON.stringify(promptFile)}, n: 2, template: { text: "Q: {prompt}\\nA:" } }
  - { id: kept, kind: lm_filter, inputs: { samples: gen }, params: { dedupe: exact, nearDuplicate: { threshold: 0.9, method: minhash } } }
  - id: parsed
    kind: lm_parse
    inputs: { samples: kept.samples, judge: api }
    params: { normalise: number, judge: { rubric: "Answer: {answer}", threshold: 4 } }
`
    )
    const pipeline = await Effect.runPromise(loadPipelineFile(file, builtinRegistry))
    assert.deepStrictEqual(pipeline.nodes.map((n: { id: string }) => n.id), ["bytes", "api", "gen", "kept", "parsed"])
  })
})
