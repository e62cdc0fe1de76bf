import type { Message, Retrieval, StoredSource, Usage } from "./api";

/** A question and its answer as the conversation stored them (either may be on another page). */
export interface StoredTurn {
  question: { content: string; retrieval: Retrieval | null } | null;
  answer: { content: string; sources: StoredSource[]; usage: Usage } | null;
}

/**
 * Pairs a page of messages (in the order written) into turns. Turns are stored whole, a question then
 * its answer, so pairs are the rule; a page cut between the two (its size bound) leaves an answer whose
 * question is on the earlier page, or a question whose answer is on the later one, each shown alone.
 */
export function pairTurns(messages: Message[]): StoredTurn[] {
  const turns: StoredTurn[] = [];
  for (const message of messages) {
    if (message.role === "user") {
      turns.push({ question: { content: message.content, retrieval: message.retrieval ?? null }, answer: null });
      continue;
    }
    const answer = { content: message.content, sources: message.sources ?? [], usage: message.usage ?? {} };
    const last = turns[turns.length - 1];
    if (last && last.question && !last.answer) last.answer = answer;
    else turns.push({ question: null, answer });
  }
  return turns;
}

/**
 * What retrieval searched with, said only when it is not the question as asked: a follow-up searched
 * with the earlier questions (the extractive default) or rewritten by the model into a standalone one.
 */
export function retrievalNote(retrieval: Retrieval | null | undefined): string | null {
  if (!retrieval || !retrieval.query) return null;
  if (retrieval.method === "condensed") return `Searched as: “${retrieval.query}”`;
  if (retrieval.method === "with_history") {
    // The questions are joined by line breaks (earliest first, the follow-up last).
    const questions = retrieval.query.split("\n").map((q) => q.trim()).filter(Boolean);
    return `Searched together with the earlier questions: “${questions.join(" / ")}”`;
  }
  return null;
}

/** The name a conversation is listed under: its title, which the first question gives an untitled one. */
export function conversationTitle(title: string | null | undefined): string {
  return title && title.trim() ? title : "New conversation";
}
