/**
 * A child process serving the loopback fixture's tiny LM with `startServer` (what `distillery serve`
 * runs), for tests that kill the server: prints "listening on <url>" once it answers.
 */
import { initBackend } from "../../src/backend/Backend.js"
import { startServer } from "../../src/serve/OpenAiServer.js"
import { tinyLm } from "./loopback.js"

await initBackend("cpu")
const server = await startServer({ model: tinyLm(), name: "tiny", port: 0 })
process.stdout.write(`listening on ${server.url}\n`)
