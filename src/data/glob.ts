/**
 * File globs for text corpora (Node 20 has no `fs.glob`): `*` and `?` within a path segment, `**` for
 * any number of directories. Hidden entries match only a segment that starts with a dot. Results are
 * relative to the base directory when the pattern is, sorted, so a corpus's document order is stable.
 */
import * as fs from "node:fs"
import * as nodePath from "node:path"

export const isGlob = (pattern: string): boolean => /[*?]/.test(pattern)

const segmentRegex = (segment: string): RegExp =>
  new RegExp(
    "^" +
      segment
        .split("")
        .map((ch) => (ch === "*" ? "[^/]*" : ch === "?" ? "[^/]" : ch.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
        .join("") +
      "$"
  )

const entries = (dir: string): Array<fs.Dirent> => {
  try {
    return fs.readdirSync(dir, { withFileTypes: true })
  } catch {
    return []
  }
}

/**
 * The files `pattern` names, as paths written like the pattern (relative stays relative to `baseDir`).
 * A pattern without wildcards is returned as is, whether or not the file exists (reading it reports that).
 */
export const expandGlob = (pattern: string, baseDir: string): Array<string> => {
  if (!isGlob(pattern)) return [pattern]
  const segments = pattern.split(/[\\/]/)
  const absolute = nodePath.isAbsolute(pattern)
  const found = new Set<string>()
  // (directory as written, index of the next segment to match)
  const walk = (written: string, i: number): void => {
    const onDisk = nodePath.resolve(baseDir, written === "" ? "." : written)
    const join = (name: string) => (written === "" ? name : written.endsWith("/") ? written + name : `${written}/${name}`)
    if (i === segments.length) {
      if (fs.statSync(onDisk, { throwIfNoEntry: false })?.isFile() === true) found.add(written)
      return
    }
    const segment = segments[i]!
    if (segment === "**") {
      walk(written, i + 1)
      for (const e of entries(onDisk)) if (e.isDirectory() && !e.name.startsWith(".")) walk(join(e.name), i)
      return
    }
    if (!isGlob(segment)) return walk(join(segment), i + 1)
    const match = segmentRegex(segment)
    for (const e of entries(onDisk)) {
      if (e.name.startsWith(".") && !segment.startsWith(".")) continue
      if (match.test(e.name)) walk(join(e.name), i + 1)
    }
  }
  const rooted = absolute && segments[0] === ""
  walk(rooted ? "/" : "", rooted ? 1 : 0)
  return [...found].sort()
}
