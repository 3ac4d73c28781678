/**
 * Loopback fixtures for the teacher tests: a tiny byte-level LM with wide random weights, and a proxy
 * in front of a server that can answer 429 or 500 first, hang, cut connections, and counts what it
 * forwards and the Authorization headers it saw.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import type { LanguageModel } from "../../src/domain/Artifact.js"
import { decodeTransformerSpec } from "../../src/models/TransformerSpec.js"
import { bytesTokenizer } from "../../src/tokenizer/Bytes.js"
import { wideLanguageModel } from "../fixtures/transformer.js"

export const tinyLm = (seed = 5): LanguageModel => {
  const tokenizer = bytesTokenizer()
  const spec = decodeTransformerSpec({ type: "transformer", vocabSize: tokenizer.vocabSize, layers: 1, width: 32, heads: 4, kvHeads: 2, context: 64 })
  return wideLanguageModel(spec, tokenizer, seed)
}

/** What the proxy does with the next request: forward it, answer with a status, never answer, or cut the connection. */
export type Step = "forward" | { readonly status: number; readonly retryAfter?: string } | "hang" | "cut"

export interface Proxy {
  url: string
  /** Requests forwarded to the target and answered by it. */
  forwarded: number
  /** Every request seen. */
  seen: number
  /** Authorization headers seen. */
  readonly authorizations: Array<string>
  /** Where requests go; change it to point at a restarted server. */
  target: string
  /** While set, forwarding waits for it (e.g. for a killed server to be gone). */
  hold: Promise<unknown> | undefined
  close: () => Promise<void>
}

/**
 * A proxy to `target` whose i-th request (0-based) follows `plan(i)`; `afterForward(n)` runs once the
 * n-th forwarded answer is sent.
 */
export const startProxy = async (target: string, plan: (i: number) => Step = () => "forward", afterForward?: (n: number) => void): Promise<Proxy> => {
  const hanging: Array<ServerResponse> = []
  const proxy: Proxy = { url: "", forwarded: 0, seen: 0, authorizations: [], target, hold: undefined, close: async () => {} }
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const step = plan(proxy.seen++)
      if (req.headers.authorization !== undefined) proxy.authorizations.push(req.headers.authorization)
      if (step === "hang") return void hanging.push(res)
      if (step === "cut") return void res.socket?.destroy()
      if (step !== "forward") {
        res.writeHead(step.status, { "content-type": "application/json", ...(step.retryAfter !== undefined ? { "retry-after": step.retryAfter } : {}) })
        return void res.end(JSON.stringify({ error: { message: `planned ${step.status}`, type: "server_error", param: null, code: null } }))
      }
      Promise.resolve(proxy.hold)
        .then(() => fetch(`${proxy.target}${req.url}`, { method: req.method!, headers: { "content-type": "application/json" }, body: Buffer.concat(chunks) }))
        .then(async (answer) => {
          const text = await answer.text()
          res.writeHead(answer.status, { "content-type": "application/json" })
          res.end(text)
          proxy.forwarded++
          afterForward?.(proxy.forwarded)
        })
        .catch(() => res.socket?.destroy())
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  proxy.close = () =>
    new Promise<void>((resolve) => {
      for (const res of hanging) res.socket?.destroy()
      server.closeAllConnections()
      server.close(() => resolve())
    })
  return proxy
}
