import { describe, expect, it } from "vitest";
import type { Message } from "../src/api";
import { conversationTitle, pairTurns, retrievalNote } from "../src/conversation";

const q = (id: string, content: string): Message => ({
  id,
  role: "user",
  content,
  created_at: "2030-01-01T00:00:00Z",
  retrieval: { query: content, method: "question" },
});
const a = (id: string, content: string): Message => ({
  id,
  role: "assistant",
  content,
  created_at: "2030-01-01T00:00:00Z",
  sources: [{ document_id: "d", document_name: "n", chunk_index: 0, content: "c", score: 1 }],
  usage: {},
});

describe("pairTurns", () => {
  it("pairs each question with the answer written after it", () => {
    const turns = pairTurns([q("1", "first?"), a("2", "one [1]"), q("3", "and then?"), a("4", "two")]);
    expect(turns.map((t) => [t.question?.content, t.answer?.content])).toEqual([
      ["first?", "one [1]"],
      ["and then?", "two"],
    ]);
    expect(turns[0].answer?.sources).toHaveLength(1);
    expect(turns[0].question?.retrieval).toEqual({ query: "first?", method: "question" });
  });

  it("shows an answer whose question is on the earlier page, and a question whose answer is on the next", () => {
    const turns = pairTurns([a("2", "one"), q("3", "and then?")]);
    expect(turns.map((t) => [t.question?.content ?? null, t.answer?.content ?? null])).toEqual([
      [null, "one"],
      ["and then?", null],
    ]);
  });

  it("gives nothing for no messages", () => {
    expect(pairTurns([])).toEqual([]);
  });
});

describe("retrievalNote", () => {
  it("says nothing when the question was searched as asked", () => {
    expect(retrievalNote({ query: "first?", method: "question" })).toBeNull();
    expect(retrievalNote(null)).toBeNull();
    expect(retrievalNote(undefined)).toBeNull();
  });

  it("shows the earlier questions the extractive default searched with, one line each", () => {
    expect(retrievalNote({ query: "Which mill?\nAnd on Sundays?", method: "with_history" })).toBe(
      "Searched together with the earlier questions: “Which mill? / And on Sundays?”",
    );
  });

  it("shows the standalone question a model wrote", () => {
    expect(retrievalNote({ query: "Is the bakery open on Sundays?", method: "condensed" })).toBe(
      "Searched as: “Is the bakery open on Sundays?”",
    );
  });
});

describe("conversationTitle", () => {
  it("names an untitled conversation until its first question titles it", () => {
    expect(conversationTitle(null)).toBe("New conversation");
    expect(conversationTitle("  ")).toBe("New conversation");
    expect(conversationTitle("Which mill?")).toBe("Which mill?");
  });
});
