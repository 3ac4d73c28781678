/**
 * A report as one self-contained HTML page: inline CSS, the report data embedded as JSON, and the
 * inline chart script that draws it. Nothing is fetched, so the file opens anywhere, offline. Tables
 * and text are rendered here; charts are drawn in the page by `ChartScript.ts`.
 */
import { formatNumber } from "../store/Format.js"
import type { Summary } from "./Stats.js"
import type { Report } from "./ReportData.js"
import { CHART_SCRIPT } from "./ChartScript.js"

/** Text for HTML content and attribute values. */
export const escapeHtml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;")

/**
 * JSON safe inside a `<script>` element: `<`, `>` and `&` escaped as \uXXXX (so `</script>` or `<!--` in
 * a node id cannot end the element), and the line separators JavaScript once rejected.
 */
export const embedJson = (value: unknown): string =>
  JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029")

const num = (x: number): string => (Number.isInteger(x) ? String(x) : formatNumber(x))

/** A final-metrics cell: the value, or for a sweep `mean ± half-width` with n in the tooltip. */
const cell = (s: Summary | null, aggregated: boolean): string => {
  if (s === null) return `<td class="num missing">–</td>`
  if (!aggregated || s.lo === null || s.hi === null || s.hi === s.lo) {
    return `<td class="num"${aggregated ? ` title="${s.n === 1 ? "one trial" : `the same in all ${s.n} trials`}"` : ""}>${escapeHtml(num(s.mean))}</td>`
  }
  const half = (s.hi - s.lo) / 2
  const tip = `mean of ${s.n} trials; 95% CI ${num(s.lo)} – ${num(s.hi)}`
  return `<td class="num" title="${escapeHtml(tip)}">${escapeHtml(num(s.mean))}<span class="pm"> ± ${escapeHtml(num(half))}</span></td>`
}

const roleBadge = (role: string): string => (role === "" ? "" : ` <span class="badge badge-${escapeHtml(role)}">${escapeHtml(role)}</span>`)

const finalsHtml = (report: Report): string => {
  const f = report.finals
  if (f.rows.length === 0) return `<p class="empty">No evaluate node recorded final metrics.</p>`
  const head = ["node", "model", ...f.columns].map((c, i) => `<th${i > 1 ? ` class="num"` : ""}>${escapeHtml(c)}</th>`).join("")
  const body = f.rows
    .map((r) =>
      `<tr><td class="node">${escapeHtml(r.node)}</td><td>${escapeHtml(r.subject)}${roleBadge(r.role)}</td>${
        r.cells.map((c) => cell(c, f.aggregated)).join("")
      }</tr>`
    )
    .join("\n")
  const caption = f.aggregated ? `<p class="hint">Mean ± half-width of the 95% confidence interval over the trials (hover for n).</p>` : ""
  return `<div class="table-wrap"><table class="finals"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>${caption}`
}

const trialsHtml = (report: Report): string => {
  const t = report.sweep?.trials
  if (t === undefined || t.rows.length === 0) return ""
  const head = t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("")
  const body = t.rows
    .map((row) =>
      `<tr>${
        row.map((v) => (typeof v === "number" ? `<td class="num">${escapeHtml(num(v))}</td>` : `<td>${escapeHtml(v ?? "–")}</td>`)).join("")
      }</tr>`
    )
    .join("\n")
  return `<section><details><summary><h2>Trials (${t.rows.length})</h2></summary>
<div class="table-wrap"><table class="trials"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div></details></section>`
}

const container = (chart: string, index?: number, wide = false): string =>
  `<div class="chart${wide ? " wide" : ""}" data-chart="${chart}"${index === undefined ? "" : ` data-index="${index}"`}><p class="loading">drawing…</p></div>`

const CSS = `
:root { --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f7f8fa; --card: #fff; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 24px 48px; }
header h1 { font-size: 22px; margin: 0 0 4px; font-weight: 650; letter-spacing: -0.01em; }
header .kind { display: inline-block; font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .06em;
  color: var(--accent); background: #e0e7ff; border-radius: 4px; padding: 1px 6px; margin-bottom: 6px; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 6px 20px; margin: 14px 0 0; }
dl.facts div { min-width: 0; }
dl.facts dt { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
.notes { margin: 16px 0 0; padding: 10px 14px; background: #fffbeb; border: 1px solid #fde68a; border-radius: 8px; color: #92400e; }
.notes p { margin: 2px 0; }
section { margin-top: 28px; }
h2 { font-size: 16px; font-weight: 650; margin: 0 0 4px; }
section > .lead { color: var(--muted); margin: 0 0 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 16px; align-items: start; }
.grid.small { grid-template-columns: repeat(auto-fill, minmax(400px, 1fr)); }
.chart, .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px;
  box-shadow: 0 1px 2px rgba(16, 24, 40, .04); min-width: 0; }
.chart.wide { grid-column: 1 / -1; }
.panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 12px; }
.chart svg { display: block; max-width: 100%; height: auto; overflow: visible; }
.chart svg text { font-size: 11px; fill: #374151; }
.chart svg text.count { font-size: 12px; font-weight: 600; }
.chart svg .chart-title { font-size: 13px; font-weight: 600; fill: var(--fg); }
.chart svg .axis-label { font-size: 11.5px; fill: var(--muted); }
.chart svg .axis line { stroke: #9ca3af; }
.chart svg .grid line { stroke: #eef0f3; }
.chart svg .reference line { stroke: #6b7280; stroke-dasharray: 4 4; }
.chart svg .reference text { fill: #4b5563; font-style: italic; }
.chart svg .ci { fill: none; stroke-width: 1.3; opacity: .75; }
.chart svg circle:hover, .chart svg .cell rect:hover, .chart svg .bar rect:hover { stroke: #111827; stroke-width: 2; }
.chart svg .bar-label { font-size: 12px; font-weight: 600; fill: var(--fg); }
.chart svg .bar-sublabel { font-size: 10.5px; fill: var(--muted); }
.chart svg .bar-value { font-size: 11.5px; font-variant-numeric: tabular-nums; }
.chart svg rect.empty { fill: #fafafa; stroke: #f0f0f0; }
.chart svg rect.diagonal { fill: #f3f4f6; stroke: #f0f0f0; }
.chart svg .tick { font-size: 11px; fill: #4b5563; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 8px 4px 2px; font-size: 12px; color: #374151; }
.legend-item { display: inline-flex; align-items: center; gap: 6px; }
.hint { color: var(--muted); font-size: 12px; margin: 6px 4px 0; }
.control { display: inline-flex; gap: 8px; align-items: center; font-size: 12px; color: var(--muted); margin: 0 4px 6px; }
.control select { font: inherit; color: var(--fg); padding: 3px 6px; border: 1px solid #d1d5db; border-radius: 6px; background: #fff; }
.table-wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 12px; text-align: left; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); font-weight: 600; background: #fafbfc; }
tbody tr:last-child td { border-bottom: none; }
tbody tr:hover { background: #f9fafb; }
td.num, th.num { text-align: right; }
td.node { font-weight: 600; }
td.missing { color: #c0c4cc; }
.pm { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; font-size: 10.5px; padding: 0 6px; border-radius: 999px; margin-left: 4px; vertical-align: 1px; }
.badge-teacher { background: #e5e7eb; color: #374151; }
.badge-distilled { background: #dbeafe; color: #1d4ed8; }
.badge-scratch { background: #fef3c7; color: #92400e; }
details > summary { cursor: pointer; list-style: revert; }
details > summary h2 { display: inline; }
details .table-wrap { margin-top: 10px; }
.empty, .loading { color: var(--muted); }
.error { color: #b91c1c; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 12px; }
`

/** The whole page for a report. */
export const renderHtml = (report: Report): string => {
  const sweep = report.sweep
  const sections: Array<string> = []

  if (sweep !== null) {
    const groupText = sweep.group.length === 0 ? "" : `, one line per ${sweep.group.map((g) => sweep.paramLabels[g] ?? g).join(" × ")}`
    sections.push(`<section id="sweep">
<h2>${escapeHtml(sweep.metric)} against ${escapeHtml(sweep.xLabel)}</h2>
<p class="lead">Each evaluate node's final ${escapeHtml(sweep.metric)} against <code>${escapeHtml(sweep.x ?? "trials")}</code>${escapeHtml(groupText)}: mean over seeds with 95% confidence bars.${
      sweep.charts.some((c) => c.references.length > 0) ? " Dashed lines: the baseline, and models no trial changed." : ""
    }</p>
<div class="grid">${sweep.charts.map((_, i) => container("sweep-metric", i)).join("\n")}</div>
</section>`)
  }

  const curves = report.curves.views.length === 0
    ? `<p class="empty">No train node recorded a learning curve.</p>`
    : `<div class="grid">${container("learning-curves", undefined, true)}</div>`
  sections.push(`<section id="learning-curves">
<h2>Learning curves</h2>
<p class="lead">Train loss, validation loss and validation accuracy per ${escapeHtml(report.curves.unit)}${sweep === null ? ", per train node" : ", averaged over seeds"}.</p>
${curves}
</section>`)

  sections.push(`<section id="final-metrics">
<h2>Final metrics</h2>
<p class="lead">Per evaluate node, on its split${sweep === null ? "" : ", over all trials"}.</p>
${finalsHtml(report)}
</section>`)

  const agreementAndConfusion: Array<string> = []
  if (report.agreement.length > 0) agreementAndConfusion.push(container("agreement"))
  report.confusion.forEach((_, i) => agreementAndConfusion.push(container("confusion", i)))
  sections.push(`<section id="agreement">
<h2>Agreement and mistakes</h2>
<p class="lead">How often each student's top-1 class is its teacher's, and where each model goes wrong: wrong test examples counted by (true label, predicted class)${
    sweep === null ? "" : ", summed over trials"
  }; hover a cell for how many of them the teacher got right.</p>
${
    agreementAndConfusion.length === 0
      ? `<p class="empty">No evaluate node recorded agreement or per-example predictions.</p>`
      : `<div class="grid small">${agreementAndConfusion.join("\n")}</div>`
  }
</section>`)

  if (sweep !== null) sections.push(trialsHtml(report))

  const facts = report.facts
    .map(([k, v]) => `<div><dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd></div>`)
    .join("")
  const notes = report.notes.length === 0 ? "" : `<div class="notes">${report.notes.map((n) => `<p>${escapeHtml(n)}</p>`).join("")}</div>`

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="distillery report">
<title>${escapeHtml(report.title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<span class="kind">${report.kind}</span>
<h1>${escapeHtml(report.title)}</h1>
<dl class="facts">${facts}</dl>
${notes}
</header>
<noscript><p class="notes">The charts are drawn by a script in this page; enable JavaScript to see them. The tables work without it.</p></noscript>
${sections.join("\n")}
<footer>Generated by <code>distillery report ${escapeHtml(report.id)}</code> at ${escapeHtml(report.generatedAt)}. This file is self-contained: its data is embedded below as JSON (<code>#report-data</code>).</footer>
</main>
<script type="application/json" id="report-data">${embedJson(report)}</script>
<script>${CHART_SCRIPT}</script>
</body>
</html>
`
}
