import { ApiError, type Source } from "../api";
import type { AppContext, Screen } from "../context";
import { announce, append, clear, ErrorBox, field, h, uid } from "../dom";
import { locationOf, splitCitations } from "../citations";
import { messageOf } from "../errors";

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

function sourceList(sources: Source[], turn: string): { el: HTMLElement; ids: string[] } {
  const ids = sources.map((_, i) => `${turn}-source-${i + 1}`);
  const list = h("ol", { class: "sources" });
  sources.forEach((source, i) => {
    const where = locationOf(source);
    const retrievers = source.retrievers?.length ? ` · found by ${source.retrievers.join(" and ")}` : "";
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
          ),
          h("blockquote", { class: "snippet" }, source.content),
          h("p", { class: "source-meta" }, `Chunk ${source.chunk_index + 1} · score ${source.score.toFixed(3)}${retrievers}`),
        ),
      ),
    );
  });
  return { el: h("section", { class: "sources-block", "aria-label": "Sources" }, h("h3", {}, "Sources"), list), ids };
}

function render(ctx: AppContext, root: HTMLElement): () => void {
  let controller: AbortController | null = null;
  const errors = new ErrorBox();
  const log = h("ol", { class: "conversation", "aria-label": "Questions and answers" });
  const question = h("textarea", { name: "question", rows: 3, required: true, maxlength: 4000 });
  const topK = h("input", { type: "number", name: "top_k", min: 1, max: 50, value: 5, inputmode: "numeric" });
  const ask = h("button", { type: "submit" }, "Ask");
  const stop = h("button", { type: "button", class: "secondary", hidden: true }, "Stop");
  const form = h(
    "form",
    { class: "card ask-form", "aria-label": "Ask a question" },
    field("Question", question, "Enter sends; Shift+Enter starts a new line."),
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
    const turn = uid("turn");
    const answerText = h("p", { class: "answer-text" });
    const status = h("p", { class: "turn-status", role: "status" }, "Searching your documents…");
    const answer = h("article", { class: "answer", "aria-busy": "true", "aria-label": "Answer" }, answerText, status);
    const item = h("li", { class: "turn", id: turn }, h("p", { class: "question" }, h("span", { class: "visually-hidden" }, "Question: "), text), answer);
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
      // The conversations feature adds conversation_id to this body.
      for await (const sse of ctx.api.streamQuery({ question: text, top_k: k }, controller.signal)) {
        const data = JSON.parse(sse.data) as Record<string, unknown>;
        if (sse.event === "sources") {
          sources = (data.sources as Source[]) ?? [];
          const block = sourceList(sources, turn);
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
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") {
        status.textContent = "Stopped.";
      } else {
        status.textContent = "";
        status.hidden = true;
        const message = messageOf(err);
        answer.append(h("p", { class: "error-box", role: "alert" }, message));
      }
    } finally {
      answer.setAttribute("aria-busy", "false");
      controller = null;
      ask.disabled = false;
      stop.hidden = true;
      question.focus();
    }
  });

  root.append(
    h("h1", {}, "Ask"),
    h("p", { class: "lede" }, `Answers come only from the documents of ${ctx.org.name}, with their sources.`),
    log,
    form,
  );
  return () => controller?.abort();
}

export const askScreen: Screen = { id: "ask", title: "Ask", render };
