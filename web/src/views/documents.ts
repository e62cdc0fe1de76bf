import type { Api, DocumentItem } from "../api";
import type { AppContext, Screen } from "../context";
import { announce, ErrorBox, field, formatTime, h } from "../dom";
import { messageOf } from "../errors";
import { contentTypeOf, formatBytes, putFile, sizeProblem, SUPPORTED_TYPES } from "../upload";

// How often documents still pending or processing are asked for again. Ingestion of a text takes a
// second or two locally; a file can take longer. Polling stops when none is left in flight.
const POLL_MS = 1500;
const PAGE_SIZE = 50;
const FINAL = new Set(["ready", "failed"]);

/** A way of adding documents: a panel of the "Add a document" section (text, or files). */
export interface AddMethod {
  id: string;
  title: string;
  render(api: Api, added: (document: DocumentItem) => void): HTMLElement;
}

const textMethod: AddMethod = {
  id: "text",
  title: "Text",
  render(api, added) {
    const errors = new ErrorBox();
    const name = h("input", { type: "text", name: "name", required: true, maxlength: 255, placeholder: "handbook.txt" });
    const content = h("textarea", { name: "content", required: true, rows: 8 });
    const metadata = h("input", { type: "text", name: "metadata", placeholder: '{"team": "hr"}', spellcheck: "false" });
    const submit = h("button", { type: "submit" }, "Add document");
    const form = h(
      "form",
      { class: "stack", "aria-label": "Add a text document" },
      field("Name", name),
      field("Content", content),
      field("Metadata (optional JSON object)", metadata, "Queries can filter on these keys."),
      errors.el,
      submit,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.hide();
      let meta: Record<string, unknown> | undefined;
      if (metadata.value.trim()) {
        try {
          const parsed: unknown = JSON.parse(metadata.value);
          if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
          meta = parsed as Record<string, unknown>;
        } catch {
          errors.show('Metadata must be a JSON object, for example {"team": "hr"}.');
          metadata.focus();
          return;
        }
      }
      submit.disabled = true;
      try {
        const { document } = await api.createDocument(name.value.trim(), content.value, meta);
        form.reset();
        added(document);
        announce(`${document.name} added; ingestion started.`);
        name.focus();
      } catch (err) {
        errors.show(messageOf(err));
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  },
};

// What the file picker offers (the types, and the extensions that stand for them when a browser knows
// no type); any other file can still be dropped or chosen, and is then refused with the API's message.
const ACCEPT = [...SUPPORTED_TYPES, ".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"].join(",");

/** Parses the optional metadata field: an object, undefined when blank, or null when it is not valid. */
function parseMetadata(raw: string): Record<string, unknown> | undefined | null {
  if (!raw.trim()) return undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
    return parsed as Record<string, unknown>;
  } catch {
    return null;
  }
}

const fileMethod: AddMethod = {
  id: "files",
  title: "Files",
  render(api, added) {
    const errors = new ErrorBox();
    const input = h("input", { type: "file", name: "files", multiple: true, accept: ACCEPT });
    const metadata = h("input", { type: "text", name: "metadata", placeholder: '{"team": "hr"}', spellcheck: "false" });
    const limit = api.config.maxUploadBytes;
    const zone = h(
      "div",
      { class: "dropzone" },
      field("Files", input, `Text, Markdown, HTML, PDF or Word (.docx), up to ${formatBytes(limit)} each. Several at once, or drop them here.`),
    );
    const list = h("ul", { class: "uploads", "aria-label": "Uploads" });
    const form = h(
      "form",
      { class: "stack", "aria-label": "Upload files" },
      zone,
      field("Metadata of the files (optional JSON object)", metadata, "Queries can filter on these keys."),
      errors.el,
      list,
    );
    form.addEventListener("submit", (event) => event.preventDefault());

    function start(files: File[]): void {
      errors.hide();
      if (files.length === 0) return;
      const meta = parseMetadata(metadata.value);
      if (meta === null) {
        errors.show('Metadata must be a JSON object, for example {"team": "hr"}.');
        metadata.focus();
        return;
      }
      announce(files.length === 1 ? `Uploading ${files[0].name}.` : `Uploading ${files.length} files.`);
      for (const file of files) void uploadOne(file, meta);
    }

    // One list item per file: its name, a progress bar (announced by assistive technology as it moves)
    // and a line saying where it stands, or why it was refused.
    async function uploadOne(file: File, meta: Record<string, unknown> | undefined): Promise<void> {
      const bar = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${file.name}` });
      const state = h("p", { class: "upload-state" }, "Waiting…");
      const item = h("li", { class: "upload", "data-state": "starting" }, h("span", { class: "upload-name" }, file.name), bar, state);
      list.prepend(item);
      const fail = (message: string) => {
        item.dataset.state = "refused";
        bar.hidden = true;
        state.textContent = message;
        state.setAttribute("role", "alert");
      };
      const problem = sizeProblem(file.size, limit);
      if (problem) {
        fail(`${file.name}: ${problem} Nothing was sent.`);
        return;
      }
      const { type, supported } = contentTypeOf(file);
      let created;
      try {
        created = await api.createUpload(file.name, type, file.size, meta);
      } catch (err) {
        // The API's 422 for a type it does not take lists the media types; people know extensions.
        const unsupported = !supported && (err as { status?: number }).status === 422 && /content_type/.test(messageOf(err));
        fail(
          unsupported
            ? `${file.name}: files of type ${type} are not supported. The platform takes text, Markdown, HTML, PDF and Word (.docx) files.`
            : `${file.name}: ${messageOf(err)}`,
        );
        return;
      }
      added(created.document);
      item.dataset.state = "uploading";
      state.textContent = `Sending ${formatBytes(file.size)}…`;
      let shown = -1;
      try {
        await putFile(created.upload, file, (sent, total) => {
          const percent = total > 0 ? Math.floor((sent / total) * 100) : 0;
          if (percent === shown) return;
          shown = percent;
          bar.value = percent;
          bar.setAttribute("aria-valuetext", `${percent}% (${formatBytes(sent)} of ${formatBytes(total)})`);
        });
      } catch (err) {
        fail(`${file.name}: ${messageOf(err)} The document stays pending until the upload link expires, then fails.`);
        return;
      }
      item.dataset.state = "uploaded";
      state.textContent = "Uploaded; ingestion started (its status is in the list below).";
      announce(`${file.name} uploaded; ingestion started.`);
    }

    input.addEventListener("change", () => {
      const files = Array.from(input.files ?? []);
      input.value = ""; // choosing the same file again starts it again
      start(files);
    });
    // Drag and drop onto the zone; the picker (a native control: keyboard and screen readers) does the same.
    zone.addEventListener("dragover", (event) => {
      if (!event.dataTransfer?.types.includes("Files")) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      start(Array.from(event.dataTransfer?.files ?? []));
    });
    return form;
  },
};

export const ADD_METHODS: AddMethod[] = [textMethod, fileMethod];

function statusBadge(doc: DocumentItem, duplicateLink: (id: string) => HTMLElement): HTMLElement {
  const label = { pending: "Pending", processing: "Processing", ready: "Ready", failed: "Failed" }[doc.status] ?? doc.status;
  const wrap = h("div", { class: "status-cell" }, h("span", { class: `badge badge-${doc.status}`, "data-status": doc.status }, label));
  if (doc.status === "failed" && doc.error) wrap.append(h("p", { class: "failure-reason" }, doc.error));
  if (doc.duplicate_of) wrap.append(h("p", { class: "duplicate-of" }, "Duplicate of ", duplicateLink(doc.duplicate_of)));
  return wrap;
}

function render(ctx: AppContext, root: HTMLElement): () => void {
  const { api } = ctx;
  const docs = new Map<string, DocumentItem>();
  const order: string[] = [];
  let nextCursor: string | null = null;
  let timer: number | undefined;
  let stopped = false;
  const errors = new ErrorBox();

  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "documents" },
    h("caption", { class: "visually-hidden" }, "Documents of the organisation"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Name"),
        h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col" }, "Chunks"),
        h("th", { scope: "col" }, "Updated"),
        ctx.isAdmin ? h("th", { scope: "col" }, "Actions") : null,
      ),
    ),
    tbody,
  );
  const empty = h("p", { class: "empty" }, "No documents yet: add one above.");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");

  // Re-ingesting and deleting are for administrators (the API answers 403 to members): members get no
  // actions column at all.
  function row(doc: DocumentItem): HTMLTableRowElement {
    const tr = h(
      "tr",
      { "data-document-id": doc.id, id: `document-${doc.id}`, tabindex: -1 },
      h("th", { scope: "row", class: "doc-name" }, doc.name),
      h("td", {}, statusBadge(doc, duplicateLink)),
      h("td", { class: "num" }, doc.chunk_count === null || doc.chunk_count === undefined ? "–" : String(doc.chunk_count)),
      h("td", {}, h("time", { datetime: doc.updated_at }, formatTime(doc.updated_at))),
    );
    if (ctx.isAdmin) tr.append(h("td", {}, adminActions(doc)));
    return tr;
  }

  // A duplicate names the document it repeats: a link that brings that row into view and focuses it (an
  // address of its own, #/documents/<id>, so it can be opened in a new tab too).
  function duplicateLink(id: string): HTMLElement {
    const original = docs.get(id);
    const link = h("a", { href: `#/documents/${encodeURIComponent(id)}`, class: "duplicate-link" }, original ? original.name : "an earlier document");
    link.addEventListener("click", (event) => {
      event.preventDefault();
      ctx.navigate(`documents/${id}`, true);
      void reveal(id);
    });
    return link;
  }

  async function reveal(id: string): Promise<void> {
    if (!docs.has(id)) {
      try {
        const { document } = await api.getDocument(id);
        if (stopped) return;
        upsert(document);
      } catch (err) {
        if (!stopped) errors.show(`Could not show that document: ${messageOf(err)}`);
        return;
      }
    }
    const tr = tbody.querySelector<HTMLTableRowElement>(`tr[data-document-id="${CSS.escape(id)}"]`);
    if (!tr) return;
    for (const other of Array.from(tbody.querySelectorAll(".highlight"))) other.classList.remove("highlight");
    tr.classList.add("highlight");
    tr.scrollIntoView({ block: "center" });
    tr.focus();
  }

  function adminActions(doc: DocumentItem): HTMLElement {
    const actions = h("div", { class: "actions" });
    const reingest = h(
      "button",
      { type: "button", class: "secondary", "aria-label": `Re-ingest ${doc.name}`, disabled: !FINAL.has(doc.status) },
      "Re-ingest",
    );
    reingest.addEventListener("click", async () => {
      errors.hide();
      reingest.disabled = true;
      try {
        const { document } = await api.reingestDocument(doc.id);
        upsert(document);
        announce(`${doc.name}: ingestion started again.`);
      } catch (err) {
        errors.show(`${doc.name}: ${messageOf(err)}`);
        reingest.disabled = false;
      }
    });
    actions.append(reingest);

    const remove = h("button", { type: "button", class: "danger", "aria-label": `Delete ${doc.name}` }, "Delete");
    remove.addEventListener("click", async () => {
      if (!window.confirm(`Delete "${doc.name}" and its chunks? This cannot be undone.`)) return;
      errors.hide();
      remove.disabled = true;
      try {
        await api.deleteDocument(doc.id);
        docs.delete(doc.id);
        order.splice(order.indexOf(doc.id), 1);
        draw();
        announce(`${doc.name} deleted.`);
      } catch (err) {
        errors.show(`${doc.name}: ${messageOf(err)}`);
        remove.disabled = false;
      }
    });
    actions.append(remove);
    return actions;
  }

  function draw(): void {
    // Rows move or change in place: a row that did not change stays in the document, and so does the
    // focus on one of its buttons while the statuses around it update.
    const existing = new Map<string, HTMLTableRowElement>();
    for (const tr of Array.from(tbody.rows)) existing.set(tr.dataset.documentId ?? "", tr);
    order.forEach((id, index) => {
      const doc = docs.get(id)!;
      const old = existing.get(id);
      const wanted = old && old.dataset.version === doc.updated_at + doc.status ? old : versioned(row(doc), doc);
      if (old && old !== wanted) old.remove();
      if (tbody.rows[index] !== wanted) tbody.insertBefore(wanted, tbody.rows[index] ?? null);
    });
    for (const tr of Array.from(tbody.rows)) if (!docs.has(tr.dataset.documentId ?? "")) tr.remove();
    empty.hidden = order.length > 0;
    table.hidden = order.length === 0;
    more.hidden = nextCursor === null;
  }

  function versioned(tr: HTMLTableRowElement, doc: DocumentItem): HTMLTableRowElement {
    tr.dataset.version = doc.updated_at + doc.status;
    return tr;
  }

  function upsert(doc: DocumentItem, front = false): void {
    const before = docs.get(doc.id);
    docs.set(doc.id, doc);
    if (!order.includes(doc.id)) {
      if (front) order.unshift(doc.id);
      else order.push(doc.id);
    }
    draw();
    if (before && before.status !== doc.status && FINAL.has(doc.status)) {
      announce(`${doc.name} is ${doc.status}${doc.error ? `: ${doc.error}` : ""}.`);
    }
    schedule();
  }

  function schedule(): void {
    if (stopped || timer !== undefined) return;
    if (![...docs.values()].some((d) => !FINAL.has(d.status))) return;
    timer = window.setTimeout(poll, POLL_MS);
  }

  async function poll(): Promise<void> {
    timer = undefined;
    const inFlight = [...docs.values()].filter((d) => !FINAL.has(d.status));
    for (const doc of inFlight) {
      if (stopped) return;
      try {
        const { document } = await api.getDocument(doc.id);
        if (!stopped && docs.has(doc.id)) upsert(document);
      } catch (err) {
        if (stopped) return;
        if ((err as { status?: number }).status === 404) {
          docs.delete(doc.id); // deleted elsewhere
          order.splice(order.indexOf(doc.id), 1);
          draw();
        } else {
          errors.show(`Could not refresh ${doc.name}: ${messageOf(err)}`);
        }
      }
    }
    schedule();
  }

  async function loadPage(): Promise<void> {
    try {
      const page = await api.listDocuments(nextCursor, PAGE_SIZE);
      if (stopped) return;
      nextCursor = page.next_cursor;
      for (const doc of page.items) upsert(doc);
      draw();
    } catch (err) {
      if (!stopped) errors.show(`Could not list the documents: ${messageOf(err)}`);
    }
  }
  more.addEventListener("click", () => void loadPage());

  // The add section: one tab per way of adding a document (a single method needs no tab list).
  const addSection = h("section", { class: "card", "aria-labelledby": "add-title" }, h("h2", { id: "add-title" }, "Add a document"));
  const added = (doc: DocumentItem) => upsert(doc, true);
  if (ADD_METHODS.length === 1) {
    addSection.append(ADD_METHODS[0].render(api, added));
  } else {
    for (const method of ADD_METHODS) {
      addSection.append(h("details", { class: "add-method", open: method === ADD_METHODS[0] }, h("summary", {}, method.title), method.render(api, added)));
    }
  }

  root.append(
    h("h1", {}, "Documents"),
    addSection,
    h(
      "section",
      { class: "card", "aria-labelledby": "list-title" },
      h("h2", { id: "list-title" }, "Your documents"),
      errors.el,
      empty,
      table,
      more,
    ),
  );
  // A file dropped beside the drop zone would make the browser leave the console to show it: on this
  // screen such drops do nothing (the zone takes its own before they reach the window).
  const ignoreFileDrop = (event: DragEvent) => {
    if (event.dataTransfer?.types.includes("Files")) event.preventDefault();
  };
  window.addEventListener("dragover", ignoreFileDrop);
  window.addEventListener("drop", ignoreFileDrop);

  draw();
  void loadPage().then(() => {
    if (ctx.params[0] && !stopped) void reveal(ctx.params[0]);
  });
  return () => {
    window.removeEventListener("dragover", ignoreFileDrop);
    window.removeEventListener("drop", ignoreFileDrop);
    stopped = true;
    if (timer !== undefined) window.clearTimeout(timer);
  };
}

export const documentsScreen: Screen = { id: "documents", title: "Documents", render };
