/**
 * Builds dist/ once before any test file runs, so that every CLI test runs the compiled CLI a user runs
 * and no two test workers rebuild it at once.
 */
export default async function setup(): Promise<void> {
  const build = new URL("../bin/build.mjs", import.meta.url).href
  const { buildDist } = (await import(build)) as { buildDist: () => Promise<void> }
  await buildDist()
}
