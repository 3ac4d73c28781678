import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import type { Dataset } from "../../src/domain/Artifact.js"
import type { FileDatasetOptions } from "../../src/data/files.js"
import { loadFileDataset, parseCsv, resolveDataPath } from "../../src/data/files.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "distillery-files-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

let counter = 0
/** Writes `text` to a fresh file and returns its absolute path. */
const write = (text: string, ext: string): string => {
  const file = path.join(dir, `f${counter++}.${ext}`)
  fs.writeFileSync(file, text)
  return file
}

const base = { validation: 0, test: 0, seed: 1, label: "label" }
const csv = (text: string, options: Partial<FileDatasetOptions> = {}): FileDatasetOptions => ({
  ...base,
  path: write(text, "csv"),
  format: "csv",
  features: ["a", "b"],
  ...options
})
const jsonl = (text: string, options: Partial<FileDatasetOptions> = {}): FileDatasetOptions => ({
  ...base,
  path: write(text, "jsonl"),
  format: "jsonl",
  features: ["a", "b"],
  ...options
})

/** All examples back in file order (ids are the data-row index). */
const rows = (ds: Dataset): Array<{ id: number; x: Array<number>; y: number }> => {
  const d = ds.featureShape[0]!
  const out: Array<{ id: number; x: Array<number>; y: number }> = []
  for (const split of [ds.splits.train, ds.splits.validation, ds.splits.test]) {
    split.ids.forEach((id, i) => out.push({ id, x: Array.from(split.x.subarray(i * d, (i + 1) * d)), y: split.y[i]! }))
  }
  return out.sort((p, q) => p.id - q.id)
}

const failure = (options: FileDatasetOptions) => Effect.flip(loadFileDataset(options))

describe("parseCsv", () => {
  it("handles quotes, doubled quotes, embedded newlines, CRLF, a BOM and blank lines", () => {
    const result = parseCsv('\uFEFFa,b\r\n"x, y","say ""hi"""\r\n\r\n"multi\nline",2\n"",3')
    assert.deepStrictEqual(result, Either.right([
      { line: 1, fields: ["a", "b"] },
      { line: 2, fields: ["x, y", 'say "hi"'] },
      { line: 4, fields: ["multi\nline", "2"] },
      { line: 6, fields: ["", "3"] }
    ]))
  })

  it("reports an unclosed quote at the line it opened and junk after a closing quote", () => {
    assert.deepStrictEqual(parseCsv('a\n1\n"open\n\n'), Either.left({ line: 3, message: "a quoted field opened here is never closed" }))
    const junk = parseCsv('a,b\n"x"y,1\n')
    assert.isTrue(Either.isLeft(junk) && junk.left.line === 2 && junk.left.message.includes("after a closing quote"))
  })
})

describe("csv datasets", () => {
  it.effect("reads numeric columns and infers sorted string classes", () =>
    Effect.gen(function* () {
      const ds = yield* loadFileDataset(csv(' a , b ,label,note\n1,2,dog,"x, y"\n3.5,-4,cat,""\n0,1e2,dog,z\n'))
      assert.deepStrictEqual(ds.classNames, ["cat", "dog"])
      assert.deepStrictEqual(ds.featureShape, [2])
      assert.deepStrictEqual(rows(ds), [
        { id: 0, x: [1, 2], y: 1 },
        { id: 1, x: [3.5, -4], y: 0 },
        { id: 2, x: [0, 100], y: 1 }
      ])
      assert.match(ds.name, /^f\d+$/)
    })
  )

  it.effect("uses integer labels as is and declared classes by name or index", () =>
    Effect.gen(function* () {
      const ints = yield* loadFileDataset(csv("a,b,label\n1,1,2\n2,2,0\n"))
      assert.deepStrictEqual(ints.classNames, ["0", "1", "2"])
      assert.deepStrictEqual(rows(ints).map((r) => r.y), [2, 0])
      const named = yield* loadFileDataset(csv("a,b,label\n1,1,no\n2,2,1\n", { classes: ["no", "yes"] }))
      assert.deepStrictEqual(named.classNames, ["no", "yes"])
      assert.deepStrictEqual(rows(named).map((r) => r.y), [0, 1])
    })
  )

  it.effect("reads one column holding an array, as JSON or space separated", () =>
    Effect.gen(function* () {
      const ds = yield* loadFileDataset(csv('pixels,label\n"[0.5, 1, 2]",0\n3 4 5,1\n', { features: "pixels" }))
      assert.deepStrictEqual(ds.featureShape, [3])
      assert.deepStrictEqual(rows(ds).map((r) => r.x), [[0.5, 1, 2], [3, 4, 5]])
    })
  )

  it.effect("splits stratified with the seed", () =>
    Effect.gen(function* () {
      const body = Array.from({ length: 40 }, (_, i) => `${i},${i % 4},${i % 2 === 0 ? "even" : "odd"}`).join("\n")
      const options = csv(`a,b,label\n${body}\n`, { validation: 0.1, test: 0.2 })
      const ds = yield* loadFileDataset(options)
      assert.deepStrictEqual([ds.splits.train, ds.splits.validation, ds.splits.test].map((s) => s.y.length), [28, 4, 8])
      assert.deepStrictEqual([...ds.splits.test.y].filter((y) => y === 0).length, 4)
      assert.deepStrictEqual(yield* loadFileDataset(options), ds)
    })
  )

  it.effect("names an unknown column with the header's line and the columns there are", () =>
    Effect.gen(function* () {
      const options = csv("a,b,label\n1,2,x\n", { label: "lable" })
      const error = yield* failure(options)
      assert.strictEqual(error._tag, "DataError")
      assert.strictEqual(error.message, `${options.path}:1: column 'lable' not found (did you mean 'label'?); columns are: a, b, label`)
      assert.strictEqual(error.line, 1)
      assert.strictEqual(error.key, "lable")
      assert.strictEqual(error.file, options.path)
    })
  )

  it.effect("names the line and column of a value that is not a number", () =>
    Effect.gen(function* () {
      const options = csv("a,b,label\n1,2,x\n1,two,y\n")
      const error = yield* failure(options)
      assert.strictEqual(error.message, `${options.path}:3: feature 'b' has value 'two', not a number`)
    })
  )

  it.effect("names a row with the wrong number of fields", () =>
    Effect.gen(function* () {
      const options = csv("a,b,label\n1,2,x\n\n1,2\n")
      const error = yield* failure(options)
      assert.strictEqual(error.message, `${options.path}:4: expected 3 fields (a, b, label), found 2`)
    })
  )

  it.effect("names a label outside the declared classes and lists them", () =>
    Effect.gen(function* () {
      const options = csv("a,b,label\n1,2,cat\n1,2,cow\n", { classes: ["cat", "dog"] })
      const error = yield* failure(options)
      assert.strictEqual(
        error.message,
        `${options.path}:3: label 'cow' is not one of the classes: cat, dog (or an index below 2)`
      )
      const index = yield* failure(csv("a,b,label\n1,2,2\n", { classes: ["cat", "dog"] }))
      assert.match(index.message, /:2: label '2' is not one of the classes/)
    })
  )

  it.effect("refuses a missing label unless unlabelled rows are allowed, then keeps them as -1", () =>
    Effect.gen(function* () {
      const text = "a,b,label\n1,2,cat\n3,4,\n5,6,dog\n"
      const error = yield* failure(csv(text))
      assert.match(error.message, /:3: no label in 'label'; set allowUnlabelled: true/)
      const ds = yield* loadFileDataset(csv(text, { allowUnlabelled: true }))
      assert.deepStrictEqual(rows(ds).map((r) => r.y), [0, -1, 1])
      assert.deepStrictEqual(ds.classNames, ["cat", "dog"])
    })
  )

  it.effect("reports CSV syntax errors, empty files and missing files", () =>
    Effect.gen(function* () {
      const unclosed = csv('a,b,label\n1,2,"x\n')
      assert.strictEqual((yield* failure(unclosed)).message, `${unclosed.path}:2: a quoted field opened here is never closed`)
      const empty = csv("")
      assert.strictEqual((yield* failure(empty)).message, `${empty.path}: the file is empty; expected a header row`)
      const headerOnly = csv("a,b,label\n")
      assert.strictEqual((yield* failure(headerOnly)).message, `${headerOnly.path}: no data rows`)
      const missing = yield* failure({ ...csv(""), path: "nope/missing.csv", baseDir: dir })
      assert.strictEqual(
        missing.message,
        `nope/missing.csv: cannot read the file (resolved to ${path.join(dir, "nope/missing.csv")}): ENOENT`
      )
    })
  )
})

describe("jsonl datasets", () => {
  it.effect("reads keys, skips blank lines and infers classes", () =>
    Effect.gen(function* () {
      const ds = yield* loadFileDataset(jsonl('{"a":1,"b":2,"label":"y"}\n\n{"label":"x","b":4,"a":3}\r\n'))
      assert.deepStrictEqual(ds.classNames, ["x", "y"])
      assert.deepStrictEqual(rows(ds), [
        { id: 0, x: [1, 2], y: 1 },
        { id: 1, x: [3, 4], y: 0 }
      ])
    })
  )

  it.effect("reads an array key and integer labels", () =>
    Effect.gen(function* () {
      const ds = yield* loadFileDataset(jsonl('{"v":[1,2],"label":1}\n{"v":[3,4],"label":0}\n', { features: "v" }))
      assert.deepStrictEqual(ds.featureShape, [2])
      assert.deepStrictEqual(ds.classNames, ["0", "1"])
      assert.deepStrictEqual(rows(ds).map((r) => [r.x, r.y]), [[[1, 2], 1], [[3, 4], 0]])
    })
  )

  it.effect("names invalid JSON by line", () =>
    Effect.gen(function* () {
      const options = jsonl('{"a":1,"b":2,"label":0}\n{"a":1,\n')
      const error = yield* failure(options)
      assert.isTrue(error.message.startsWith(`${options.path}:2: not valid JSON: `), error.message)
      const notObject = jsonl("[1,2]\n")
      assert.strictEqual((yield* failure(notObject)).message, `${notObject.path}:1: expected a JSON object per line, found an array`)
    })
  )

  it.effect("names a missing key with the keys the row has", () =>
    Effect.gen(function* () {
      const options = jsonl('{"a":1,"b":2,"label":0}\n{"a":1,"c":2,"label":0}\n')
      const error = yield* failure(options)
      assert.strictEqual(error.message, `${options.path}:2: key 'b' not found (did you mean 'a'?); keys are: a, c, label`)
      assert.strictEqual(error.key, "b")
    })
  )

  it.effect("names a label key that no row has", () =>
    Effect.gen(function* () {
      const options = jsonl('{"a":1,"b":2,"label":0}\n', { label: "class" })
      const error = yield* failure(options)
      assert.strictEqual(error.message, `${options.path}: label key 'class' not found in any row; keys are: a, b, label`)
    })
  )

  it.effect("names arrays of the wrong length or with non-numbers, and non-number features", () =>
    Effect.gen(function* () {
      const ragged = jsonl('{"v":[1,2],"label":0}\n{"v":[1],"label":0}\n', { features: "v" })
      assert.strictEqual((yield* failure(ragged)).message, `${ragged.path}:2: feature column 'v' holds 1 values; earlier rows hold 2`)
      const bad = jsonl('{"v":[1,"x"],"label":0}\n', { features: "v" })
      assert.strictEqual((yield* failure(bad)).message, `${bad.path}:1: feature column 'v' element 1 is 'x', not a number`)
      const stringy = jsonl('{"a":"1","b":2,"label":0}\n')
      assert.strictEqual((yield* failure(stringy)).message, `${stringy.path}:1: feature 'a' has value '1', not a number`)
    })
  )

  it.effect("keeps null labels as -1 when allowed", () =>
    Effect.gen(function* () {
      const text = '{"a":1,"b":2,"label":"x"}\n{"a":1,"b":2,"label":null}\n{"a":1,"b":2}\n'
      assert.match((yield* failure(jsonl(text))).message, /:2: no label in 'label'/)
      const ds = yield* loadFileDataset(jsonl(text, { allowUnlabelled: true }))
      assert.deepStrictEqual(rows(ds).map((r) => r.y), [0, -1, -1])
    })
  )
})

describe("resolveDataPath", () => {
  it("keeps absolute paths and resolves relative ones against baseDir or the cwd", () => {
    assert.strictEqual(resolveDataPath("/abs/x.csv", "/base"), "/abs/x.csv")
    assert.strictEqual(resolveDataPath("d/x.csv", "/base"), "/base/d/x.csv")
    assert.strictEqual(resolveDataPath("d/x.csv"), path.join(process.cwd(), "d/x.csv"))
  })
})
