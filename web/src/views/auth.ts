import type { Api, Session } from "../api";
import { append, ErrorBox, field, h } from "../dom";
import { messageOf } from "../errors";

// Mirrors the API's rule (8 to 72 characters) so that a person learns it before sending; the API still
// decides, and its 422 message is shown as it is.
const PASSWORD_HINT = "8 to 72 characters.";

function submitting(form: HTMLFormElement, busy: boolean, label: string): void {
  const button = form.querySelector<HTMLButtonElement>("button[type=submit]");
  if (button) {
    button.disabled = busy;
    button.textContent = label;
  }
  form.setAttribute("aria-busy", String(busy));
}

export function renderSignIn(
  root: HTMLElement,
  api: Api,
  done: (session: Session) => void,
  toSignUp: () => void,
  notice: string | null,
): void {
  const errors = new ErrorBox();
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "signin-title" },
    field("E-mail", email),
    field("Password", password),
    errors.el,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.hide();
    submitting(form, true, "Signing in…");
    try {
      done(await api.login(email.value.trim(), password.value));
    } catch (err) {
      errors.show(messageOf(err));
      submitting(form, false, "Sign in");
      password.focus();
    }
  });
  append(
    root,
    h("h1", { id: "signin-title" }, "Sign in"),
    notice ? h("p", { class: "notice", role: "status" }, notice) : null,
    form,
    h(
      "p",
      {},
      "New here? ",
      h("a", { href: "#/signup", onclick: (e: Event) => (e.preventDefault(), toSignUp()) }, "Create an organisation"),
    ),
  );
}

export function renderSignUp(root: HTMLElement, api: Api, done: (session: Session) => void, toSignIn: () => void): void {
  const errors = new ErrorBox();
  const org = h("input", { type: "text", name: "org_name", autocomplete: "organization", required: true, maxlength: 200 });
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: "new-password",
    required: true,
    minlength: 8,
    maxlength: 72,
  });
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "signup-title" },
    field("Organisation name", org),
    field("Your e-mail", email, "You become the organisation's first administrator."),
    field("Password", password, PASSWORD_HINT),
    errors.el,
    h("button", { type: "submit" }, "Create organisation"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.hide();
    submitting(form, true, "Creating…");
    try {
      done(await api.register(org.value.trim(), email.value.trim(), password.value));
    } catch (err) {
      errors.show(messageOf(err));
      submitting(form, false, "Create organisation");
      org.focus();
    }
  });
  root.append(
    h("h1", { id: "signup-title" }, "Create an organisation"),
    form,
    h(
      "p",
      {},
      "Already registered? ",
      h("a", { href: "#/signin", onclick: (e: Event) => (e.preventDefault(), toSignIn()) }, "Sign in"),
    ),
  );
}
