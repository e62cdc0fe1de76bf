import type { Role, User } from "../api";
import type { AppContext, Screen } from "../context";
import { announce, clear, ErrorBox, field, formatTime, h } from "../dom";
import { messageOf } from "../errors";

// Admins only: the API keeps the list of members (a directory of e-mail addresses) to them. API keys
// have their own admin screen next to this one (views/apiKeys.ts).
function render(ctx: AppContext, root: HTMLElement): () => void {
  let stopped = false;
  const listErrors = new ErrorBox();
  const formErrors = new ErrorBox();
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "members" },
    h("caption", { class: "visually-hidden" }, "Members of the organisation"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "E-mail"), h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, "Since"), h("th", { scope: "col" }, "Actions"))),
    tbody,
  );

  function draw(users: User[]): void {
    clear(tbody);
    for (const user of users) {
      const actions = h("td");
      if (user.id === ctx.user.id) {
        actions.append(h("span", { class: "muted" }, "You"));
      } else {
        const remove = h("button", { type: "button", class: "danger", "aria-label": `Remove ${user.email}` }, "Remove");
        remove.addEventListener("click", async () => {
          if (!window.confirm(`Remove ${user.email} from ${ctx.org.name}?`)) return;
          listErrors.hide();
          remove.disabled = true;
          try {
            await ctx.api.deleteUser(user.id);
            announce(`${user.email} removed.`);
            await load();
          } catch (err) {
            listErrors.show(`${user.email}: ${messageOf(err)}`);
            remove.disabled = false;
          }
        });
        actions.append(remove);
      }
      tbody.append(
        h("tr", {}, h("th", { scope: "row" }, user.email), h("td", {}, user.role), h("td", {}, formatTime(user.created_at)), actions),
      );
    }
  }

  async function load(): Promise<void> {
    try {
      const { items } = await ctx.api.listUsers();
      if (!stopped) draw(items);
    } catch (err) {
      if (!stopped) listErrors.show(`Could not list the members: ${messageOf(err)}`);
    }
  }

  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "off" });
  const password = h("input", { type: "password", name: "password", required: true, minlength: 8, maxlength: 72, autocomplete: "new-password" });
  const role = h("select", { name: "role" }, h("option", { value: "member" }, "Member"), h("option", { value: "admin" }, "Administrator"));
  const submit = h("button", { type: "submit" }, "Add member");
  const form = h(
    "form",
    { class: "stack", "aria-label": "Add a member" },
    field("E-mail", email),
    field("Initial password", password, "8 to 72 characters; share it with the person privately."),
    field("Role", role, "Administrators manage members and can delete documents."),
    formErrors.el,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formErrors.hide();
    submit.disabled = true;
    try {
      const { user } = await ctx.api.createUser(email.value.trim(), password.value, role.value as Role);
      form.reset();
      announce(`${user.email} added as ${user.role}.`);
      await load();
      email.focus();
    } catch (err) {
      formErrors.show(messageOf(err));
    } finally {
      submit.disabled = false;
    }
  });

  root.append(
    h("h1", {}, "Members"),
    h("section", { class: "card", "aria-labelledby": "members-title" }, h("h2", { id: "members-title" }, `Members of ${ctx.org.name}`), listErrors.el, table),
    h("section", { class: "card", "aria-labelledby": "add-member-title" }, h("h2", { id: "add-member-title" }, "Add a member"), form),
  );
  void load();
  return () => {
    stopped = true;
  };
}

export const membersScreen: Screen = { id: "members", title: "Members", adminOnly: true, render };
