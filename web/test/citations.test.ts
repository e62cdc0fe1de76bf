import { describe, expect, it } from "vitest";
import type { Source } from "../src/api";
import { locationOf, splitCitations } from "../src/citations";

const base: Source = { document_id: "d", document_name: "n", chunk_index: 0, content: "c", score: 1 };

describe("splitCitations", () => {
  it("turns [n] of an existing source into a citation and keeps the text around it", () => {
    expect(splitCitations("Rye comes from Vexley [1]. Closed on Sundays [2]", 2)).toEqual([
      "Rye comes from Vexley ",
      [1],
      ". Closed on Sundays ",
      [2],
    ]);
  });

  it("reads grouped citations and leaves numbers that name no source as text", () => {
    expect(splitCitations("a [1, 3] b [4] c [0]", 3)).toEqual(["a ", [1, 3], " b [4] c [0]"]);
  });

  it("is stable while the answer streams in (a half-received citation is text)", () => {
    expect(splitCitations("days [", 1)).toEqual(["days ["]);
    expect(splitCitations("days [1", 1)).toEqual(["days [1"]);
    expect(splitCitations("days [1]", 1)).toEqual(["days ", [1]]);
  });
});

describe("locationOf", () => {
  it("says nothing for a plain text source", () => {
    expect(locationOf({ ...base, page: null, pages: null, headings: [] })).toBe("");
    expect(locationOf(base)).toBe("");
  });

  it("names the page, or the range of pages", () => {
    expect(locationOf({ ...base, page: 3, pages: [3, 3] })).toBe("page 3");
    expect(locationOf({ ...base, page: 3, pages: [3, 5] })).toBe("pages 3–5");
  });

  it("joins the heading path, after the pages", () => {
    expect(locationOf({ ...base, headings: ["Handbook", "Leave"] })).toBe("Handbook › Leave");
    expect(locationOf({ ...base, page: 2, pages: [2, 2], headings: ["Travel"] })).toBe("page 2 · Travel");
  });
});
