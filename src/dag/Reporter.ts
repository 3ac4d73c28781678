/**
 * Shows what the executor is doing: one line when a node starts and ends, and live progress for long
 * nodes (epoch, loss, ETA). On a terminal the progress line is redrawn in place; in a log (CI, a pipe)
 * only whole epochs are printed. `layerSilent` is for tests and for `query`-style verbs.
 */
import { Context, Layer } from "effect"
import type { Progress } from "../nodes/NodeKind.js"

export type NodeStatus = "executed" | "cached" | "failed" | "skipped"

export interface ReporterShape {
  readonly started: (node: string, kind: string) => void
  readonly progress: (node: string, progress: Progress) => void
  readonly finished: (node: string, status: NodeStatus, ms: number, detail?: string) => void
  readonly log: (text: string) => void
}

export class Reporter extends Context.Tag("distillery/Reporter")<Reporter, ReporterShape>() {
  static readonly layerSilent = Layer.succeed(Reporter, {
    started: () => {},
    progress: () => {},
    finished: () => {},
    log: () => {}
  })

  /** Writes to stderr so that stdout stays clean for tables, CSV and JSON. */
  static readonly layerConsole = Layer.sync(Reporter, () => makeConsole(process.stderr))
}

export const formatDuration = (ms: number): string => {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`
  const m = Math.floor(s / 60)
  return m < 60 ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`
}

const formatFact = (v: number | string): string =>
  typeof v === "string" ? v : Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(4)

export const makeConsole = (out: NodeJS.WriteStream): ReporterShape => {
  const tty = out.isTTY === true
  const startedAt = new Map<string, number>()
  const lastEpoch = new Map<string, number>()
  let liveLine = false
  const clearLive = () => {
    if (liveLine) out.write("\r\x1b[K")
    liveLine = false
  }
  const line = (text: string) => {
    clearLive()
    out.write(`${text}\n`)
  }
  const icons: Record<NodeStatus, string> = { executed: "✓", cached: "↺", failed: "✗", skipped: "-" }
  return {
    started: (node, kind) => {
      startedAt.set(node, performance.now())
      line(`▶ ${node} (${kind})`)
    },
    progress: (node, p) => {
      const started = startedAt.get(node) ?? performance.now()
      const elapsed = performance.now() - started
      const eta = p.done > 0 ? (elapsed / p.done) * (p.total - p.done) : undefined
      const facts = Object.entries(p.facts ?? {})
        .map(([k, v]) => `${k} ${formatFact(v)}`)
        .join("  ")
      const text = `  ${node}  ${p.unit} ${Number.isInteger(p.done) ? p.done : p.done.toFixed(1)}/${p.total}  ${facts}${eta !== undefined ? `  ETA ${formatDuration(eta)}` : ""}`
      if (tty) {
        out.write(`\r\x1b[K${text.slice(0, (out.columns ?? 120) - 1)}`)
        liveLine = true
      } else if (p.facts !== undefined && Number.isInteger(p.done) && lastEpoch.get(node) !== p.done) {
        // In a log, print whole units that carry facts only (each epoch once), never per batch.
        lastEpoch.set(node, p.done)
        line(text)
      }
    },
    finished: (node, status, ms, detail) =>
      line(`${icons[status]} ${node} ${status} in ${formatDuration(ms)}${detail ? `: ${detail}` : ""}`),
    log: (text) => line(text)
  }
}
