#!/usr/bin/env node
// The `distillery` command: runs the CLI compiled into dist/. In a clone whose src/ is newer than the
// build (or that was never built) it rebuilds first, so editing src/ and running the CLI just works;
// DISTILLERY_NO_REBUILD=1 runs dist/ as it is (the tests build it once and set it).
import { existsSync, readdirSync, statSync } from "node:fs"
import path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const src = path.join(root, "src")
const stamp = path.join(root, "dist", ".built")

const newestIn = (dir) => {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestIn(full) : statSync(full).mtimeMs)
  }
  return newest
}

if (process.env.DISTILLERY_NO_REBUILD !== "1" && existsSync(src) && existsSync(path.join(root, "bin", "build.mjs"))) {
  const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0
  if (newestIn(src) > built) {
    process.stderr.write(built === 0 ? "building dist/ ...\n" : "src/ changed: rebuilding dist/ ...\n")
    const { buildDist } = await import(pathToFileURL(path.join(root, "bin", "build.mjs")).href)
    await buildDist()
  }
}
await import(pathToFileURL(path.join(root, "dist", "bin.js")).href)
