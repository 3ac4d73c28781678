/**
 * The OpenAI-compatible server as a user calls it, with the official `openai` client: a tiny byte-level
 * transformer with wide random weights (so every token and position moves its outputs) served in-process
 * on a random port of 127.0.0.1.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import OpenAI from "openai"
import { initBackend } from "../../src/backend/Backend.js"
import type { LanguageModel } from "../../src/domain/Artifact.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import { renderChat } from "../../src/serve/ChatTemplate.js"
import type { RunningServer } from "../../src/serve/OpenAiServer.js"
import { startServer } from "../../src/serve/OpenAiServer.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { encode } from "../../src/tokenizer/Tokenizer.js"
import { ownLogProbs, wideLanguageModel } from "../fixtures/transformer.js"

const tokenizer = bytesTokenizer() // 256 bytes + <pad> <bos> <eos>
const spec = decodeTransformerSpec({ type: "transformer", vocabSize: tokenizer.vocabSize, layers: 1, width: 32, heads: 4, kvHeads: 2, context: 64 })
const lm: LanguageModel = wideLanguageModel(spec, tokenizer, 5)

let server: RunningServer
let client: OpenAI
beforeAll(async () => {
  await initBackend("cpu")
  server = await startServer({ model: lm, name: "tiny", port: 0, concurrency: 2, fingerprint: "test" })
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 })
})
afterAll(() => server?.close())


/** A byte-level token's id from its text as the server writes it (`bytes:\xNN` or the character). */
const idOf = (token: string): number => {
  if (token.startsWith("bytes:")) return parseInt(token.slice("bytes:\\x".length), 16)
  return tokenizer.special[token] ?? new TextEncoder().encode(token)[0]!
}

const prompt = "The jury said"

describe("serve: OpenAI-compatible API", () => {
  it("lists the model", async () => {
    const models = await client.models.list()
    assert.deepStrictEqual(models.data.map((m) => [m.id, m.object, m.owned_by]), [["tiny", "model", "distillery"]])
    assert.strictEqual((await client.models.retrieve("tiny")).id, "tiny")
  })

  it("completes a prompt; the same seed gives the same text, another seed another", async () => {
    const ask = (seed: number) => client.completions.create({ model: "tiny", prompt, max_tokens: 24, temperature: 1, seed })
    const [a, b, c] = [await ask(7), await ask(7), await ask(8)]
    assert.strictEqual(a.object, "text_completion")
    assert.strictEqual(a.system_fingerprint, "test")
    assert.strictEqual(a.choices[0]!.text, b.choices[0]!.text)
    assert.notStrictEqual(a.choices[0]!.text, c.choices[0]!.text)
    // "stop": the model drew <eos> (a random model does, now and then); else it used all 24 tokens.
    const used = a.usage!.completion_tokens
    assert.strictEqual(a.choices[0]!.finish_reason, used === 24 ? "length" : "stop")
    assert.deepStrictEqual(a.usage, { prompt_tokens: encode(tokenizer, prompt).length, completion_tokens: used, total_tokens: encode(tokenizer, prompt).length + used })
    // n choices draw from their own seeds; the first is the one-choice answer.
    const two = await client.completions.create({ model: "tiny", prompt, max_tokens: 24, seed: 7, n: 2 })
    assert.deepStrictEqual(two.choices.map((ch) => ch.index), [0, 1])
    assert.strictEqual(two.choices[0]!.text, a.choices[0]!.text)
    assert.notStrictEqual(two.choices[1]!.text, a.choices[0]!.text)
  })

  it("logprobs: the top entries are Distillery's own log-softmax at each position, and their probabilities sum to at most 1", async () => {
    const r = await client.completions.create({ model: "tiny", prompt, max_tokens: 12, seed: 3, logprobs: 5 })
    const lp = r.choices[0]!.logprobs!
    const generated = lp.tokens!.map(idOf)
    const promptIds = encode(tokenizer, prompt)
    const P = promptIds.length
    const V = spec.vocabSize
    const ours = ownLogProbs(spec, lm.weights, [...promptIds, ...generated])
    let maxDiff = 0
    generated.forEach((id, i) => {
      const row = ours.subarray((P - 1 + i) * V, (P + i) * V) // (V) log-probs of the token at P + i
      const top = Object.entries(lp.top_logprobs![i]!)
      assert.strictEqual(top.length, 5)
      let mass = 0
      for (const [token, logprob] of top) {
        mass += Math.exp(logprob)
        maxDiff = Math.max(maxDiff, Math.abs(logprob - row[idOf(token)]!))
      }
      assert.isAtMost(mass, 1 + 1e-9)
      const best = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]!).slice(0, 5)
      assert.deepStrictEqual(top.map(([token]) => idOf(token)).sort(), best.sort())
      maxDiff = Math.max(maxDiff, Math.abs(lp.token_logprobs![i]! - row[id]!))
    })
    assert.isAtMost(maxDiff, 1e-4)
    assert.deepStrictEqual(lp.text_offset!.slice(0, 1), [0])
  })

  it("chat: messages through the template, logprobs with top_logprobs", async () => {
    const messages = [{ role: "system" as const, content: "Be brief." }, { role: "user" as const, content: "Hello" }]
    const r = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 10, seed: 1, logprobs: true, top_logprobs: 3 })
    assert.strictEqual(r.object, "chat.completion")
    const choice = r.choices[0]!
    assert.strictEqual(choice.message.role, "assistant")
    const eos = choice.finish_reason === "stop" ? 1 : 0
    assert.strictEqual(choice.finish_reason, r.usage!.completion_tokens === 10 && eos === 0 ? "length" : "stop")
    assert.strictEqual(r.usage!.prompt_tokens, encode(tokenizer, "system: Be brief.\nuser: Hello\nassistant:").length)
    assert.strictEqual(renderChat(messages), "system: Be brief.\nuser: Hello\nassistant:")
    const content = choice.logprobs!.content!
    assert.strictEqual(content.length, r.usage!.completion_tokens - eos)
    for (const t of content) {
      assert.strictEqual(t.top_logprobs.length, 3)
      assert.isAtMost(t.top_logprobs.reduce((s, a) => s + Math.exp(a.logprob), 0), 1 + 1e-9)
      assert.isAtMost(t.logprob, t.top_logprobs[0]!.logprob)
    }
    assert.strictEqual(new TextDecoder().decode(Uint8Array.from(content.flatMap((t) => t.bytes!))), choice.message.content)
  })

  it("streams chunks that concatenate to the text of the same request without streaming", async () => {
    const whole = await client.completions.create({ model: "tiny", prompt, max_tokens: 30, seed: 11 })
    const stream = await client.completions.create({ model: "tiny", prompt, max_tokens: 30, seed: 11, stream: true, stream_options: { include_usage: true } })
    let text = ""
    let finish: string | null = null
    let usage: unknown
    for await (const chunk of stream) {
      for (const ch of chunk.choices) {
        text += ch.text
        finish = ch.finish_reason ?? finish
      }
      usage = chunk.usage ?? usage
    }
    assert.strictEqual(text, whole.choices[0]!.text)
    assert.strictEqual(finish, whole.choices[0]!.finish_reason)
    assert.deepStrictEqual(usage, whole.usage)

    const messages = [{ role: "user" as const, content: "Tell me" }]
    const chat = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 20, seed: 2 })
    const chunks = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 20, seed: 2, stream: true })
    let content = ""
    let role: string | undefined
    for await (const chunk of chunks) {
      content += chunk.choices[0]?.delta.content ?? ""
      role ??= chunk.choices[0]?.delta.role
    }
    assert.strictEqual(role, "assistant")
    assert.strictEqual(content, chat.choices[0]!.message.content)
  })

  it("stop strings end the text before them, streamed or not", async () => {
    const free = (await client.completions.create({ model: "tiny", prompt, max_tokens: 40, seed: 4 })).choices[0]!.text
    // Printable ASCII characters of the free text: the last one stops it where it first occurs; an earlier
    // one opens a stop string that never completes, which a stream holds back until it cannot be one.
    const ascii = [...free.matchAll(/[!-~]/g)].map((m) => m[0])
    assert.isAtLeast(ascii.length, 2, `too few ASCII characters in ${JSON.stringify(free)}`)
    const stop = ascii[ascii.length - 1]!
    const never = `${ascii[0]!}\u0001\u0002\u0003`
    const expected = free.slice(0, free.indexOf(stop))
    const stopped = await client.completions.create({ model: "tiny", prompt, max_tokens: 40, seed: 4, stop: [never, stop] })
    assert.strictEqual(stopped.choices[0]!.text, expected)
    assert.strictEqual(stopped.choices[0]!.finish_reason, "stop")
    const stream = await client.completions.create({ model: "tiny", prompt, max_tokens: 40, seed: 4, stop: [never, stop], stream: true })
    let text = ""
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? ""
    assert.strictEqual(text, expected)
  })

  it("answers bad requests with 4xx and OpenAI's error shape", async () => {
    const refused = async (call: Promise<unknown>) => {
      try {
        await call
      } catch (e) {
        assert.instanceOf(e, OpenAI.APIError)
        return e
      }
      return assert.fail("the request succeeded")
    }
    const unknownModel = await refused(client.completions.create({ model: "gpt-4", prompt }))
    assert.strictEqual(unknownModel.status, 404)
    assert.strictEqual(unknownModel.code, "model_not_found")
    assert.include(unknownModel.message, "this server serves 'tiny'")
    const wrongType = await refused(client.completions.create({ model: "tiny", prompt, temperature: "hot" as unknown as number }))
    assert.strictEqual(wrongType.status, 400)
    assert.strictEqual(wrongType.param, "temperature")
    assert.strictEqual(wrongType.type, "invalid_request_error")
    const tooLong = await refused(client.completions.create({ model: "tiny", prompt: "x".repeat(80) }))
    assert.strictEqual(tooLong.status, 400)
    assert.strictEqual(tooLong.code, "context_length_exceeded")
    const echo = await refused(client.completions.create({ model: "tiny", prompt, echo: true }))
    assert.strictEqual(echo.param, "echo")

    const raw = async (path: string, init?: RequestInit) => {
      const res = await fetch(`${server.url}${path}`, init)
      const body = (await res.json()) as { error: Record<string, unknown> }
      assert.hasAllKeys(body.error, ["message", "type", "param", "code"])
      return { status: res.status, error: body.error, allow: res.headers.get("allow") }
    }
    const badJson = await raw("/v1/completions", { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" })
    assert.strictEqual(badJson.status, 400)
    assert.strictEqual(badJson.error.code, "invalid_json")
    const unknownField = await raw("/v1/completions", { method: "POST", body: JSON.stringify({ model: "tiny", prompt, tempreature: 1 }) })
    assert.strictEqual(unknownField.status, 400)
    assert.strictEqual(unknownField.error.param, "tempreature")
    const route = await raw("/v1/embeddings", { method: "POST", body: "{}" })
    assert.strictEqual(route.status, 404)
    assert.include(route.error.message as string, "POST /v1/chat/completions")
    const method = await raw("/v1/completions")
    assert.strictEqual(method.status, 405)
    assert.strictEqual(method.allow, "POST")
  })

  it("runs concurrent requests (queued past the limit) with the same results as one at a time", async () => {
    const ask = (seed: number) => client.completions.create({ model: "tiny", prompt, max_tokens: 8, seed }).then((r) => r.choices[0]!.text)
    const tensors = tf.memory().numTensors
    const together = await Promise.all([1, 2, 3, 4].map(ask))
    const apart: Array<string> = []
    for (const seed of [1, 2, 3, 4]) apart.push(await ask(seed))
    assert.deepStrictEqual(together, apart)
    assert.strictEqual(tf.memory().numTensors, tensors)
  })
})
