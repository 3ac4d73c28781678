/**
 * The HTTP teacher against a real server on loopback (our own `serve`, in-process, over a tiny LM with
 * random weights): seeded samples equal the server's own answers; 429 and 500 are retried by the
 * Schedule (Retry-After honoured) and counted; a prompt that still fails is returned with its error;
 * answered requests come from the response cache on the next call; timeouts and rate limits hold.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import type { TeacherEndpoint } from "../../src/domain/Artifact.js"
import type { RunningServer } from "../../src/serve/OpenAiServer.js"
import { startServer } from "../../src/serve/OpenAiServer.js"
import * as HttpTeacher from "../../src/teachers/HttpTeacher.js"
import * as ResponseCache from "../../src/teachers/ResponseCache.js"
import type { SampleOutcome, SampleSettings, TeacherPrompt } from "../../src/teachers/Teacher.js"
import type { Proxy } from "./loopback.js"
import { startProxy, tinyLm } from "./loopback.js"

const dir = mkdtempSync(join(tmpdir(), "distillery-http-teacher-"))
let server: RunningServer
beforeAll(async () => {
  await initBackend("cpu")
  server = await startServer({ model: tinyLm(), name: "tiny", port: 0, concurrency: 2 })
})
afterAll(async () => {
  await server?.close()
  rmSync(dir, { recursive: true, force: true })
})

const endpoint = (baseUrl: string, over: Partial<TeacherEndpoint> = {}): TeacherEndpoint => ({
  _tag: "TeacherEndpoint",
  baseUrl: `${baseUrl}/v1`,
  model: "tiny",
  api: "completions",
  concurrency: 2,
  timeoutSeconds: 10,
  retries: 4,
  topLogprobs: 3,
  maxFailureFraction: 0,
  price: { input: 1, output: 2 },
  ...over
})

const settings: SampleSettings = { temperature: 1, topK: 0, topP: 1, minP: 0, maxNewTokens: 8, stop: [], topLogprobs: 3, batchSize: 4 }
const prompts: Array<TeacherPrompt> = [
  { id: "a", text: "The jury said", seed: 11 },
  { id: "b", text: "It was", seed: 12 }
]

const sampleWith = (e: TeacherEndpoint, options: HttpTeacher.HttpTeacherOptions = {}, ps = prompts) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const teacher = yield* HttpTeacher.make(e, { retryBase: "10 millis", ...options })
      const outcomes = yield* teacher.sample(ps, settings)
      return { outcomes, stats: teacher.stats() }
    })
  )

const direct = async (p: TeacherPrompt) => {
  const r = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", prompt: p.text, max_tokens: 8, temperature: 1, top_p: 1, seed: p.seed, logprobs: 3 })
  })
  return (await r.json()) as { choices: Array<{ text: string; finish_reason: string; logprobs: { token_logprobs: Array<number> } }>; usage: { prompt_tokens: number; completion_tokens: number } }
}

const sampled = (o: SampleOutcome) => {
  assert.strictEqual(o._tag, "Sampled", o._tag === "Failed" ? o.error : "")
  return (o as Extract<SampleOutcome, { _tag: "Sampled" }>).sample
}

describe("HttpTeacher", () => {
  it("samples with a seed exactly what the server answers directly, with top-k + tail per position", async () => {
    const { outcomes, stats } = await sampleWith(endpoint(server.url))
    for (const [i, p] of prompts.entries()) {
      const answer = await direct(p)
      const s = sampled(outcomes[i]!)
      assert.strictEqual(s.text, answer.choices[0]!.text)
      assert.strictEqual(s.finishReason, answer.choices[0]!.finish_reason === "length" ? "length" : "stop")
      assert.deepStrictEqual(Array.from(s.tokenLogProbs!), Array.from(Float32Array.from(answer.choices[0]!.logprobs.token_logprobs)))
      const top = s.top!
      assert.strictEqual(top.k, 3)
      assert.strictEqual(top.tailLogProb.length, s.tokenLogProbs!.length)
      // The k alternatives and the tail hold the whole mass.
      const mass = Math.exp(top.tailLogProb[0]!) + [0, 1, 2].reduce((m, j) => m + Math.exp(top.logProbs[j]!), 0)
      assert.approximately(mass, 1, 1e-4)
      assert.deepStrictEqual(s.usage, { input: answer.usage.prompt_tokens, output: answer.usage.completion_tokens })
    }
    assert.strictEqual(stats.requests, 2)
    assert.strictEqual(stats.retries, 0)
    assert.approximately(stats.cost, (stats.inputTokens * 1 + stats.outputTokens * 2) / 1e6, 1e-12)
  })

  it("the chat API samples through /chat/completions", async () => {
    const { outcomes } = await sampleWith(endpoint(server.url, { api: "chat" }), {}, [prompts[0]!])
    const s = sampled(outcomes[0]!)
    assert.isString(s.text)
    assert.strictEqual(s.top!.k, 3)
  })

  it("retries 429 (Retry-After 0 and 1) and 500, counting the retries, then equals the direct answer", async () => {
    const plan = [{ status: 429, retryAfter: "0" }, { status: 500 }, { status: 429, retryAfter: "1" }] as const
    const proxy: Proxy = await startProxy(server.url, (i) => plan[i] ?? "forward")
    try {
      const started = Date.now()
      const { outcomes, stats } = await sampleWith(endpoint(proxy.url, { concurrency: 1 }), { apiKey: "sk-proxy-test" })
      assert.isAtLeast(Date.now() - started, 1000) // Retry-After: 1 waited a second
      assert.strictEqual(stats.retries, 3)
      assert.strictEqual(stats.requests, 5)
      assert.strictEqual(proxy.forwarded, 2)
      assert.deepStrictEqual(proxy.authorizations, Array(5).fill("Bearer sk-proxy-test"))
      for (const [i, p] of prompts.entries()) assert.strictEqual(sampled(outcomes[i]!).text, (await direct(p)).choices[0]!.text)
    } finally {
      await proxy.close()
    }
  })

  it("a prompt that still fails comes back with its error (URL and status, never the key); a 400 is not retried", async () => {
    const key = "sk-never-echoed-1234"
    const proxy = await startProxy(server.url, (i) => (i < 3 ? { status: 500 } : { status: 400 }))
    try {
      const { outcomes, stats } = await sampleWith(endpoint(proxy.url, { concurrency: 1, retries: 2 }), { apiKey: key })
      assert.deepStrictEqual(outcomes.map((o) => o._tag), ["Failed", "Failed"])
      const [first, second] = outcomes.map((o) => (o as Extract<SampleOutcome, { _tag: "Failed" }>).error)
      assert.strictEqual(first, `POST ${proxy.url}/v1/completions: 500 Internal Server Error: planned 500`)
      assert.strictEqual(second, `POST ${proxy.url}/v1/completions: 400 Bad Request: planned 400`)
      assert.deepStrictEqual([stats.requests, stats.retries, stats.failures], [4, 2, 2])
    } finally {
      await proxy.close()
    }
  })

  it("a request past its timeout is retried, then fails naming the time limit", async () => {
    const proxy = await startProxy(server.url, () => "hang")
    try {
      const { outcomes, stats } = await sampleWith(endpoint(proxy.url, { timeoutSeconds: 0.2, retries: 1 }), {}, [prompts[0]!])
      assert.strictEqual((outcomes[0] as Extract<SampleOutcome, { _tag: "Failed" }>).error, `POST ${proxy.url}/v1/completions: no answer within 0.2s`)
      assert.strictEqual(stats.retries, 1)
    } finally {
      await proxy.close()
    }
  })

  it("answered requests are cached by their content: the next call sends none", async () => {
    const responses = join(dir, "responses")
    const first = await sampleWith(endpoint(server.url, { responses }))
    assert.strictEqual(first.stats.requests, 2)
    assert.strictEqual(readdirSync(responses).filter((f) => f.endsWith(".json")).length, 2)
    const again = await sampleWith(endpoint(server.url, { responses }))
    assert.deepStrictEqual([again.stats.requests, again.stats.cacheHits], [0, 2])
    assert.deepStrictEqual(again.outcomes, first.outcomes)
    // Another seed is another request.
    const other = await sampleWith(endpoint(server.url, { responses }), {}, [{ ...prompts[0]!, seed: 99 }])
    assert.deepStrictEqual([other.stats.requests, other.stats.cacheHits], [1, 0])
    assert.strictEqual(ResponseCache.requestKey("u", { a: 1, b: 2 }), ResponseCache.requestKey("u", { b: 2, a: 1 }))
  })

  it("spaces requests to requestsPerMinute", async () => {
    const started = Date.now()
    await sampleWith(endpoint(server.url, { requestsPerMinute: 300, concurrency: 3 }), {}, [0, 1, 2].map((i) => ({ id: `r${i}`, text: "x", seed: i })))
    assert.isAtLeast(Date.now() - started, 400) // 3 requests, 200 ms apart
  })

  it("score is refused with a message naming the endpoint", async () => {
    const exit = await Effect.runPromiseExit(Effect.flatMap(HttpTeacher.make(endpoint(server.url)), (t) => t.score([], 3, 1)))
    assert.isTrue(exit._tag === "Failure" && JSON.stringify(exit.cause).includes("cannot score given tokens"))
  })
})
