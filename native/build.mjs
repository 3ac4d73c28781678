// Builds Distillery's native kernels (native/build/Release/distillery_native.node) with node-gyp and the
// machine's C++ compiler. Run by `npm install` (the root package's install script). It never fails the
// install: without a compiler, make or python3 it says so and Distillery uses the wasm kernels.
// DISTILLERY_SKIP_NATIVE=1 skips the build.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))

const say = (line) => process.stderr.write(`distillery native kernels: ${line}\n`)

/** node-gyp: the one npm runs scripts with, else npm's bundled copy, else a local install. */
const findNodeGyp = () => {
  const fromNpm = process.env.npm_config_node_gyp
  if (fromNpm !== undefined && existsSync(fromNpm)) return fromNpm
  const candidates = []
  if (process.env.npm_execpath !== undefined) {
    candidates.push(path.join(path.dirname(process.env.npm_execpath), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"))
  }
  candidates.push(path.join(path.dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"))
  for (const c of candidates) if (existsSync(c)) return c
  try {
    return createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js")
  } catch {
    return undefined
  }
}

const main = () => {
  if (process.env.DISTILLERY_SKIP_NATIVE === "1") {
    say("skipped (DISTILLERY_SKIP_NATIVE=1); the wasm kernels will be used")
    return
  }
  const gyp = findNodeGyp()
  if (gyp === undefined) {
    say("node-gyp not found; skipped, the wasm kernels will be used")
    return
  }
  const quiet = process.env.DISTILLERY_NATIVE_VERBOSE !== "1"
  // Node's own headers (Debian's nodejs and the official tarballs ship them), so nothing is downloaded.
  const prefix = path.join(path.dirname(process.execPath), "..")
  const nodedir =
    process.env.npm_config_nodedir === undefined && existsSync(path.join(prefix, "include", "node", "node_api.h"))
      ? [`--nodedir=${prefix}`]
      : []
  const args = [gyp, "rebuild", ...nodedir, ...(quiet ? ["--loglevel=error"] : [])]
  const r = spawnSync(process.execPath, args, {
    cwd: here,
    timeout: 300_000,
    encoding: "utf8",
    stdio: quiet ? ["ignore", "pipe", "pipe"] : "inherit"
  })
  if (r.status === 0 && existsSync(path.join(here, "build", "Release", "distillery_native.node"))) return
  const log = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n")
  say(
    "the build failed (it needs g++, make and python3); training falls back to the wasm kernels. " +
      "Rebuild with `npm run install` once they are installed." + (log === "" ? "" : `\n${log}`)
  )
}

main()
