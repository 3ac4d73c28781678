/**
 * The report page: self-contained (no external resources), its data embedded as JSON that reads back,
 * text escaped, and the inline chart script drawing every container. The script runs here in Node's
 * `vm` against a minimal stand-in for the DOM; `browser.test.ts` runs it in Chromium.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as vm from "node:vm"
import { CHART_SCRIPT } from "../../src/report/ChartScript.js"
import { embedJson, escapeHtml, renderHtml } from "../../src/report/Html.js"
import { loadReport } from "../../src/report/Load.js"
import type { Report } from "../../src/report/ReportData.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { recordFakeRun, recordFakeSweep, SWEEP_ID } from "./fixtures.js"

const load = <E>(id: string, setup: Effect.Effect<void, E, ResultsStore>): Promise<Report> =>
  Effect.runPromise(
    Effect.gen(function*() {
      yield* setup
      return yield* loadReport(id)
    }).pipe(Effect.provide(ResultsStore.layerMemory))
  )

interface FakeElement {
  readonly attributes: Map<string, string>
  innerHTML: string
  getAttribute(name: string): string | null
  setAttribute(name: string, value: string): void
  querySelector(selector: string): null
}

const element = (attributes: Record<string, string>): FakeElement => ({
  attributes: new Map(Object.entries(attributes)),
  innerHTML: "",
  getAttribute(name) {
    return this.attributes.get(name) ?? null
  },
  setAttribute(name, value) {
    this.attributes.set(name, value)
  },
  querySelector: () => null
})

/** Runs the page's script against the page's containers and data, with just enough of a DOM. */
const drawInVm = (html: string) => {
  const json = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html)![1]!
  const containers = [...html.matchAll(/<div class="chart[^"]*" data-chart="([^"]+)"(?: data-index="(\d+)")?>/g)].map((m) =>
    element({ "data-chart": m[1]!, ...(m[2] === undefined ? {} : { "data-index": m[2] }) })
  )
  const document = {
    getElementById: (id: string) => (id === "report-data" ? { textContent: json } : null),
    querySelectorAll: () => containers
  }
  const context = vm.createContext({ document, window: undefined })
  vm.runInContext(CHART_SCRIPT, context)
  return containers
}

describe("renderHtml", () => {
  it("a run's page is self-contained, embeds its data, and every chart draws", async () => {
    const report = await load("r1", recordFakeRun({ runId: "r1", studentKey: "a", accuracy: 0.875 }))
    const html = renderHtml(report)
    assert.match(html, /^<!doctype html>/)
    // Nothing to fetch: no external scripts, styles, images or fonts.
    assert.notMatch(html, /<link\b|\bsrc=|@import|url\(\s*['"]?https?:/i)
    assert.notMatch(html, /href="https?:/i)
    const json = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html)![1]!
    assert.deepStrictEqual(JSON.parse(json), JSON.parse(JSON.stringify(report)))
    for (const chart of ["learning-curves", "agreement", "confusion"]) assert.include(html, `data-chart="${chart}"`)
    assert.notInclude(html, `data-chart="sweep-metric"`)
    assert.match(html, /<td class="node">eval_kd<\/td><td>student_kd <span class="badge badge-distilled">distilled<\/span><\/td><td class="num">0\.8750<\/td>/)

    const drawn = drawInVm(html)
    assert.strictEqual(drawn.length, 4)
    for (const el of drawn) {
      assert.strictEqual(el.getAttribute("data-drawn"), "true", `${el.getAttribute("data-chart")}: ${el.innerHTML.slice(0, 300)}`)
      assert.include(el.innerHTML, "<svg")
      assert.include(el.innerHTML, "<title>")
    }
    const curves = drawn.find((e) => e.getAttribute("data-chart") === "learning-curves")!.innerHTML
    assert.include(curves, "Loss per epoch")
    assert.include(curves, "Validation accuracy per epoch")
    assert.include(curves, 'stroke-dasharray="6 4"')
    assert.include(curves, "teacher · validation loss\nepoch 3: ")
    const confusion = drawn.filter((e) => e.getAttribute("data-chart") === "confusion").map((e) => e.innerHTML).join("")
    assert.include(confusion, "the teacher (eval_teacher) got")
  })

  it("a sweep's page has a chart per changed evaluate node and a trials table", async () => {
    const report = await load(SWEEP_ID, recordFakeSweep())
    const html = renderHtml(report)
    assert.include(html, `data-chart="sweep-metric" data-index="0"`)
    // The teacher is the same in every trial: a reference line, not a chart of its own.
    assert.strictEqual(html.match(/data-chart="sweep-metric"/g)!.length, 1)
    assert.include(html, "<h2>Trials (24)</h2>")
    assert.match(html, /0\.\d+<span class="pm"> ± 0\.\d+<\/span>/)
    const drawn = drawInVm(html)
    const sweep = drawn.find((e) => e.getAttribute("data-chart") === "sweep-metric")!
    assert.strictEqual(sweep.getAttribute("data-drawn"), "true")
    assert.include(sweep.innerHTML, "eval_kd (student_kd) · accuracy vs temperature")
    assert.include(sweep.innerHTML, "temperature (log scale)")
    assert.include(sweep.innerHTML, 'class="ci"')
    assert.include(sweep.innerHTML, "divergence=reverse_kl")
    assert.include(sweep.innerHTML, "eval_teacher (teacher, same in every trial): 0.95")
    assert.match(sweep.innerHTML, /95% CI 0\.\d+ – 0\.\d+/)
  })

  it("escapes text in HTML and in the embedded JSON", async () => {
    const report = await load("r1", recordFakeRun({ runId: "r1", studentKey: "a", accuracy: 0.875 }))
    const evil = "</script><script>alert(1)</script><!--"
    const html = renderHtml({ ...report, title: evil, facts: [["pipeline", evil]] })
    assert.notInclude(html, "<script>alert(1)")
    assert.include(html, escapeHtml(evil))
    assert.strictEqual(html.match(/<\/script>/g)!.length, 2)
    assert.deepStrictEqual(JSON.parse(embedJson({ t: evil, s: "\u2028" })), { t: evil, s: "\u2028" })
  })
})

describe("the chart script", () => {
  const charts = () => {
    const context = vm.createContext({})
    vm.runInContext(CHART_SCRIPT, context)
    return context.DistilleryCharts as {
      niceTicks: (lo: number, hi: number, n?: number, integer?: boolean) => { lo: number; hi: number; ticks: Array<number> }
      lineChart: (spec: unknown) => string
      barChart: (spec: unknown) => string
      heatMap: (spec: unknown) => string
    }
  }

  it("never ends its own script element, and parses", () => {
    assert.notInclude(CHART_SCRIPT.toLowerCase(), "</script")
    assert.doesNotThrow(() => new vm.Script(CHART_SCRIPT))
  })

  it("ticks are round and cover the data", () => {
    const { niceTicks } = charts()
    assert.deepStrictEqual(niceTicks(0.83, 0.97, 5), { lo: 0.8, hi: 1, ticks: [0.8, 0.85, 0.9, 0.95, 1] })
    assert.deepStrictEqual(niceTicks(1, 30, 6, true).ticks, [0, 5, 10, 15, 20, 25, 30])
    // A flat series still gets an axis.
    assert.isAbove(niceTicks(0.95, 0.95, 5).ticks.length, 1)
  })

  it("the renderers draw marks with tooltips, axes and a title", () => {
    const { barChart, heatMap, lineChart } = charts()
    const line = lineChart({
      title: "acc",
      xLabel: "T",
      yLabel: "accuracy",
      series: [{ label: "kl", color: "#000", points: [{ x: 1, y: 0.9, lo: 0.88, hi: 0.92 }, { x: 2, y: 0.95, tip: "hello" }] }],
      references: [{ y: 0.97, label: "teacher" }]
    })
    assert.include(line, '<path d="M')
    assert.strictEqual(line.match(/<circle /g)!.length, 2)
    assert.include(line, "<title>hello</title>")
    assert.include(line, 'class="chart-title"')
    assert.include(line, 'class="reference"')
    assert.include(line, 'class="ci"')
    const bars = barChart({ title: "agreement", domain: [0, 1], bars: [{ label: "a<b", value: 0.5, color: "#000" }] })
    assert.include(bars, "<rect ")
    assert.include(bars, "a&lt;b")
    const heat = heatMap({ title: "h", rowLabel: "label", colLabel: "pred", classes: [0, 1], cells: [{ row: 0, col: 1, count: 3, tip: "t" }] })
    assert.include(heat, "<title>t</title>")
    assert.include(heat, ">3</text>")
  })
})
