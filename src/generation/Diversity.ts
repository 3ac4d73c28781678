/**
 * How varied a set of samples is, over token ids: distinct-n (Li et al. 2016), the repetition rate
 * within a sample, and self-BLEU (Zhu et al. 2018, Texygen); and the answer normalisation behind exact
 * match. Pure functions over token sequences and strings.
 */

const gramKey = (tokens: ArrayLike<number>, at: number, n: number): string => {
  let key = String(tokens[at])
  for (let i = 1; i < n; i++) key += `,${tokens[at + i]}`
  return key
}

const gramCounts = (tokens: ArrayLike<number>, n: number): Map<string, number> => {
  const counts = new Map<string, number>()
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = gramKey(tokens, i, n)
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return counts
}

/** distinct-n: distinct n-grams / all n-grams, pooled over the samples (n-grams never cross samples); 0 when there are none. */
export const distinctN = (samples: ReadonlyArray<ArrayLike<number>>, n: number): number => {
  const seen = new Set<string>()
  let total = 0
  for (const s of samples) {
    for (let i = 0; i + n <= s.length; i++) {
      seen.add(gramKey(s, i, n))
      total++
    }
  }
  return total > 0 ? seen.size / total : 0
}

/**
 * Repetition rate: per sample, the fraction of its n-grams (default 4-grams) that already occurred
 * earlier in the same sample; the mean over the samples that have at least one n-gram (0 when none do).
 */
export const repetitionRate = (samples: ReadonlyArray<ArrayLike<number>>, n = 4): number => {
  let sum = 0
  let counted = 0
  for (const s of samples) {
    const grams = s.length - n + 1
    if (grams < 1) continue
    const seen = new Set<string>()
    let repeated = 0
    for (let i = 0; i < grams; i++) {
      const key = gramKey(s, i, n)
      if (seen.has(key)) repeated++
      else seen.add(key)
    }
    sum += repeated / grams
    counted++
  }
  return counted > 0 ? sum / counted : 0
}

/**
 * Self-BLEU: each sample's BLEU-4 (uniform weights, brevity penalty against the closest reference
 * length) with every other sample as a reference, averaged over the samples. A precision with no
 * match counts 0.1 / its n-gram count (NLTK's smoothing method 1), so short samples do not zero it.
 * Higher is less diverse. NaN for fewer than two samples. Cost O(G^2 L).
 */
export const selfBleu = (samples: ReadonlyArray<ArrayLike<number>>, maxN = 4): number => {
  if (samples.length < 2) return NaN
  const counts = samples.map((s) => Array.from({ length: maxN }, (_, i) => gramCounts(s, i + 1)))
  let total = 0
  let scored = 0
  for (const [h, hyp] of samples.entries()) {
    if (hyp.length === 0) continue
    let logSum = 0
    for (let n = 1; n <= maxN; n++) {
      const grams = Math.max(0, hyp.length - n + 1)
      if (grams === 0) {
        logSum += Math.log(0.1)
        continue
      }
      let clipped = 0
      for (const [gram, c] of counts[h]![n - 1]!) {
        let most = 0
        for (let r = 0; r < samples.length; r++) if (r !== h) most = Math.max(most, counts[r]![n - 1]!.get(gram) ?? 0)
        clipped += Math.min(c, most)
      }
      logSum += Math.log(clipped > 0 ? clipped / grams : 0.1 / grams)
    }
    let closest = Infinity
    for (let r = 0; r < samples.length; r++) {
      if (r === h) continue
      const d = samples[r]!.length
      if (Math.abs(d - hyp.length) < Math.abs(closest - hyp.length) || (Math.abs(d - hyp.length) === Math.abs(closest - hyp.length) && d < closest)) closest = d
    }
    const brevity = hyp.length >= closest ? 1 : Math.exp(1 - closest / hyp.length)
    total += brevity * Math.exp(logSum / maxN)
    scored++
  }
  return scored > 0 ? total / scored : NaN
}

/** An answer as exact match compares it: lower case, whitespace collapsed, outer whitespace and punctuation dropped. */
export const normaliseAnswer = (text: string): string =>
  text.toLowerCase().replace(/\s+/g, " ").trim().replace(/^[\s\p{P}]+|[\s\p{P}]+$/gu, "")
