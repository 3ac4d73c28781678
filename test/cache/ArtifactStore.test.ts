import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { ArtifactStore, ArtifactStoreError, artifactIdOf } from "../../src/cache/ArtifactStore.js"
import type { CacheKey } from "../../src/domain/Ids.js"

const key = (c: string) => c.repeat(64) as CacheKey
const bytes = (...xs: Array<number>) => new Uint8Array(xs)
const info = { node: "teacher", kind: "train" }

const makeTempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "distillery-artifacts-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** A file-system store in a fresh temp dir, removed when the test's scope closes. */
const fileSystemLayer = Layer.unwrapScoped(Effect.map(makeTempDir, ArtifactStore.layerFileSystem))

const backends: ReadonlyArray<readonly [string, Layer.Layer<ArtifactStore, ArtifactStoreError>]> = [
  ["layerMemory", ArtifactStore.layerMemory],
  ["layerFileSystem", fileSystemLayer]
]

/** The conformance suite every backend passes. */
for (const [name, layer] of backends) {
  describe(`ArtifactStore (${name})`, () => {
    const test = (title: string, body: Effect.Effect<void, unknown, ArtifactStore>) =>
      it.scoped(title, () => Effect.provide(body, layer))

    test("put then get returns the same bytes", Effect.gen(function*() {
      const store = yield* ArtifactStore
      const data = bytes(1, 2, 3, 4, 5)
      const put = yield* store.put(key("a"), data, info)
      assert.deepStrictEqual(put, { artifactId: artifactIdOf(data), size: 5 })
      const got = yield* store.get(key("a"))
      assert.isTrue(Option.isSome(got))
      assert.deepStrictEqual(Array.from(Option.getOrThrow(got)), [1, 2, 3, 4, 5])
      assert.isTrue(yield* store.has(key("a")))
    }))

    test("bytes that do not match their sha256 are quarantined: a miss, the key dropped, the event recorded", Effect.gen(function*() {
      const store = yield* ArtifactStore
      const data = bytes(1, 2, 3, 4, 5, 6, 7, 8)
      const { artifactId } = yield* store.put(key("e"), data, info)
      // Flip a byte where the bytes live (the memory store hands out its own array).
      if (store.root === undefined) Option.getOrThrow(yield* store.get(key("e")))[3] ^= 0xff
      else {
        const file = path.join(store.root, "artifacts", artifactId.slice(0, 2), artifactId)
        const onDisk = fs.readFileSync(file)
        onDisk[3]! ^= 0xff
        fs.writeFileSync(file, onDisk)
      }
      assert.isTrue(Option.isNone(yield* store.get(key("e"))))
      assert.isFalse(yield* store.has(key("e")))
      const events = yield* store.quarantined()
      assert.strictEqual(events.length, 1)
      assert.strictEqual(events[0]!.artifactId, artifactId)
      assert.strictEqual(events[0]!.key, key("e"))
      assert.match(events[0]!.reason, /sha256 mismatch/)
      if (store.root !== undefined) {
        const aside = fs.readdirSync(path.join(store.root, "quarantine")).filter((f) => f.startsWith(artifactId))
        assert.strictEqual(aside.length, 1, "the bytes are kept aside for inspection")
      }
      // Written again, it reads again.
      yield* store.put(key("e"), data, info)
      assert.deepStrictEqual(Array.from(Option.getOrThrow(yield* store.get(key("e")))), Array.from(data))
    }))

    test("quarantine(key, reason) sets aside bytes that hash right but cannot be used", Effect.gen(function*() {
      const store = yield* ArtifactStore
      yield* store.put(key("f"), bytes(1, 2), info)
      yield* store.quarantine(key("f"), "does not decode")
      assert.isFalse(yield* store.has(key("f")))
      assert.deepStrictEqual((yield* store.quarantined()).map((e) => e.reason), ["does not decode"])
    }))

    test("a missing key is None", Effect.gen(function*() {
      const store = yield* ArtifactStore
      assert.isTrue(Option.isNone(yield* store.get(key("b"))))
      assert.isTrue(Option.isNone(yield* store.meta(key("b"))))
      assert.isFalse(yield* store.has(key("b")))
    }))

    test("records metadata", Effect.gen(function*() {
      const store = yield* ArtifactStore
      const data = bytes(9, 9)
      yield* store.put(key("c"), data, { node: "student", kind: "distill" })
      const meta = Option.getOrThrow(yield* store.meta(key("c")))
      assert.deepStrictEqual(meta, {
        artifactId: artifactIdOf(data),
        node: "student",
        kind: "distill",
        size: 2,
        createdAt: "1970-01-01T00:00:00.000Z" // TestClock
      })
      const keys = yield* store.keys()
      assert.deepStrictEqual(keys.map((k) => [k.key, k.node]), [[key("c"), "student"]])
    }))

    test("stores equal bytes once", Effect.gen(function*() {
      const store = yield* ArtifactStore
      const a = yield* store.put(key("1"), bytes(7, 7, 7), info)
      const b = yield* store.put(key("2"), bytes(7, 7, 7), { node: "other", kind: "train" })
      yield* store.put(key("3"), bytes(8), info)
      assert.strictEqual(a.artifactId, b.artifactId)
      assert.deepStrictEqual((yield* store.keys()).map((k) => k.key), [key("1"), key("2"), key("3")])
      const artifacts = yield* store.artifacts()
      assert.strictEqual(artifacts.length, 2)
      assert.deepStrictEqual(
        artifacts.map((x) => x.artifactId),
        [a.artifactId, artifactIdOf(bytes(8))].sort()
      )
    }))

    test("put replaces what a key named", Effect.gen(function*() {
      const store = yield* ArtifactStore
      yield* store.put(key("d"), bytes(1), info)
      yield* store.put(key("d"), bytes(2), info)
      assert.deepStrictEqual(Array.from(Option.getOrThrow(yield* store.get(key("d")))), [2])
    }))

    test("stores an empty artifact", Effect.gen(function*() {
      const store = yield* ArtifactStore
      yield* store.put(key("e"), new Uint8Array(0), info)
      assert.strictEqual(Option.getOrThrow(yield* store.get(key("e"))).length, 0)
    }))

    test("is not affected by later writes to the caller's bytes", Effect.gen(function*() {
      const store = yield* ArtifactStore
      const data = bytes(1, 2)
      yield* store.put(key("f"), data, info)
      data[0] = 99
      assert.deepStrictEqual(Array.from(Option.getOrThrow(yield* store.get(key("f")))), [1, 2])
    }))

    test("removeKey forgets the key but keeps the bytes", Effect.gen(function*() {
      const store = yield* ArtifactStore
      const { artifactId } = yield* store.put(key("a"), bytes(1), info)
      assert.isTrue(yield* store.removeKey(key("a")))
      assert.isFalse(yield* store.removeKey(key("a")))
      assert.isTrue(Option.isNone(yield* store.get(key("a"))))
      assert.deepStrictEqual((yield* store.artifacts()).map((a) => a.artifactId), [artifactId])
    }))

    test("removeArtifact makes the keys naming it miss", Effect.gen(function*() {
      const store = yield* ArtifactStore
      const { artifactId } = yield* store.put(key("a"), bytes(1), info)
      assert.isTrue(yield* store.removeArtifact(artifactId))
      assert.isFalse(yield* store.removeArtifact(artifactId))
      assert.isFalse(yield* store.has(key("a")))
      assert.isTrue(Option.isNone(yield* store.get(key("a"))))
      assert.isTrue(Option.isSome(yield* store.meta(key("a"))))
      assert.deepStrictEqual(yield* store.artifacts(), [])
    }))

    test("readArtifact reads bytes as stored, unchecked and never quarantined; keyNames lists every key", Effect.gen(function*() {
      const store = yield* ArtifactStore
      const { artifactId } = yield* store.put(key("b"), bytes(1, 2, 3), info)
      yield* store.put(key("a"), bytes(1, 2, 3), info)
      assert.deepStrictEqual(yield* store.keyNames(), [key("a"), key("b")])
      if (store.root === undefined) Option.getOrThrow(yield* store.readArtifact(artifactId))[0] ^= 0xff
      else fs.writeFileSync(path.join(store.root, "artifacts", artifactId.slice(0, 2), artifactId), bytes(254, 2, 3))
      assert.deepStrictEqual(Array.from(Option.getOrThrow(yield* store.readArtifact(artifactId))), [254, 2, 3])
      assert.deepStrictEqual(yield* store.quarantined(), [])
      assert.isTrue(Option.isNone(yield* store.readArtifact("0".repeat(64))))
      assert.deepStrictEqual(yield* store.tempFiles(), [])
    }))

    test("rejects a key that is not a sha256", Effect.gen(function*() {
      const store = yield* ArtifactStore
      const error = yield* Effect.flip(store.put("../escape" as CacheKey, bytes(1), info))
      assert.strictEqual(error._tag, "ArtifactStoreError")
      assert.match(error.message, /64 lowercase hex/)
    }))
  })
}

describe("ArtifactStore (layerFileSystem) files", () => {
  const withDir = <A, E>(body: (dir: string) => Effect.Effect<A, E, never>) =>
    Effect.flatMap(makeTempDir, body)

  it.scoped("uses the documented layout and survives reopening", () =>
    withDir((dir) =>
      Effect.gen(function*() {
        const { artifactId } = yield* Effect.provide(
          Effect.flatMap(ArtifactStore, (s) => s.put(key("a"), bytes(4, 2), info)),
          ArtifactStore.layerFileSystem(dir)
        )
        assert.isTrue(fs.existsSync(path.join(dir, "artifacts", artifactId.slice(0, 2), artifactId)))
        const keyFile = JSON.parse(fs.readFileSync(path.join(dir, "keys", `${key("a")}.json`), "utf8"))
        assert.strictEqual(keyFile.artifactId, artifactId)
        const store = yield* Effect.provide(ArtifactStore, ArtifactStore.layerFileSystem(dir))
        assert.strictEqual(store.root, path.resolve(dir))
        assert.deepStrictEqual(Array.from(Option.getOrThrow(yield* store.get(key("a")))), [4, 2])
      })
    ))

  it.scoped("never lists a temp file, and removes one left by a dead process on open", () =>
    withDir((dir) =>
      Effect.gen(function*() {
        const store = yield* Effect.provide(ArtifactStore, ArtifactStore.layerFileSystem(dir))
        const data = bytes(1, 2, 3)
        const id = artifactIdOf(data)
        // What a run killed mid-write leaves: a half-written temp beside where the artifact would go.
        const shard = path.join(dir, "artifacts", id.slice(0, 2))
        fs.mkdirSync(shard, { recursive: true })
        const deadPid = 2 ** 22 + 12345 // above Linux's pid_max default, so no such process
        const strayArtifact = path.join(shard, `.tmp-${id}-${deadPid}-abcdef`)
        const strayKey = path.join(dir, "keys", `.tmp-${key("a")}.json-${deadPid}-abcdef`)
        fs.writeFileSync(strayArtifact, bytes(1))
        fs.writeFileSync(strayKey, "{\"artifactId\":")
        assert.deepStrictEqual(yield* store.artifacts(), [])
        assert.deepStrictEqual(yield* store.keys(), [])
        assert.isTrue(Option.isNone(yield* store.get(key("a"))))
        // Putting the same artifact writes the real file despite the stray temp.
        yield* store.put(key("a"), data, info)
        assert.deepStrictEqual(Array.from(Option.getOrThrow(yield* store.get(key("a")))), [1, 2, 3])
        // A live writer's temp (this process) is kept; a dead one's is removed when a store opens.
        const liveTemp = path.join(shard, `.tmp-${id}-${process.pid}-123456`)
        fs.writeFileSync(liveTemp, bytes(1))
        yield* Effect.provide(ArtifactStore, ArtifactStore.layerFileSystem(dir))
        assert.isFalse(fs.existsSync(strayArtifact))
        assert.isFalse(fs.existsSync(strayKey))
        assert.isTrue(fs.existsSync(liveTemp))
        assert.deepStrictEqual(fs.readdirSync(shard).filter((n) => !n.startsWith(".tmp-")), [id])
      })
    ))

  it.scoped("keyNames lists a key file that does not parse; tempFiles lists writes in flight", () =>
    withDir((dir) =>
      Effect.gen(function*() {
        const store = yield* Effect.provide(ArtifactStore, ArtifactStore.layerFileSystem(dir))
        fs.writeFileSync(path.join(dir, "keys", `${key("c")}.json`), "{\"key\": \"")
        const temp = `.tmp-${key("d")}.json-${process.pid}-123456`
        fs.writeFileSync(path.join(dir, "keys", temp), "{")
        assert.deepStrictEqual(yield* store.keyNames(), [key("c")])
        assert.deepStrictEqual(yield* store.tempFiles(), [path.join("keys", temp)])
      })
    ))

  it.scoped("reports a corrupt key file with its path", () =>
    withDir((dir) =>
      Effect.gen(function*() {
        const store = yield* Effect.provide(ArtifactStore, ArtifactStore.layerFileSystem(dir))
        const file = path.join(dir, "keys", `${key("a")}.json`)
        fs.writeFileSync(file, "{\"artifactId\": 3}")
        const error = yield* Effect.flip(store.get(key("a")))
        assert.strictEqual(error.path, file)
        assert.match(error.message, /corrupt key file/)
      })
    ))
})
