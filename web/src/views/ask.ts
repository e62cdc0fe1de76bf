import { ApiError, type Conversation, type Retrieval, type Source, type StoredSource } from "../api";
import type { AppContext, Screen } from "../context";
import { announce, append, clear, ErrorBox, field, formatTime, h, uid } from "../dom";
import { locationOf, splitCitations } from "../citations";
import { conversationTitle, pairTurns, retrievalNote, type StoredTurn } from "../conversation";
import { messageOf } from "../errors";

// Every question is asked in a conversation: the first one of a new conversation creates it (untitled:
// the API names it after that question), so follow-ups are understood in context and the exchange is
// there after a reload. The address holds the open conversation (#/ask/<id>).
const LIST_PAGE = 50;
const MESSAGE_PAGE = 50;

/** Opens a source's panel and moves focus to it, as following a link to it would. */
function openSource(id: string): void {
  const details = document.getElementById(id) as HTMLDetailsElement | null;
  if (!details) return;
  details.open = true;
  details.classList.add("flash");
  window.setTimeout(() => details.classList.remove("flash"), 1200);
  details.scrollIntoView({ block: "nearest", behavior: "smooth" });
  details.querySelector("summary")?.focus();
}

/** The answer's text with each [n] turned into a link to source n (text nodes only: no markup). */
function renderAnswer(target: HTMLElement, text: string, sourceIds: string[], sources: Source[]): void {
  clear(target);
  for (const part of splitCitations(text, sourceIds.length)) {
    if (typeof part === "string") {
      append(target, part);
      continue;
    }
    part.forEach((n, i) => {
      const id = sourceIds[n - 1];
      const link = h(
        "a",
        {
          href: `#${id}`,
          class: "citation",
          "aria-label": `Source ${n}: ${sources[n - 1].document_name}`,
          "data-source": String(n),
        },
        `[${n}]`,
      );
      link.addEventListener("click", (event) => {
        event.preventDefault(); // the hash is the router's
        openSource(id);
      });
      if (i > 0) append(target, " ");
      target.append(link);
    });
  }
}

function sourceList(sources: StoredSource[], turn: string): { el: HTMLElement; ids: string[] } {
  const ids = sources.map((_, i) => `${turn}-source-${i + 1}`);
  const list = h("ol", { class: "sources" });
  sources.forEach((source, i) => {
    const where = locationOf(source);
    const retrievers = source.retrievers?.length ? ` · found by ${source.retrievers.join(" and ")}` : "";
    // A stored answer keeps its sources' places after a document is deleted, without their text.
    const snippet = source.document_deleted
      ? h("p", { class: "snippet deleted" }, "This document has been deleted: its text is no longer kept.")
      : h("blockquote", { class: "snippet" }, source.content);
    list.append(
      h(
        "li",
        {},
        h(
          "details",
          { id: ids[i], class: "source" },
          h(
            "summary",
            {},
            h("span", { class: "source-number" }, `[${i + 1}]`),
            " ",
            h("span", { class: "source-name" }, source.document_name),
            where ? h("span", { class: "source-where" }, ` · ${where}`) : null,
            source.document_deleted ? h("span", { class: "source-where" }, " · deleted") : null,
          ),
          snippet,
          h("p", { class: "source-meta" }, `Chunk ${source.chunk_index + 1} · score ${source.score.toFixed(3)}${retrievers}`),
        ),
      ),
    );
  });
  return { el: h("section", { class: "sources-block", "aria-label": "Sources" }, h("h3", {}, "Sources"), list), ids };
}

/** A turn of the log: the question (when known), then the answer's article, filled in by the caller. */
function turnElement(question: string | null): {
  item: HTMLLIElement;
  answer: HTMLElement;
  answerText: HTMLElement;
  showRetrieval(retrieval: Retrieval | null | undefined): void;
} {
  const turn = uid("turn");
  const answerText = h("p", { class: "answer-text" });
  const answer = h("article", { class: "answer", "aria-label": "Answer" }, answerText);
  const item = h("li", { class: "turn", id: turn });
  if (question !== null) {
    item.append(h("p", { class: "question" }, h("span", { class: "visually-hidden" }, "Question: "), question));
  }
  const note = h("p", { class: "retrieval", hidden: true });
  item.append(note, answer);
  return {
    item,
    answer,
    answerText,
    showRetrieval(retrieval) {
      const text = retrievalNote(retrieval);
      note.textContent = text ?? "";
      note.hidden = text === null;
    },
  };
}

/** A stored turn, complete: its question, what retrieval searched with, the answer and its sources. */
function storedTurn(turn: StoredTurn): HTMLLIElement {
  const view = turnElement(turn.question?.content ?? null);
  view.showRetrieval(turn.question?.retrieval);
  if (turn.answer) {
    const block = sourceList(turn.answer.sources, view.item.id);
    renderAnswer(view.answerText, turn.answer.content, block.ids, turn.answer.sources);
    if (turn.answer.sources.length) view.answer.append(block.el);
    view.answer.dataset.complete = "true";
  } else {
    view.answer.append(h("p", { class: "turn-status" }, "The answer is on the next page."));
  }
  return view.item;
}

function render(ctx: AppContext, root: HTMLElement): () => void {
  let stopped = false;
  let controller: AbortController | null = null;
  let conversationId: string | null = ctx.params[0] ?? null;
  let earlierCursor: string | null = null;
  let listCursor: string | null = null;
  const known = new Map<string, Conversation>();

  // --- the list of conversations -------------------------------------------------------------------
  const listErrors = new ErrorBox();
  const list = h("ul", { class: "conversation-list" });
  const listEmpty = h("p", { class: "empty", hidden: true }, "No conversations yet: ask a question to start one.");
  const listMore = h("button", { type: "button", class: "secondary", hidden: true }, "More conversations");
  const newConversation = h("button", { type: "button", class: "secondary" }, "New conversation");
  newConversation.addEventListener("click", () => ctx.navigate("ask"));

  function listItem(conversation: Conversation): HTMLLIElement {
    const title = conversationTitle(conversation.title);
    const open = conversation.id === conversationId;
    const link = h(
      "a",
      { href: `#/ask/${encodeURIComponent(conversation.id)}`, class: "conversation-link", title, "aria-current": open ? "page" : null },
      h("span", { class: "conversation-title" }, title),
      h("span", { class: "conversation-meta" }, `${conversation.turn_count} question${conversation.turn_count === 1 ? "" : "s"} · ${formatTime(conversation.updated_at)}`),
    );
    const remove = h("button", { type: "button", class: "danger small", "aria-label": `Delete conversation ${title}` }, "Delete");
    remove.addEventListener("click", () => void removeConversation(conversation, remove));
    return h("li", { "data-conversation-id": conversation.id }, link, remove);
  }

  function drawList(): void {
    clear(list);
    for (const conversation of known.values()) list.append(listItem(conversation));
    listEmpty.hidden = known.size > 0;
    listMore.hidden = listCursor === null;
  }

  async function loadList(more = false): Promise<void> {
    try {
      const page = await ctx.api.listConversations(more ? listCursor : null, LIST_PAGE);
      if (stopped) return;
      if (!more) known.clear();
      for (const item of page.items) known.set(item.id, item);
      listCursor = page.next_cursor;
      listErrors.hide();
      drawList();
    } catch (err) {
      if (!stopped) listErrors.show(`Could not list the conversations: ${messageOf(err)}`);
    }
  }
  listMore.addEventListener("click", () => void loadList(true));

  async function removeConversation(conversation: Conversation, button: HTMLButtonElement): Promise<void> {
    const title = conversationTitle(conversation.title);
    if (!window.confirm(`Delete the conversation "${title}" and all its messages? This cannot be undone.`)) return;
    listErrors.hide();
    button.disabled = true;
    try {
      await ctx.api.deleteConversation(conversation.id);
    } catch (err) {
      // Already gone (deleted in another tab): what the person wanted.
      if (!(err instanceof ApiError && err.status === 404)) {
        listErrors.show(`${title}: ${messageOf(err)}`);
        button.disabled = false;
        return;
      }
    }
    announce(`Conversation ${title} deleted.`);
    if (conversation.id === conversationId) {
      ctx.navigate("ask");
      return;
    }
    known.delete(conversation.id);
    drawList();
    newConversation.focus();
  }

  // --- the open conversation -----------------------------------------------------------------------
  const chatTitle = h("h2", { id: "chat-title", tabindex: -1 }, "New conversation");
  const chatErrors = new ErrorBox();
  const earlier = h("button", { type: "button", class: "secondary", hidden: true }, "Show earlier messages");
  const log = h("ol", { class: "conversation", "aria-label": "Questions and answers" });

  function showTitle(conversation: Conversation | null): void {
    chatTitle.textContent = conversation ? conversationTitle(conversation.title) : "New conversation";
  }

  async function openConversation(id: string): Promise<void> {
    try {
      const page = await ctx.api.getConversation(id, null, MESSAGE_PAGE);
      if (stopped || id !== conversationId) return;
      showTitle(page.conversation);
      for (const turn of pairTurns(page.messages)) log.append(storedTurn(turn));
      earlierCursor = page.next_cursor;
      earlier.hidden = earlierCursor === null;
      log.lastElementChild?.scrollIntoView({ block: "end" });
      announce(`${conversationTitle(page.conversation.title)}: ${page.conversation.turn_count} question${page.conversation.turn_count === 1 ? "" : "s"}.`);
    } catch (err) {
      if (stopped) return;
      if (err instanceof ApiError && err.status === 404) {
        // Deleted, or never the caller's: the same answer either way. Start afresh where it was.
        conversationId = null;
        ctx.navigate("ask", true);
        chatErrors.show("This conversation does not exist or has been deleted. A question asked here starts a new one.");
      } else {
        chatErrors.show(`Could not open the conversation: ${messageOf(err)}`);
      }
    }
  }

  earlier.addEventListener("click", async () => {
    if (!conversationId || !earlierCursor) return;
    earlier.disabled = true;
    try {
      const page = await ctx.api.getConversation(conversationId, earlierCursor, MESSAGE_PAGE);
      if (stopped) return;
      const items = pairTurns(page.messages).map(storedTurn);
      log.prepend(...items);
      earlierCursor = page.next_cursor;
      earlier.hidden = earlierCursor === null;
      // Keyboard users go on reading from the first of the messages just shown.
      const first = items[0]?.querySelector<HTMLElement>(".question, .answer");
      if (first) {
        first.setAttribute("tabindex", "-1");
        first.focus();
      }
      announce(`${page.messages.length} earlier messages shown.`);
    } catch (err) {
      if (!stopped) chatErrors.show(`Could not load earlier messages: ${messageOf(err)}`);
    } finally {
      earlier.disabled = false;
    }
  });

  // --- asking ---------------------------------------------------------------------------------------
  const errors = new ErrorBox();
  const question = h("textarea", { name: "question", rows: 3, required: true, maxlength: 4000 });
  const topK = h("input", { type: "number", name: "top_k", min: 1, max: 50, value: 5, inputmode: "numeric" });
  const ask = h("button", { type: "submit" }, "Ask");
  const stop = h("button", { type: "button", class: "secondary", hidden: true }, "Stop");
  const form = h(
    "form",
    { class: "card ask-form", "aria-label": "Ask a question" },
    field("Question", question, "Enter sends; Shift+Enter starts a new line. Follow-up questions are understood in the conversation."),
    h("div", { class: "row" }, field("Sources to retrieve", topK), h("div", { class: "buttons" }, ask, stop)),
    errors.el,
  );
  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener("click", () => controller?.abort());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.hide();
    const text = question.value.trim();
    if (!text || controller) return;
    const k = Number(topK.value);
    if (!Number.isInteger(k) || k < 1 || k > 50) {
      errors.show("Sources to retrieve must be a whole number from 1 to 50.");
      topK.focus();
      return;
    }
    const view = turnElement(text);
    const { item, answer, answerText } = view;
    const status = h("p", { class: "turn-status", role: "status" }, "Searching your documents…");
    answer.append(status);
    answer.setAttribute("aria-busy", "true");
    log.append(item);
    item.scrollIntoView({ block: "end" });

    controller = new AbortController();
    ask.disabled = true;
    stop.hidden = false;
    let sources: Source[] = [];
    let ids: string[] = [];
    let full = "";
    let tokens = 0;
    let finished = false;
    try {
      if (conversationId === null) {
        const { conversation } = await ctx.api.createConversation();
        if (stopped) return;
        conversationId = conversation.id;
        const others = [...known.values()];
        known.clear();
        for (const c of [conversation, ...others]) known.set(c.id, c);
        drawList();
        ctx.navigate(`ask/${encodeURIComponent(conversation.id)}`, true);
      }
      const body = { question: text, top_k: k, conversation_id: conversationId };
      for await (const sse of ctx.api.streamQuery(body, controller.signal)) {
        const data = JSON.parse(sse.data) as Record<string, unknown>;
        if (sse.event === "sources") {
          sources = (data.sources as Source[]) ?? [];
          view.showRetrieval((data.conversation as { retrieval?: Retrieval } | undefined)?.retrieval);
          const block = sourceList(sources, item.id);
          ids = block.ids;
          if (sources.length) answer.append(block.el);
          status.textContent = "Writing the answer…";
        } else if (sse.event === "token") {
          full += String(data.text ?? "");
          tokens += 1;
          // How many pieces were shown as they arrived (read by the browser test: streamed, not at once).
          answerText.dataset.tokens = String(tokens);
          renderAnswer(answerText, full, ids, sources);
        } else if (sse.event === "done") {
          finished = true;
          status.textContent = sources.length ? "" : "No document matched the question.";
          status.hidden = !status.textContent;
        } else if (sse.event === "error") {
          throw new ApiError(200, String(data.code ?? "error"), String(data.message ?? "The answer failed"));
        }
      }
      if (!finished) throw new ApiError(0, "stream_ended", "The answer stopped before it was complete");
      answer.dataset.complete = "true";
      question.value = "";
      announce(`Answer complete${sources.length ? `, ${sources.length} source${sources.length > 1 ? "s" : ""}` : ""}.`);
      // The turn is stored: the list moves this conversation to the top, named after its first question.
      void loadList().then(() => showTitle(conversationId ? (known.get(conversationId) ?? null) : null));
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") {
        status.textContent = "Stopped: this answer is not kept in the conversation.";
      } else {
        status.textContent = "";
        status.hidden = true;
        answer.append(h("p", { class: "error-box", role: "alert" }, messageOf(err)));
      }
    } finally {
      answer.setAttribute("aria-busy", "false");
      controller = null;
      ask.disabled = false;
      stop.hidden = true;
      if (!stopped) question.focus();
    }
  });

  root.append(
    h("h1", {}, "Ask"),
    h("p", { class: "lede" }, `Answers come only from the documents of ${ctx.org.name}, with their sources. Your conversations are yours alone.`),
    h(
      "div",
      { class: "chat-layout" },
      h(
        "nav",
        { class: "card conversations-pane", "aria-labelledby": "conversations-title" },
        h("h2", { id: "conversations-title" }, "Conversations"),
        newConversation,
        listErrors.el,
        listEmpty,
        list,
        listMore,
      ),
      h("section", { class: "chat-pane", "aria-labelledby": "chat-title" }, chatTitle, chatErrors.el, earlier, log, form),
    ),
  );
  void loadList();
  if (conversationId) void openConversation(conversationId);
  return () => {
    stopped = true;
    controller?.abort();
  };
}

export const askScreen: Screen = { id: "ask", title: "Ask", render };
