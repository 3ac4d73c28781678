/**
 * Mutated pipelines never throw: every pipeline in pipelines/ is mutated a few hundred ways (seeded:
 * characters deleted, inserted or replaced with YAML's special characters, aliases and anchors put
 * where values start, lines duplicated, swapped, indented or cut short) and loaded as `run` and `sweep` load them. Each load either succeeds or fails
 * with a tagged load-time error whose message names the file (and a line wherever the text has one),
 * never an untagged exception (which the CLI would print as a stack trace).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { makeRng } from "../../src/domain/Random.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { loadPipelineFile, loadSweepFile } from "../../src/pipeline/Yaml.js"

const special = [":", "-", "*", "&", "!", "|", ">", "{", "}", "[", "]", ",", "#", "'", '"', "\t", "\\", "%", "@", "`", "?", " ", "\n", "0", "x"]
const mutationsPerFile = 40

const mutate = (text: string, rng: () => number): string => {
  const pick = (n: number) => Math.floor(rng() * n)
  const lines = text.split("\n")
  switch (pick(9)) {
    case 7: {
      // An alias or an anchor where a value starts (aliases to nowhere, anchors reused).
      const i = text.indexOf(": ", pick(text.length))
      const name = ["a", "b", "model"][pick(3)]
      return i < 0 ? text : `${text.slice(0, i + 2)}${rng() < 0.6 ? "*" : "&"}${name} ${text.slice(i + 2)}`
    }
    case 8:
      // A key whose value is an alias, before or after an anchor of that name.
      return rng() < 0.5 ? `x: *model\n${text}` : `${text}\nx: &model [*model]\n`
    case 0: {
      const i = pick(text.length)
      return text.slice(0, i) + text.slice(i + 1 + pick(4))
    }
    case 1: {
      const i = pick(text.length)
      return text.slice(0, i) + special[pick(special.length)] + text.slice(i)
    }
    case 2: {
      const i = pick(text.length)
      return text.slice(0, i) + special[pick(special.length)] + text.slice(i + 1)
    }
    case 3: {
      const i = pick(lines.length)
      return [...lines.slice(0, i + 1), lines[i], ...lines.slice(i + 1)].join("\n")
    }
    case 4: {
      const i = pick(lines.length)
      const j = pick(lines.length)
      const swapped = [...lines]
      swapped[i] = lines[j]!
      swapped[j] = lines[i]!
      return swapped.join("\n")
    }
    case 5: {
      const i = pick(lines.length)
      return lines.map((l, k) => (k !== i ? l : rng() < 0.5 ? `  ${l}` : l.replace(/^ {1,2}/, ""))).join("\n")
    }
    default:
      return text.slice(0, pick(text.length))
  }
}

const tagged = new Set(["PipelineError", "PluginError", "RegistryError"])

describe("mutated pipelines", () => {
  it("load or fail with a tagged, located error; nothing throws", { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "distillery-fuzz-"))
    const generator = makeRng(20261202)
    const rng = () => generator.next()
    const files = readdirSync("pipelines").filter((f) => f.endsWith(".yaml"))
    let loaded = 0
    let rejected = 0
    for (const name of files) {
      const original = readFileSync(join("pipelines", name), "utf8")
      for (let m = 0; m < mutationsPerFile; m++) {
        let text = original
        for (let k = 1 + Math.floor(rng() * 3); k > 0; k--) text = mutate(text, rng)
        const file = join(dir, `${m}-${name}`)
        writeFileSync(file, text)
        const load = /^sweep:/m.test(text) ? loadSweepFile(file, builtinRegistry) : loadPipelineFile(file, builtinRegistry)
        const exit = await Effect.runPromiseExit(load as Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>)
        if (Exit.isSuccess(exit)) {
          loaded++
          continue
        }
        const failure = Cause.failureOption(exit.cause)
        assert.isTrue(failure._tag === "Some", `${name} mutation ${m} threw:\n${Cause.pretty(exit.cause)}\n--- text ---\n${text}`)
        const error = (failure as { value: { _tag: string; message: string } }).value
        assert.isTrue(tagged.has(error._tag), `${name} mutation ${m}: untagged ${error._tag}: ${error.message}`)
        assert.include(error.message, file, `${name} mutation ${m}: the message does not name the file`)
        rejected++
      }
    }
    assert.strictEqual(loaded + rejected, files.length * mutationsPerFile)
    assert.isAbove(rejected, 0)
    assert.isAbove(loaded, 0)
  })
})
