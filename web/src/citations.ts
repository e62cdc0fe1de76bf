import type { Source } from "./api";

// "[1]", and "[1, 2]" should a model group its citations.
const CITATION = /\[(\d+(?:\s*,\s*\d+)*)\]/g;

/** A piece of an answer: plain text, or the source numbers (1-based) of one citation. */
export type AnswerPart = string | number[];

/**
 * Splits an answer into text and citations. Only numbers that name one of the `sourceCount` sources are
 * citations: "[7]" with three sources, or "[0]", stays text.
 */
export function splitCitations(text: string, sourceCount: number): AnswerPart[] {
  const parts: AnswerPart[] = [];
  let last = 0;
  for (const match of text.matchAll(CITATION)) {
    const numbers = match[1].split(",").map((n) => Number(n.trim()));
    if (!numbers.every((n) => n >= 1 && n <= sourceCount)) continue;
    const index = match.index ?? 0;
    if (index > last) parts.push(text.slice(last, index));
    parts.push(numbers);
    last = index + match[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** Where in its document a source is: "page 3", "pages 3–5", the heading path, or "" for plain text. */
export function locationOf(source: Source): string {
  const parts: string[] = [];
  const [first, last] = Array.isArray(source.pages) ? source.pages : [source.page, source.page];
  if (typeof first === "number") {
    parts.push(typeof last === "number" && last !== first ? `pages ${first}–${last}` : `page ${first}`);
  }
  const headings = Array.isArray(source.headings) ? source.headings : source.heading ? [source.heading] : [];
  if (headings.length) parts.push(headings.join(" › "));
  return parts.join(" · ");
}
