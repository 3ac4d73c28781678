/**
 * `gguf_teacher`: a GGUF model file as a teacher, run in-process by llama.cpp (teachers/GgufTeacher.ts).
 * Its output is a `Teacher` port holding the file's description: absolute path, size, mtime, sha256,
 * architecture and contexts, how llama.cpp runs it (context size, KV cache type, threads), and its
 * vocabulary as a Distillery `Tokenizer` when the file's `tokenizer.ggml.*` is a byte-level gpt2
 * vocabulary numbered as Distillery numbers one (bytes, then merges, then control tokens).
 *
 * The file's content is part of the cache key without hashing gigabytes on every run: its sha256 is
 * kept in a small index file (`DISTILLERY_HASH_INDEX`, else `$XDG_CACHE_HOME/distillery/file-hashes.json`)
 * keyed by (absolute path, size, mtime), and computed again only when the size or the mtime changes.
 */
import { createHash } from "node:crypto"
import { closeSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join } from "node:path"
import { Effect, Schema } from "effect"
import { resolveDataPath } from "../../data/files.js"
import type { GgufTeacherFile, Tokenizer } from "../../domain/Artifact.js"
import type { GgufHeader } from "../../formats/Gguf.js"
import { byteToUnicode, readGguf, TokenType } from "../../formats/Gguf.js"
import { BYTE_TOKENS, makeTokenizer } from "../../tokenizer/Tokenizer.js"
import { defineKind } from "../NodeKind.js"
import { fail, PositiveInt, vocabularyWords } from "./common.js"

export const GgufTeacherParams = Schema.Struct({
  path: Schema.NonEmptyString.annotations({ description: "The .gguf model file (relative paths resolve against baseDir, else the working directory)" }),
  baseDir: Schema.optional(Schema.String).annotations({ description: "The directory a relative path is read from (default: the working directory)" }),
  contextSize: Schema.optional(PositiveInt).annotations({
    description: "Tokens one sequence (prompt + generated) may hold; absent: the model's training context, at most 4096"
  }),
  kvCache: Schema.optionalWith(Schema.Literal("f32", "f16"), { default: () => "f32" as const }).annotations({
    description: "The KV cache's element type: f32 keeps log-probs as exact as the weights allow; f16 halves its memory"
  }),
  threads: Schema.optional(PositiveInt).annotations({ description: "Threads llama.cpp evaluates with; absent: the machine's cores less one, at most 8" })
}).annotations({ identifier: "GgufTeacherParams" })
export type GgufTeacherParams = typeof GgufTeacherParams.Type

// ---------------------------------------------------------------------------------------------------
// The sha256 index

interface IndexEntry {
  readonly size: number
  readonly mtimeMs: number
  readonly sha256: string
  /** When it was computed (ms since the epoch). */
  readonly hashedAt: number
}

/** The index file: DISTILLERY_HASH_INDEX (the CLI sets it to <store>/file-hashes.json), else under $XDG_CACHE_HOME (or ~/.cache). */
export const hashIndexFile = (): string =>
  process.env["DISTILLERY_HASH_INDEX"] ?? join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "distillery", "file-hashes.json")

const readIndex = (file: string): Record<string, IndexEntry> => {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"))
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, IndexEntry>) : {}
  } catch {
    return {}
  }
}

let hashes = 0

/** How many files this process has hashed whole (the index answered the other look-ups). */
export const hashesComputed = (): number => hashes

const sha256Of = (path: string): string => {
  hashes++
  const hash = createHash("sha256")
  const buffer = Buffer.allocUnsafe(8 << 20)
  const fd = openSync(path, "r")
  try {
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null)
      if (n === 0) break
      hash.update(buffer.subarray(0, n))
    }
  } finally {
    closeSync(fd)
  }
  return hash.digest("hex")
}

/**
 * The file's size, mtime and sha256: from the index when it holds this (path, size, mtime), else
 * hashed now and written back (atomically; an index that cannot be written only costs a hash next time).
 * Throws when the file cannot be read.
 */
export const indexedSha256 = (path: string): { readonly size: number; readonly mtimeMs: number; readonly sha256: string } => {
  const stat = statSync(path)
  const file = hashIndexFile()
  const known = readIndex(file)[path]
  if (known !== undefined && known.size === stat.size && known.mtimeMs === stat.mtimeMs) return { size: stat.size, mtimeMs: stat.mtimeMs, sha256: known.sha256 }
  const sha256 = sha256Of(path)
  try {
    mkdirSync(dirname(file), { recursive: true })
    const temp = `${file}.tmp-${process.pid}`
    writeFileSync(temp, JSON.stringify({ ...readIndex(file), [path]: { size: stat.size, mtimeMs: stat.mtimeMs, sha256, hashedAt: Date.now() } }))
    renameSync(temp, file)
  } catch {
    // A read-only cache folder: the next run hashes again.
  }
  return { size: stat.size, mtimeMs: stat.mtimeMs, sha256 }
}

/** The cache key's view of the file: its absolute path and content hash ("missing" when unreadable: the node then fails naming it). */
export const ggufFingerprint = (params: Pick<GgufTeacherParams, "path" | "baseDir">): unknown => {
  const path = resolveDataPath(params.path, params.baseDir)
  try {
    return { path, sha256: indexedSha256(path).sha256 }
  } catch {
    return { path, sha256: "missing" }
  }
}

// ---------------------------------------------------------------------------------------------------
// The header and the vocabulary

/** The header, metadata and tensor infos, reading only as much of the file as they take. Throws on a malformed or non-GGUF file. */
export const readGgufHeader = (path: string): GgufHeader => {
  const size = statSync(path).size
  const fd = openSync(path, "r")
  try {
    for (let n = Math.min(size, 1 << 20); ; n = Math.min(size, n * 4)) {
      const bytes = Buffer.alloc(n)
      readSync(fd, bytes, 0, n, 0)
      try {
        return readGguf(bytes)
      } catch (e) {
        const short = e instanceof Error && e.message.startsWith("GGUF: file ends")
        if (!short || n === size) throw e
      }
    }
  } finally {
    closeSync(fd)
  }
}

const stringsOf = (header: GgufHeader, key: string): ReadonlyArray<string> | undefined => {
  const v = header.metadata.get(key)
  return v !== undefined && Array.isArray(v.value) && v.value.every((x) => typeof x === "string") ? (v.value as ReadonlyArray<string>) : undefined
}

const numberOf = (header: GgufHeader, key: string): number | undefined => {
  const v = header.metadata.get(key)?.value
  return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : undefined
}

/**
 * The file's vocabulary as a Distillery tokenizer, or why it is none: a gpt2 vocabulary whose ids
 * 0..255 are the bytes (in GPT-2's byte-to-unicode form), whose next ids are its merges in order, and
 * whose last ids are control tokens, with GPT-2's pre-tokenizer or none.
 */
export const tokenizerOfGguf = (header: GgufHeader): { readonly tokenizer: Tokenizer } | { readonly reason: string } => {
  const model = header.metadata.get("tokenizer.ggml.model")?.value
  if (model !== "gpt2") return { reason: `tokenizer.ggml.model is ${model === undefined ? "absent" : `'${String(model)}'`}, not a byte-level gpt2 vocabulary` }
  const tokens = stringsOf(header, "tokenizer.ggml.tokens")
  if (tokens === undefined || tokens.length < BYTE_TOKENS) return { reason: `tokenizer.ggml.tokens has ${tokens?.length ?? 0} tokens, fewer than the ${BYTE_TOKENS} bytes` }
  for (let b = 0; b < BYTE_TOKENS; b++) {
    if (tokens[b] !== byteToUnicode[b]) return { reason: `token ${b} is '${tokens[b]}', not byte ${b}: the vocabulary does not number the bytes first as Distillery's do` }
  }
  const merges = stringsOf(header, "tokenizer.ggml.merges") ?? []
  const pre = header.metadata.get("tokenizer.ggml.pre")?.value
  if (pre !== undefined && pre !== "gpt-2") return { reason: `pre-tokenizer '${String(pre)}' is not one Distillery has (gpt-2, or none)` }
  const ids = new Map<string, number>()
  for (let b = 0; b < BYTE_TOKENS; b++) ids.set(tokens[b]!, b)
  const pairs = new Int32Array(2 * merges.length)
  for (const [i, merge] of merges.entries()) {
    const parts = merge.split(" ")
    const id = BYTE_TOKENS + i
    const [left, right] = [ids.get(parts[0] ?? ""), ids.get(parts[1] ?? "")]
    if (parts.length !== 2 || left === undefined || right === undefined || tokens[id] !== parts[0]! + parts[1]!) {
      return { reason: `merge ${i} ('${merge}') does not make token ${id} ('${tokens[id] ?? ""}') from earlier tokens: the merges are not numbered as Distillery's are` }
    }
    pairs[2 * i] = left
    pairs[2 * i + 1] = right
    ids.set(tokens[id]!, id)
  }
  const types = header.metadata.get("tokenizer.ggml.token_type")?.value as ReadonlyArray<number> | undefined
  const special: Array<string> = []
  for (let id = BYTE_TOKENS + merges.length; id < tokens.length; id++) {
    if (types?.[id] !== TokenType.CONTROL) return { reason: `token ${id} ('${tokens[id]}') is neither a merge nor a control token` }
    special.push(tokens[id]!)
  }
  const bpe = merges.length > 0 || pre !== undefined
  return { tokenizer: makeTokenizer(bpe ? "bpe" : "bytes", pairs, special, pre === "gpt-2" ? "gpt2" : "none") }
}

/** The teacher's description of the GGUF file at `path` (absolute); throws with the reason when it is not a readable GGUF. */
export const describeGguf = (path: string, options: Omit<GgufTeacherParams, "path" | "baseDir">): GgufTeacherFile => {
  const { size, mtimeMs, sha256 } = indexedSha256(path)
  const header = readGgufHeader(path)
  const architecture = String(header.metadata.get("general.architecture")?.value ?? "unknown")
  const name = header.metadata.get("general.name")?.value
  const vocab = tokenizerOfGguf(header)
  const trainContext = numberOf(header, `${architecture}.context_length`) ?? 0
  const eos = numberOf(header, "tokenizer.ggml.eos_token_id")
  const bos = header.metadata.get("tokenizer.ggml.add_bos_token")?.value === true ? numberOf(header, "tokenizer.ggml.bos_token_id") : undefined
  return {
    _tag: "GgufTeacherFile",
    path,
    size,
    mtimeMs,
    sha256,
    architecture,
    ...(typeof name === "string" ? { name } : {}),
    vocabSize: stringsOf(header, "tokenizer.ggml.tokens")?.length ?? 0,
    trainContext,
    contextSize: options.contextSize ?? Math.min(trainContext > 0 ? trainContext : 4096, 4096),
    kvCache: options.kvCache,
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...("tokenizer" in vocab ? { tokenizer: vocab.tokenizer } : {}),
    vocabulary: "tokenizer" in vocab ? vocabularyWords(vocab.tokenizer) : `text only: ${vocab.reason}`,
    ...(eos !== undefined ? { eos } : {}),
    ...(bos !== undefined ? { bos } : {})
  }
}

export const GgufTeacherKind = defineKind({
  kind: "gguf_teacher",
  version: 1,
  description:
    "A GGUF model file as a teacher for lm_generate, run in-process by llama.cpp: seeded sampling and per-position top-k + tail log-probs; with the student's vocabulary, token-level scores, else text only",
  params: GgufTeacherParams,
  inputs: {},
  outputs: { teacher: "Teacher" },
  fingerprint: ggufFingerprint,
  run: (ctx) =>
    Effect.gen(function* () {
      const p = ctx.params
      const path = resolveDataPath(p.path, p.baseDir)
      const teacher = yield* Effect.try({
        try: () => describeGguf(path, p),
        catch: (cause) => {
          const code = (cause as { code?: unknown }).code
          const why = code === "ENOENT"
            ? "no such file"
            : code === "EISDIR"
            ? "a directory, not a file"
            : `not a GGUF file (${cause instanceof Error ? cause.message.replace(/^GGUF: /, "") : String(cause)})`
          return fail(ctx, `param 'path': ${path}: ${why}; give a .gguf model file, e.g. one written by 'distillery export-model <run> <node> --format gguf'`, cause)
        }
      })
      ctx.info({
        path,
        sha256: teacher.sha256,
        bytes: teacher.size,
        architecture: teacher.architecture,
        contextSize: teacher.contextSize,
        trainContext: teacher.trainContext,
        kvCache: teacher.kvCache === "f32" ? "f32 (exact log-probs)" : "f16",
        vocabulary: teacher.vocabulary
      })
      return { teacher }
    })
})
