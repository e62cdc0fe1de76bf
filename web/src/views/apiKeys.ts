import type { ApiKey, KeyScope } from "../api";
import type { AppContext, Screen } from "../context";
import { announce, clear, ErrorBox, field, formatTime, h } from "../dom";
import { messageOf } from "../errors";
import { expiryFromLocal, isExpired, SCOPES } from "../keys";

// Administrators only (the API refuses the others). A key's secret is in the answer to its creation and
// nowhere else: it is shown once, in a panel that is emptied when dismissed or when the screen is left,
// and is never written to storage.
function render(ctx: AppContext, root: HTMLElement): () => void {
  let stopped = false;
  const listErrors = new ErrorBox();
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "api-keys" },
    h("caption", { class: "visually-hidden" }, "API keys of the organisation"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...["Name", "Prefix", "Scope", "Created", "Last used", "Expires", "Actions"].map((label) => h("th", { scope: "col" }, label)),
      ),
    ),
    tbody,
  );
  const empty = h("p", { class: "empty", hidden: true }, "No API keys: create one below.");

  // --- the secret, shown once -----------------------------------------------------------------------
  let shownKeyId: string | null = null;
  const secretTitle = h("h2", { id: "secret-title", tabindex: -1 }, "Copy the secret now");
  const secret = h("input", { type: "text", name: "secret", readonly: true, spellcheck: "false", autocomplete: "off", class: "secret" });
  const copy = h("button", { type: "button" }, "Copy");
  const copied = h("p", { class: "hint", role: "status" });
  const dismiss = h("button", { type: "button", class: "secondary" }, "I have stored it");
  const secretPanel = h(
    "section",
    { class: "card secret-panel", "aria-labelledby": "secret-title", hidden: true },
    secretTitle,
    h(
      "p",
      { class: "warning" },
      h("strong", {}, "This is the only time the secret is shown. "),
      "The platform keeps only a hash of it: nobody can show it again. Store it where the program reads its secrets; if it is lost, revoke the key and create another.",
    ),
    field("Secret", secret, "Send it as “Authorization: Bearer <secret>”."),
    h("div", { class: "buttons" }, copy, dismiss),
    copied,
  );

  function hideSecret(): void {
    secret.value = "";
    shownKeyId = null;
    copied.textContent = "";
    secretPanel.hidden = true;
  }

  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret.value);
      copied.textContent = "Copied to the clipboard.";
    } catch {
      // No clipboard access (an insecure origin, a refused permission): the text is selected instead.
      secret.focus();
      secret.select();
      copied.textContent = "The browser did not allow copying: the secret is selected, press Ctrl+C (⌘C).";
    }
  });
  dismiss.addEventListener("click", () => {
    hideSecret();
    name.focus();
  });

  // --- the list ---------------------------------------------------------------------------------------
  function draw(keys: ApiKey[]): void {
    clear(tbody);
    const now = new Date();
    for (const key of keys) {
      const revoke = h("button", { type: "button", class: "danger", "aria-label": `Revoke ${key.name}` }, "Revoke");
      revoke.addEventListener("click", () => void revokeKey(key, revoke));
      const expires = key.expires_at
        ? h(
            "td",
            {},
            h("time", { datetime: key.expires_at }, formatTime(key.expires_at)),
            isExpired(key, now) ? h("span", { class: "badge badge-failed expired", "data-expired": "true" }, "Expired") : null,
          )
        : h("td", { class: "muted" }, "Never");
      tbody.append(
        h(
          "tr",
          { "data-key-id": key.id },
          h("th", { scope: "row" }, key.name),
          h("td", {}, h("code", {}, `${key.prefix}…`)),
          h("td", {}, key.scope),
          h("td", {}, h("time", { datetime: key.created_at }, formatTime(key.created_at))),
          key.last_used_at ? h("td", {}, h("time", { datetime: key.last_used_at }, formatTime(key.last_used_at))) : h("td", { class: "muted" }, "Never"),
          expires,
          h("td", {}, revoke),
        ),
      );
    }
    empty.hidden = keys.length > 0;
    table.hidden = keys.length === 0;
  }

  async function load(): Promise<void> {
    try {
      const { items } = await ctx.api.listApiKeys();
      if (!stopped) draw(items);
    } catch (err) {
      if (!stopped) listErrors.show(`Could not list the API keys: ${messageOf(err)}`);
    }
  }

  async function revokeKey(key: ApiKey, button: HTMLButtonElement): Promise<void> {
    const question = `Revoke the key "${key.name}" (${key.prefix}…)? Programs using it are refused from now on. This cannot be undone.`;
    if (!window.confirm(question)) return;
    listErrors.hide();
    button.disabled = true;
    try {
      await ctx.api.revokeApiKey(key.id);
      if (shownKeyId === key.id) hideSecret();
      announce(`API key ${key.name} revoked.`);
      await load();
      name.focus();
    } catch (err) {
      listErrors.show(`${key.name}: ${messageOf(err)}`);
      button.disabled = false;
    }
  }

  // --- creating a key ---------------------------------------------------------------------------------
  const formErrors = new ErrorBox();
  const name = h("input", { type: "text", name: "name", required: true, maxlength: 100, autocomplete: "off", placeholder: "reporting bot" });
  const scope = h("select", { name: "scope" }, ...SCOPES.map((s) => h("option", { value: s.value }, s.label)));
  const expires = h("input", { type: "datetime-local", name: "expires_at" });
  const submit = h("button", { type: "submit" }, "Create key");
  const form = h(
    "form",
    { class: "stack", "aria-label": "Create an API key" },
    field("Name", name, "What the key is for: the program or the person who runs it."),
    field("Scope", scope, "Give a program the narrowest scope that does its job."),
    field("Expires (optional)", expires, "Your local time. Empty: the key works until it is revoked."),
    formErrors.el,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formErrors.hide();
    let expiresAt: string | null;
    try {
      expiresAt = expiryFromLocal(expires.value);
    } catch (err) {
      formErrors.show(messageOf(err));
      expires.focus();
      return;
    }
    submit.disabled = true;
    try {
      const created = await ctx.api.createApiKey(name.value.trim(), scope.value as KeyScope, expiresAt ?? undefined);
      if (stopped) return;
      form.reset();
      shownKeyId = created.api_key.id;
      secretTitle.textContent = `Copy the secret of ${created.api_key.name} now`;
      secret.value = created.secret;
      copied.textContent = "";
      secretPanel.hidden = false;
      await load();
      // The panel's heading takes the focus: it is read out first, the secret and Copy come next.
      secretTitle.focus();
    } catch (err) {
      formErrors.show(messageOf(err));
    } finally {
      submit.disabled = false;
    }
  });

  root.append(
    h("h1", {}, "API keys"),
    h(
      "p",
      { class: "lede" },
      "Programs use an API key instead of a person's password: as a bearer token on the API, within its scope. Keys belong to the organisation and keep working when the person who made one leaves.",
    ),
    secretPanel,
    h("section", { class: "card", "aria-labelledby": "keys-title" }, h("h2", { id: "keys-title" }, `API keys of ${ctx.org.name}`), listErrors.el, empty, table),
    h("section", { class: "card", "aria-labelledby": "create-key-title" }, h("h2", { id: "create-key-title" }, "Create a key"), form),
  );
  table.hidden = true;
  void load();
  return () => {
    stopped = true;
    hideSecret();
  };
}

export const apiKeysScreen: Screen = { id: "api-keys", title: "API keys", adminOnly: true, render };
