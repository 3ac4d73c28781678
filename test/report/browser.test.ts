/**
 * Reports rendered in a real browser: headless Chromium loads the HTML file (offline, from file://),
 * runs its inline script, and we check every chart drew (the dumped DOM has `data-drawn="true"` on
 * each container, and SVG paths and circles), then save a screenshot to look at.
 *
 * One report comes from a real run of the two-moons pipeline through the CLI, one from a fake sweep.
 * Skipped, saying why, when /usr/bin/chromium is missing (CI installs Debian's `chromium`).
 * Screenshots: <os.tmpdir()>/distillery-report-screenshots/{run,sweep}.png.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { renderHtml } from "../../src/report/Html.js"
import { loadReport } from "../../src/report/Load.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { cli } from "../fixtures/cli.js"
import { requirement } from "../fixtures/requirements.js"
import { recordFakeSweep, SWEEP_ID } from "./fixtures.js"

const CHROMIUM = "/usr/bin/chromium"
const hasChromium = existsSync(CHROMIUM)
const SKIP_REASON = `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the browser tests`
requirement("Chromium (for the report browser tests)", { ok: hasChromium, reason: SKIP_REASON })

const SCREENSHOTS = join(tmpdir(), "distillery-report-screenshots")

const run = (file: string, args: ReadonlyArray<string>, timeout = 120_000) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(file, args, { encoding: "utf8", timeout, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1" } }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    )
  })


/** Headless Chromium with nothing that reaches the network, in a throwaway profile. */
const chromium = async (...args: Array<string>) => {
  const profile = mkdtempSync(join(tmpdir(), "distillery-chromium-"))
  try {
    return await run(CHROMIUM, [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      ...args
    ], 60_000)
  } finally {
    rmSync(profile, { recursive: true, force: true })
  }
}

/** Loads the page, returns the DOM after its scripts ran, and saves a screenshot. */
const render = async (html: string, screenshot: string) => {
  const url = `file://${html}`
  const dom = await chromium("--dump-dom", url)
  assert.strictEqual(dom.code, 0, dom.stderr)
  mkdirSync(SCREENSHOTS, { recursive: true })
  rmSync(screenshot, { force: true })
  const shot = await chromium(`--screenshot=${screenshot}`, "--window-size=1280,1600", "--hide-scrollbars", url)
  assert.strictEqual(shot.code, 0, shot.stderr)
  return dom.stdout
}

/** Every chart container drew, none failed, and the SVG has lines and points. */
const assertDrawn = (dom: string, charts: ReadonlyArray<string>) => {
  const containers = [...dom.matchAll(/<div class="chart[^"]*" data-chart="([^"]+)"[^>]*>/g)]
  assert.isAbove(containers.length, 0, "no chart containers in the page")
  for (const c of containers) assert.include(c[0], 'data-drawn="true"', `chart ${c[1]} did not draw: ${c[0]}`)
  for (const chart of charts) assert.include(containers.map((c) => c[1]), chart)
  assert.notInclude(dom, 'data-drawn="error"')
  assert.match(dom, /<path d="M[\d.]+ [\d.]+ L/)
  assert.match(dom, /<circle cx="[\d.]+"/)
  assert.include(dom, "<title>")
}

/** A real PNG of the window's size, with enough in it to be a page of charts. */
const assertScreenshot = (file: string) => {
  assert.isTrue(existsSync(file), `no screenshot at ${file}`)
  const png = readFileSync(file)
  assert.deepStrictEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  // IHDR: width and height, big-endian, at bytes 16 and 20.
  assert.deepStrictEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [1280, 1600])
  assert.isAbove(statSync(file).size, 40_000, "the screenshot is nearly blank")
}

describe.skipIf(!hasChromium)(`reports in headless Chromium${hasChromium ? "" : ` (skipped: ${SKIP_REASON})`}`, () => {
  it("a two-moons run, reported by the CLI, draws every chart", async () => {
    const store = mkdtempSync(join(tmpdir(), "distillery-report-run-"))
    const ran = await cli("run", "pipelines/two-moons-kd.yaml", "--store", store, "--backend", "cpu")
    assert.strictEqual(ran.code, 0, ran.stderr)
    const html = join(store, "report.html")
    const reported = await cli("report", "last", "--store", store, "--out", html)
    assert.strictEqual(reported.code, 0, reported.stderr)
    assert.include(reported.stdout, `wrote ${html}: run `)
    const screenshot = join(SCREENSHOTS, "run.png")
    const dom = await render(html, screenshot)
    assertDrawn(dom, ["learning-curves", "agreement", "confusion"])
    // Three train nodes, three evaluate nodes (two of them measured against the teacher).
    assert.strictEqual(dom.match(/data-chart="confusion"/g)?.length, 3)
    assert.include(dom, "eval_student")
    assertScreenshot(screenshot)
    console.log(`report screenshot: ${screenshot}`)
  })

  it("a sweep draws its metric against the swept param with confidence bars", async () => {
    const dir = mkdtempSync(join(tmpdir(), "distillery-report-sweep-"))
    const report = await Effect.runPromise(
      Effect.gen(function*() {
        yield* recordFakeSweep()
        return yield* loadReport(SWEEP_ID)
      }).pipe(Effect.provide(ResultsStore.layerMemory))
    )
    const html = join(dir, "sweep.html")
    writeFileSync(html, renderHtml(report))
    const screenshot = join(SCREENSHOTS, "sweep.png")
    const dom = await render(html, screenshot)
    assertDrawn(dom, ["sweep-metric", "learning-curves", "agreement", "confusion"])
    assert.include(dom, 'class="ci"')
    assert.include(dom, "temperature (log scale)")
    assert.include(dom, '<select data-role="curve-view">')
    assertScreenshot(screenshot)
    console.log(`report screenshot: ${screenshot}`)
  })
})
