/**
 * `node bench/pack-gpu.mjs [dir]` packs bench/gpu.ts for a GPU machine that has no Node.js and no
 * npm registry (default dir: .gpu-bench, which git ignores): this machine's node binary
 * (xz-compressed), bench/gpu.ts and everything it imports bundled into one file with tfjs and its
 * webgpu backend, the `webgpu` package's Linux binary (Dawn), bench/torch_gpu.py, and run.sh. On the
 * GPU machine: `bash <dir>/run.sh [bench/gpu.ts options]` (say `--no-cpu` there: the CPU rows need
 * the wasm and native builds, which are not packed). About 35 MB.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const out = path.resolve(root, process.argv[2] ?? ".gpu-bench")
fs.rmSync(out, { recursive: true, force: true })
fs.mkdirSync(out, { recursive: true })

// One tfjs-core for everything: the webgpu backend is bundled and imported statically, so it registers
// with the same engine (Backend.ts then skips its dynamic import). It registers only if navigator.gpu
// exists when it is evaluated, so a prelude module evaluated first puts Dawn there.
const prelude = `import { create, globals } from "webgpu"
for (const [k, v] of Object.entries(globals)) if (!(k in globalThis)) globalThis[k] = v
if (globalThis.navigator === undefined) Object.defineProperty(globalThis, "navigator", { value: {}, configurable: true, writable: true })
Object.defineProperty(globalThis.navigator, "gpu", { value: create([]), configurable: true, writable: true })
`
const virtual = {
  name: "gpu-prelude",
  setup(b) {
    b.onResolve({ filter: /^gpu-prelude$/ }, () => ({ path: "gpu-prelude", namespace: "gpu-prelude" }))
    b.onLoad({ filter: /.*/, namespace: "gpu-prelude" }, () => ({ contents: prelude, resolveDir: root, loader: "js" }))
  }
}
await build({
  // Referenced, not just imported: the package declares itself free of side effects, so a bare
  // import would be dropped, and with it the backend's registration.
  stdin: {
    contents: 'import "gpu-prelude"\nimport * as webgpu from "@tensorflow/tfjs-backend-webgpu"\nglobalThis.__tfjsWebgpu = webgpu\nimport "./bench/gpu.ts"\n',
    resolveDir: root,
    loader: "ts"
  },
  plugins: [virtual],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outfile: path.join(out, "gpu.mjs"),
  // The native binding stays a package beside the bundle; optional peers stay absent.
  external: ["webgpu", "@tensorflow/tfjs-node", "@tensorflow/tfjs-node-gpu"],
  // Bundled CommonJS (tfjs's node builds) calls require: give the ESM bundle one.
  banner: { js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);' },
  logLevel: "warning"
})

const webgpu = path.join(root, "node_modules", "webgpu")
const packed = path.join(out, "node_modules", "webgpu")
fs.mkdirSync(path.join(packed, "dist", "linux-x64"), { recursive: true })
for (const f of ["package.json", "index.js"]) fs.copyFileSync(path.join(webgpu, f), path.join(packed, f))
fs.copyFileSync(path.join(webgpu, "dist", "linux-x64", "dawn.node"), path.join(packed, "dist", "linux-x64", "dawn.node"))
execFileSync("xz", ["-T0", "-6", path.join(packed, "dist", "linux-x64", "dawn.node")])
fs.copyFileSync(path.join(root, "bench", "torch_gpu.py"), path.join(out, "torch_gpu.py"))
// Dawn loads the Vulkan loader (libvulkan.so.1), which GPU images built for CUDA often lack.
try {
  execFileSync("apt-get", ["download", "libvulkan1"], { cwd: out, stdio: "ignore" })
} catch {
  console.warn("apt-get download libvulkan1 failed: run.sh will need the machine's own Vulkan loader")
}
fs.writeFileSync(path.join(out, "node.xz"), execFileSync("xz", ["-T0", "-6", "-c", process.execPath], { maxBuffer: 1 << 30 }))
fs.writeFileSync(
  path.join(out, "run.sh"),
  `#!/usr/bin/env bash
# Unpacks node and Dawn (once) and runs the GPU bench: bash run.sh [bench/gpu.ts options]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ -x "$here/node" ] || { xz -dc "$here/node.xz" > "$here/node"; chmod +x "$here/node"; }
dawn="$here/node_modules/webgpu/dist/linux-x64/dawn.node"
[ -f "$dawn" ] || xz -dk "$dawn.xz"
# The Vulkan loader, from the packed .deb when the machine has none.
if ! ldconfig -p | grep libvulkan.so.1 >/dev/null; then
  for deb in "$here"/libvulkan1_*.deb; do [ -f "$deb" ] && dpkg -x "$deb" "$here/vulkan"; done
  export LD_LIBRARY_PATH="$here/vulkan/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# NVIDIA's Vulkan driver where container images put it, unless the caller chose one.
if [ -z "\${VK_DRIVER_FILES:-}\${VK_ICD_FILENAMES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
  done
fi
exec "$here/node" "$here/gpu.mjs" "$@"
`,
  { mode: 0o755 }
)
const size = (dir) =>
  fs.readdirSync(dir, { withFileTypes: true }).reduce((s, e) => s + (e.isDirectory() ? size(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size), 0)
console.log(`packed into ${path.relative(process.cwd(), out) || "."} (${(size(out) / 1e6).toFixed(1)} MB): bash ${path.relative(process.cwd(), out)}/run.sh --no-cpu`)
