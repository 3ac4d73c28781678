/**
 * The byte-level tokenizer: ids 0..255 are the UTF-8 bytes of the text, then the special tokens. No
 * training and no vocabulary beyond the bytes, so every text has a tokenization and any model over it
 * is comparable in bits per byte to any other.
 */
import type { Tokenizer } from "../domain/Artifact.js"
import { DEFAULT_SPECIAL, makeTokenizer } from "./Tokenizer.js"

export const bytesTokenizer = (special: ReadonlyArray<string> = DEFAULT_SPECIAL): Tokenizer =>
  makeTokenizer("bytes", new Int32Array(0), special, "none")
