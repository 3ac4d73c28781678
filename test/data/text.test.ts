/**
 * Text corpora: the Brown corpus without its tags, plain-text files and globs, JSONL / CSV records,
 * seeded splits by document, and every bad input as a DataError whose message names file and line.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { decodeArtifact, encodeArtifact } from "../../src/cache/Codec.js"
import { expandGlob } from "../../src/data/glob.js"
import type { TextCorpusOptions } from "../../src/data/text.js"
import {
  detokenize,
  firstInvalidUtf8,
  loadTextCorpus,
  splitDocuments,
  stripBrownTags,
  truncateText
} from "../../src/data/text.js"

const dir = mkdtempSync(join(tmpdir(), "distillery-text-"))
const write = (name: string, content: string | Uint8Array): string => {
  writeFileSync(join(dir, name), content)
  return name
}

const base = { validation: 0.2, test: 0.2, onLong: "fail" as const, baseDir: dir, seed: 1 }
const records = (path: string, extra: Partial<TextCorpusOptions> = {}) =>
  ({ ...base, source: path.endsWith(".csv") ? "csv" : "jsonl", path, fields: { prompt: "prompt", completion: "completion", id: "id" }, ...extra }) as TextCorpusOptions
const load = (options: TextCorpusOptions) => Effect.map(loadTextCorpus(options), (r) => r.corpus)
const failure = (options: TextCorpusOptions) => Effect.map(Effect.flip(loadTextCorpus(options)), (e) => e.message)

describe("the Brown corpus", () => {
  it("strips the tags and restores quotes and punctuation", () => {
    const source = "\n\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ,/, it/pps did/dod ./.\nIt/pps urged/vbd (/( a/at )/) ./.\n\n\nMerger/nn-hl proposed/vbn-hl\nHowever/wrb ./.\n"
    assert.strictEqual(stripBrownTags(source), 'The jury said "no", it did. It urged (a).\nMerger proposed\nHowever.')
    assert.strictEqual(detokenize(["a", "1/2", "b"]), "a 1/2 b")
  })

  it.effect("has 500 documents with ids and genres, and `limit` spreads its documents over them", () =>
    Effect.gen(function* () {
      const all = yield* load({ ...base, source: "brown" })
      assert.strictEqual(all.ids.length, 500)
      assert.strictEqual(all.ids[0], "ca01")
      assert.strictEqual(all.ids[499], "cr09")
      assert.match(all.texts[0]!, /^The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced "no evidence"/)
      assert.notMatch(all.texts.join(""), /\/(at|nn|vbd)\b/)
      assert.deepStrictEqual(all.metadata![0], { genre: "press: reportage" })
      const few = yield* load({ ...base, source: "brown", limit: 5 })
      assert.deepStrictEqual(few.ids, ["ca01", "cd13", "cg12", "cj07", "ck27"])
      assert.strictEqual(few.texts[1], all.texts[all.ids.indexOf("cd13")])
    })
  )
})

describe("splits by document", () => {
  const ids = Array.from({ length: 103 }, (_, i) => `doc${i}`)
  const members = (s: ReturnType<typeof splitDocuments>) => [...s.train, ...s.validation, ...s.test]

  it("puts every document in exactly one split, with the fractions rounded up", () => {
    const s = splitDocuments(ids, { validation: 0.1, test: 0.2 }, 3)
    assert.deepStrictEqual(members(s).sort((a, b) => a - b), ids.map((_, i) => i))
    assert.strictEqual(s.test.length, 21)
    assert.strictEqual(s.validation.length, 11)
    assert.deepStrictEqual([...s.train], [...s.train].sort((a, b) => a - b))
  })

  it("is seeded and depends on the ids, not on where they sit", () => {
    const a = splitDocuments(ids, { validation: 0.1, test: 0.2 }, 3)
    assert.deepStrictEqual(splitDocuments(ids, { validation: 0.1, test: 0.2 }, 3), a)
    assert.notDeepEqual([...splitDocuments(ids, { validation: 0.1, test: 0.2 }, 4).test], [...a.test])
    const reversed = [...ids].reverse()
    const b = splitDocuments(reversed, { validation: 0.1, test: 0.2 }, 3)
    const names = (idx: Int32Array, from: ReadonlyArray<string>) => [...idx].map((i) => from[i]!).sort()
    assert.deepStrictEqual(names(b.test, reversed), names(a.test, ids))
    assert.deepStrictEqual(names(b.validation, reversed), names(a.validation, ids))
  })

  it.effect("fails when nothing is left to train", () =>
    Effect.gen(function* () {
      write("two.jsonl", '{"text": "a"}\n{"text": "b"}\n')
      const message = yield* failure(records("two.jsonl", { fields: { text: "text", prompt: "prompt", completion: "completion", id: "id" } }))
      assert.match(message, /^two\.jsonl: the corpus has 2 document\(s\); validation 0\.2 and test 0\.2 leave none to train/)
    })
  )
})

describe("plain-text files", () => {
  mkdirSync(join(dir, "books", "deep"), { recursive: true })
  write("books/a.txt", "First paragraph\nstill first.\n\nSecond paragraph.\n")
  write("books/b.txt", "Only one line")
  write("books/deep/c.txt", "Deep.")
  write("books/notes.md", "not text")

  it("expands globs in sorted order, relative to the base directory", () => {
    assert.deepStrictEqual(expandGlob("books/*.txt", dir), ["books/a.txt", "books/b.txt"])
    assert.deepStrictEqual(expandGlob("books/**/*.txt", dir), ["books/a.txt", "books/b.txt", "books/deep/c.txt"])
    assert.deepStrictEqual(expandGlob(join(dir, "books", "?.txt"), "/"), [join(dir, "books/a.txt"), join(dir, "books/b.txt")])
  })

  it.effect("makes a document per file, paragraph or line", () =>
    Effect.gen(function* () {
      const files = yield* load({ ...base, source: "files", paths: "books/**/*.txt", unit: "file", validation: 0, test: 0 })
      assert.deepStrictEqual(files.ids, ["books/a.txt", "books/b.txt", "books/deep/c.txt"])
      assert.strictEqual(files.texts[2], "Deep.")
      const paragraphs = yield* load({ ...base, source: "files", paths: ["books/a.txt"], unit: "paragraph", validation: 0, test: 0 })
      assert.deepStrictEqual(paragraphs.ids, ["books/a.txt:1", "books/a.txt:4"])
      assert.deepStrictEqual(paragraphs.texts, ["First paragraph\nstill first.", "Second paragraph."])
      const lines = yield* load({ ...base, source: "files", paths: "books/a.txt", unit: "line", validation: 0, test: 0 })
      assert.deepStrictEqual(lines.ids, ["books/a.txt:1", "books/a.txt:2", "books/a.txt:4"])
    })
  )
})

describe("records", () => {
  it.effect("read prompt, completion, answer, rationale, ids and the other fields as metadata", () =>
    Effect.gen(function* () {
      write(
        "qa.jsonl",
        [
          '{"id": "q1", "prompt": "2+2=", "completion": "4", "answer": 4, "rationale": "sum", "topic": "math"}',
          "",
          '{"prompt": "Capital of France? ", "completion": "Paris", "topic": "geo"}'
        ].join("\n")
      )
      const c = yield* load(records("qa.jsonl", { validation: 0, test: 0 }))
      assert.deepStrictEqual(c.ids, ["q1", "qa.jsonl:3"])
      assert.deepStrictEqual(c.texts, ["2+2=4", "Capital of France? Paris"])
      assert.deepStrictEqual(c.prompts, ["2+2=", "Capital of France? "])
      assert.deepStrictEqual(c.completions, ["4", "Paris"])
      assert.deepStrictEqual(c.answers, ["4", null])
      assert.deepStrictEqual(c.rationales, ["sum", null])
      assert.deepStrictEqual(c.metadata, [{ topic: "math" }, { topic: "geo" }])
      assert.deepStrictEqual(decodeArtifact(encodeArtifact(c)), c)

      write("qa.csv", 'question,reply,source\n"Why, sky?","Rayleigh\nscattering",wiki\n')
      const fields = { prompt: "question", completion: "reply", id: "id" }
      const csv = yield* load(records("qa.csv", { fields, validation: 0, test: 0 }))
      assert.deepStrictEqual(csv.texts, ["Why, sky?Rayleigh\nscattering"])
      assert.deepStrictEqual(csv.metadata, [{ source: "wiki" }])
    })
  )
})

describe("bad input names the file and line", () => {
  it("finds the first byte that is not UTF-8", () => {
    assert.strictEqual(firstInvalidUtf8(new TextEncoder().encode("aé漢😀")), -1)
    assert.strictEqual(firstInvalidUtf8(Uint8Array.of(0x61, 0xc3)), 1) // cut short
    assert.strictEqual(firstInvalidUtf8(Uint8Array.of(0xc0, 0x80)), 0) // overlong
    assert.strictEqual(firstInvalidUtf8(Uint8Array.of(0xed, 0xa0, 0x80)), 0) // surrogate
    assert.strictEqual(firstInvalidUtf8(Uint8Array.of(0xf4, 0x90, 0x80, 0x80)), 0) // above U+10FFFF
  })

  it.effect("invalid UTF-8", () =>
    Effect.gen(function* () {
      write("latin1.txt", Uint8Array.from([...new TextEncoder().encode("ok\nstill ok\ncaf"), 0xe9, 0x0a]))
      const message = yield* failure({ ...base, source: "files", paths: "latin1.txt", unit: "file" })
      assert.match(message, /^latin1\.txt:3: not valid UTF-8 at byte 15 \(bytes e9 0a\)/)
    })
  )

  it.effect("a JSONL line that is not an object", () =>
    Effect.gen(function* () {
      write("array.jsonl", '{"prompt": "a", "completion": "b"}\n[1, 2]\n')
      assert.match(yield* failure(records("array.jsonl")), /^array\.jsonl:2: expected a JSON object per line, found an array/)
    })
  )

  it.effect("a missing field, with the fields there are", () =>
    Effect.gen(function* () {
      write("missing.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completon": "d"}\n')
      assert.match(yield* failure(records("missing.jsonl")), /^missing\.jsonl:2: field 'completion' not found \(did you mean 'completon'\?\)/)
      write("missing.csv", "prompt,answer\na,b\n")
      assert.match(yield* failure(records("missing.csv")), /^missing\.csv:1: column 'completion' not found/)
      write("notext.jsonl", '{"prompt": {"a": 1}, "completion": "b"}\n')
      assert.match(yield* failure(records("notext.jsonl")), /^notext\.jsonl:1: field 'prompt' is \{"a":1\}, not text/)
      const fields = { prompt: "prompt", completion: "completion", id: "id", answer: "anwser" }
      write("answer.jsonl", '{"prompt": "a", "completion": "b", "answer": "c"}\n')
      assert.match(yield* failure(records("answer.jsonl", { fields })), /^answer\.jsonl: answer field 'anwser' not found in any record \(did you mean 'answer'\?\)/)
    })
  )

  it.effect("duplicate ids", () =>
    Effect.gen(function* () {
      write("dup.jsonl", '{"id": 1, "prompt": "a", "completion": "b"}\n{"id": 1, "prompt": "c", "completion": "d"}\n')
      assert.match(yield* failure(records("dup.jsonl")), /^dup\.jsonl:2: duplicate document id '1' \(first on line 1\)/)
    })
  )

  it.effect("an empty corpus", () =>
    Effect.gen(function* () {
      write("empty.jsonl", "\n\n")
      assert.match(yield* failure(records("empty.jsonl")), /^empty\.jsonl: the corpus is empty/)
      write("blank.txt", "  \n")
      assert.match(yield* failure({ ...base, source: "files", paths: "blank.txt", unit: "file" }), /^blank\.txt: the corpus is empty/)
      assert.match(yield* failure({ ...base, source: "files", paths: "nothing/*.txt", unit: "file" }), /^nothing\/\*\.txt: no file matches/)
      assert.match(yield* failure({ ...base, source: "files", paths: "absent.txt", unit: "file" }), /^absent\.txt: cannot read the file .*ENOENT/)
    })
  )

  it.effect("a document over maxDocumentChars: fail on the line where it passes the limit, or truncate", () =>
    Effect.gen(function* () {
      write("long.txt", "short line\nanother one\nthis is where it gets long\n")
      const options = { ...base, source: "files" as const, paths: "long.txt", unit: "file" as const, maxDocumentChars: 25, validation: 0, test: 0 }
      assert.match(yield* failure(options), /^long\.txt:3: document 'long\.txt' passes maxDocumentChars 25 on this line \(it has 50 characters\); raise maxDocumentChars or set onLong: truncate/)
      const { corpus, truncated } = yield* loadTextCorpus({ ...options, onLong: "truncate" })
      assert.strictEqual(truncated, 1)
      assert.strictEqual(corpus.texts[0], "short line\nanother one\nth")

      write("longqa.jsonl", '{"prompt": "Q: ", "completion": "a long answer"}\n{"prompt": "a very long prompt", "completion": "x"}\n')
      const qa = { ...records("longqa.jsonl"), maxDocumentChars: 10, validation: 0, test: 0 }
      assert.match(yield* failure(qa), /^longqa\.jsonl:1: document 'longqa\.jsonl:1' passes maxDocumentChars 10/)
      assert.match(yield* failure({ ...qa, onLong: "truncate" }), /^longqa\.jsonl:2: the prompt of document 'longqa\.jsonl:2' alone has 18 characters/)
      const kept = yield* load({ ...qa, onLong: "truncate", limit: 1 })
      assert.deepStrictEqual([kept.prompts![0], kept.completions![0], kept.texts[0]], ["Q: ", "a long ", "Q: a long "])
    })
  )

  it("truncation never splits a surrogate pair", () => {
    assert.strictEqual(truncateText("ab😀c", 3), "ab")
    assert.strictEqual(truncateText("ab😀c", 4), "ab😀")
  })
})
