/**
 * `http_teacher -> lm_generate -> lm_filter -> lm_train` through the executor, with the artifact and
 * results stores on disk, against real servers on loopback: the API key, given only as an environment
 * variable's name, reaches the server and nowhere else (no file under the store folder, no recorded
 * output); a server process killed mid-generation fails the node with a tagged message naming the URL,
 * and after a restart the run asks only for the prompts that were never answered.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import type { ChildProcessWithoutNullStreams } from "node:child_process"
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, Layer } from "effect"
import { initBackend } from "../../src/backend/Backend.js"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { Generations } from "../../src/domain/Artifact.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import type { RunningServer } from "../../src/serve/OpenAiServer.js"
import { startServer } from "../../src/serve/OpenAiServer.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { startProxy, tinyLm } from "../teachers/loopback.js"

const dir = mkdtempSync(join(tmpdir(), "distillery-http-teacher-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const prompts = join(dir, "prompts.txt")
writeFileSync(prompts, ["The jury said", "It was", "Mr. Smith", "In the", "She had", "They were"].join("\n") + "\n")

/** A pipeline sampling `baseUrl` through http_teacher, tokenizing with a BPE student tokenizer, filtering and teaching the student. */
const pipelineFile = (name: string, baseUrl: string, extra: string) => {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, `name: ${name}
seed: 1
nodes:
  - { id: brown, kind: text, params: { source: brown, limit: 8 } }
  - { id: student_tokens, kind: tokenizer, inputs: { corpus: brown }, params: { type: bpe, vocabSize: 300 } }
  - id: endpoint
    kind: http_teacher
    params: { baseUrl: "${baseUrl}/v1", model: tiny, ${extra} }
  - id: samples
    kind: lm_generate
    inputs: { model: endpoint, tokenizer: student_tokens }
    params: { promptFile: ${JSON.stringify(prompts)}, maxNewTokens: 12, temperature: 1 }
  - id: sft
    kind: lm_filter
    inputs: { samples: samples, corpus: brown }
    params: { minTokens: 1 }
  - id: student
    kind: lm_train
    inputs: { corpus: sft.corpus, tokenizer: student_tokens }
    params:
      model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }
      sequenceLength: 16
      batchSize: 2
      steps: 2
`)
  return file
}

/** Runs a pipeline file with both stores in `store`; the exit and every line the run logged. */
const runIn = (store: string, file: string) => {
  const lines: Array<string> = []
  const layer = Executor.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(ArtifactStore.layerFileSystem(store), ResultsStore.layer(join(store, "results.duckdb")), TfBackend.layer("cpu"), Reporter.layerSilent))
  )
  const program = Effect.gen(function* () {
    const pipeline = yield* loadPipelineFile(file, builtinRegistry)
    const executor = yield* Executor
    return yield* executor.run(pipeline)
  }).pipe(Effect.provide(layer))
  const log = console.log
  const error = console.error
  console.log = (...a: Array<unknown>) => void lines.push(a.join(" "))
  console.error = (...a: Array<unknown>) => void lines.push(a.join(" "))
  return Effect.runPromiseExit(program).finally(() => {
    console.log = log
    console.error = error
  }).then((exit) => ({ exit, output: [...lines, Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""].join("\n") }))
}

const filesUnder = (root: string): Array<string> =>
  readdirSync(root).flatMap((name) => {
    const full = join(root, name)
    return statSync(full).isDirectory() ? filesUnder(full) : [full]
  })

beforeAll(() => initBackend("cpu"))

describe("http_teacher in a pipeline", () => {
  let server: RunningServer
  beforeAll(async () => {
    server = await startServer({ model: tinyLm(), name: "tiny", port: 0, concurrency: 2 })
  })
  afterAll(() => server?.close())

  it("sends the key only to the server: no file under the store and no output holds it", async () => {
    const key = `sk-hygiene-${Math.random().toString(36).slice(2)}-canary`
    const proxy = await startProxy(server.url)
    const store = join(dir, "hygiene-store")
    process.env.DISTILLERY_TEST_TEACHER_KEY = key
    try {
      const { exit, output } = await runIn(store, pipelineFile("hygiene", proxy.url, "apiKeyEnv: DISTILLERY_TEST_TEACHER_KEY, concurrency: 3"))
      assert.isTrue(Exit.isSuccess(exit), output)
      const result = (exit as unknown as Exit.Success<{ nodes: ReadonlyArray<{ id: string; status: string; result?: { outputs: Record<string, unknown>; metrics: ReadonlyArray<{ name: string; value: number }>; info: unknown } }> }, never>).value
      const samples = result.nodes.find((n) => n.id === "samples")!.result!
      const g = samples.outputs.generations as Generations
      assert.strictEqual(g.promptIds.length, 6)
      assert.isUndefined(g.scores)
      assert.strictEqual(g.offsets[6], g.tokens.length)
      assert.include(JSON.stringify(samples.info), "omitted: the endpoint's vocabulary is not the student's")
      assert.deepStrictEqual(Object.fromEntries(samples.metrics.filter((m) => ["requests", "cache_hits", "failures"].includes(m.name)).map((m) => [m.name, m.value])), { requests: 6, cache_hits: 0, failures: 0 })
      assert.strictEqual(result.nodes.find((n) => n.id === "student")!.status, "executed")
      assert.deepStrictEqual(new Set(proxy.authorizations), new Set([`Bearer ${key}`]))
      const files = filesUnder(store)
      assert.strictEqual(files.filter((f) => f.startsWith(join(store, "responses")) && f.endsWith(".json")).length, 6)
      for (const f of files) assert.notInclude(readFileSync(f).toString("latin1"), key, f)
      assert.notInclude(output + JSON.stringify(result, (_, v) => (ArrayBuffer.isView(v) ? undefined : v)), key)

      // A missing key is named by its variable, before any request.
      const missing = await runIn(join(dir, "missing-store"), pipelineFile("missing", proxy.url, "apiKeyEnv: DISTILLERY_TEST_TEACHER_KEY_UNSET"))
      assert.isTrue(Exit.isFailure(missing.exit))
      assert.include(missing.output, "the environment variable DISTILLERY_TEST_TEACHER_KEY_UNSET is not set")
    } finally {
      delete process.env.DISTILLERY_TEST_TEACHER_KEY
      await proxy.close()
    }
  })
})

describe("wiring", () => {
  it("a Teacher input takes an http_teacher or a LanguageModel; a LanguageModel input refuses an http_teacher", async () => {
    const file = join(dir, "wiring.yaml")
    writeFileSync(file, `name: wiring
nodes:
  - { id: bytes, kind: tokenizer, params: { type: bytes } }
  - { id: endpoint, kind: http_teacher, params: { baseUrl: "http://127.0.0.1:1/v1", model: m } }
  - { id: samples, kind: lm_generate, inputs: { model: endpoint, tokenizer: bytes }, params: { unconditional: true } }
  - { id: score, kind: lm_score, inputs: { model: endpoint, samples: samples } }
`)
    const exit = await Effect.runPromiseExit(loadPipelineFile(file, builtinRegistry))
    assert.isTrue(Exit.isFailure(exit))
    const message = Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause)
    assert.include(message, "node 'score': input 'model' takes LanguageModel but 'endpoint.teacher' (http_teacher) gives Teacher")
    assert.notInclude(message, "node 'samples'")
  })
})

describe("http_teacher against a server process that is killed", () => {
  const serve = async (): Promise<{ child: ChildProcessWithoutNullStreams; url: string; exited: Promise<unknown> }> => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/teachers/serveChild.ts"], { env: { ...process.env, NO_COLOR: "1" } })
    const exited = new Promise((resolve) => child.on("exit", resolve))
    let stdout = ""
    let stderr = ""
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString()
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)
        if (m !== null) resolve(m[1]!)
      })
      void exited.then(() => reject(new Error(`the server exited before listening: ${stdout}${stderr}`)))
    })
    return { child, url, exited }
  }

  it("fails with a tagged error naming the URL, then resumes: answered prompts are not asked again", async () => {
    const store = join(dir, "resume-store")
    const first = await serve()
    const proxy = await startProxy(first.url, () => "forward", (n) => {
      if (n === 3) {
        first.child.kill("SIGKILL")
        proxy.hold = first.exited
      }
    })
    try {
      const file = pipelineFile("resume", proxy.url, "concurrency: 1, retries: 1")
      const failed = await runIn(store, file)
      assert.isTrue(Exit.isFailure(failed.exit))
      assert.include(failed.output, "RunFailedError")
      assert.include(failed.output, "node 'samples': 3 of 6 prompts failed after their retries")
      assert.include(failed.output, `POST ${proxy.url}/v1/completions: no answer`)
      assert.strictEqual(proxy.forwarded, 3)

      const second = await serve()
      proxy.hold = undefined
      proxy.target = second.url
      proxy.forwarded = 0
      try {
        const resumed = await runIn(store, file)
        assert.isTrue(Exit.isSuccess(resumed.exit), resumed.output)
        assert.strictEqual(proxy.forwarded, 3) // only the three never answered
        const result = (resumed.exit as unknown as Exit.Success<{ nodes: ReadonlyArray<{ id: string; result?: { metrics: ReadonlyArray<{ name: string; value: number }> } }> }, never>).value
        const metrics = Object.fromEntries(result.nodes.find((n) => n.id === "samples")!.result!.metrics.map((m) => [m.name, m.value]))
        assert.deepStrictEqual([metrics.requests, metrics.cache_hits, metrics.failures], [3, 3, 0])
      } finally {
        second.child.kill("SIGTERM")
        await second.exited
      }
    } finally {
      await proxy.close()
    }
  })
})
