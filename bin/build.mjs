/**
 * Builds the CLI and SDK that the package runs: src/ bundled by esbuild into dist/ (ES modules, split
 * into chunks so that each verb loads only what it imports). `npm install` runs it (the `prepare`
 * script), `npm run build` runs it again, and bin/distillery.js runs it when src/ is newer than dist/.
 *
 * Bundled: our code, effect and @effect/*, yaml (one file parses far faster than hundreds of modules).
 * Left as imports: packages with native or wasm parts, or data files found relative to themselves.
 */
import { build } from "esbuild"
import { renameSync, rmSync, writeFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
export const dist = path.join(root, "dist")
/** Written last: its mtime says when dist/ was built. */
export const stamp = path.join(dist, ".built")

const external = ["@tensorflow/*", "@duckdb/*", "webgpu", "mnist", "tsx", "node-llama-cpp", "openai", "esbuild"]

export const buildDist = async () => {
  // Built beside dist/ and swapped in with two renames, so that a CLI started meanwhile (or a second
  // build) never imports from a half-written or half-deleted dist/; chunk names are content hashes,
  // so starting from an empty folder keeps old ones from piling up.
  const temp = `${dist}.${process.pid}.tmp`
  rmSync(temp, { recursive: true, force: true })
  await build({
    absWorkingDir: root,
    entryPoints: { bin: "src/bin.ts", index: "src/index.ts", worker: "src/dag/worker.ts" },
    outdir: temp,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external,
    chunkNames: "chunk-[hash]",
    sourcemap: "linked",
    // Less to parse at every start (about a third of the time before the first line of our code runs);
    // expected errors print their own messages, and the source map names the lines of a stack trace.
    minify: true,
    logLevel: "warning",
    // Bundled CommonJS code may call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __distilleryRequire } from 'node:module'; const require = __distilleryRequire(import.meta.url);" }
  })
  writeFileSync(path.join(temp, ".built"), new Date().toISOString() + "\n")
  const old = `${dist}.${process.pid}.old`
  try {
    renameSync(dist, old)
  } catch {
    // No dist/ yet.
  }
  renameSync(temp, dist)
  rmSync(old, { recursive: true, force: true })
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = performance.now()
  await buildDist()
  console.log(`built dist/ in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}
