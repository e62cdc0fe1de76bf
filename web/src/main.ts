import { Api, ApiError, type Session } from "./api";
import { loadConfig } from "./config";
import type { AppContext, Screen } from "./context";
import { announce, clear, h } from "./dom";
import { messageOf } from "./errors";
import { SCREENS } from "./screens";
import { renderSignIn, renderSignUp } from "./views/auth";

// The token lives in sessionStorage: it survives a reload of the tab but not the tab itself, and no
// other tab or later visitor of a shared machine inherits it.
const SESSION_KEY = "rag-console-session";

const main = document.getElementById("main") as HTMLElement;
const topBar = document.getElementById("top-bar") as HTMLElement;

let api: Api;
let session: Session | null = null;
let cleanup: (() => void) | void = undefined;
let notice: string | null = null;

function saveSession(value: Session | null): void {
  session = value;
  api.setToken(value?.token ?? null);
  if (value) sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
  else sessionStorage.removeItem(SESSION_KEY);
}

function restoreSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    const parsed = raw ? (JSON.parse(raw) as Session) : null;
    return parsed && typeof parsed.token === "string" && parsed.user && parsed.org ? parsed : null;
  } catch {
    return null;
  }
}

function visibleScreens(): Screen[] {
  const admin = session?.user.role === "admin";
  return SCREENS.filter((screen) => admin || !screen.adminOnly);
}

function currentRoute(): string {
  return window.location.hash.replace(/^#\/?/, "") || "";
}

function go(route: string): void {
  if (currentRoute() === route) render();
  else window.location.hash = `#/${route}`;
}

function signOut(reason?: string): void {
  saveSession(null);
  notice = reason ?? null;
  go("signin");
}

function onSignedIn(value: Session): void {
  saveSession(value);
  notice = null;
  go(visibleScreens()[0].id);
}

function renderTopBar(active: string): void {
  clear(topBar);
  const brand = h("span", { class: "brand" }, "RAG console");
  if (!session) {
    topBar.append(brand);
    return;
  }
  const nav = h("nav", { "aria-label": "Main" });
  const list = h("ul");
  for (const screen of visibleScreens()) {
    list.append(
      h(
        "li",
        {},
        h("a", { href: `#/${screen.id}`, "aria-current": screen.id === active ? "page" : null }, screen.title),
      ),
    );
  }
  nav.append(list);
  const who = h(
    "div",
    { class: "who" },
    h("span", { class: "org", title: "Organisation" }, session.org.name),
    h("span", { class: "email" }, `${session.user.email} (${session.user.role})`),
    h("button", { type: "button", class: "secondary", onclick: () => signOut("You are signed out.") }, "Sign out"),
  );
  topBar.append(brand, nav, who);
}

function render(): void {
  if (cleanup) cleanup();
  cleanup = undefined;
  clear(main);
  const route = currentRoute();
  if (!session) {
    renderTopBar("");
    const message = notice;
    notice = null;
    if (route === "signup") renderSignUp(main, api, onSignedIn, () => go("signin"));
    else renderSignIn(main, api, onSignedIn, () => go("signup"), message);
  } else {
    const screens = visibleScreens();
    const [id, ...params] = route.split("/");
    let screen = screens.find((s) => s.id === id);
    if (!screen) {
      screen = screens[0];
      params.length = 0;
      history.replaceState(null, "", `#/${screen.id}`);
    }
    renderTopBar(screen.id);
    document.title = `${screen.title} · RAG console`;
    const ctx: AppContext = {
      api,
      user: session.user,
      org: session.org,
      isAdmin: session.user.role === "admin",
      params: params.map((p) => decodeURIComponent(p)).filter(Boolean),
      navigate: (to: string, quiet = false) => {
        if (quiet) history.replaceState(null, "", `#/${to}`);
        else go(to);
      },
      signOut,
    };
    cleanup = screen.render(ctx, main);
  }
  // A new screen: move focus to its heading, as a page load would, and say where we are.
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
    announce(heading.textContent ?? "");
  }
}

async function start(): Promise<void> {
  const config = await loadConfig();
  api = new Api(config);
  const restored = restoreSession();
  if (restored) {
    api.setToken(restored.token);
    try {
      // The role may have changed since the token was stored: the server's answer wins.
      const me = await api.me();
      saveSession({ token: restored.token, user: me.user, org: me.org });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        notice = "Your session has ended: sign in again.";
        saveSession(null);
      } else {
        saveSession(restored); // the platform cannot be reached now: the screens say so as they load
      }
    }
  }
  // From here on, a token the API refuses (expired, user removed) ends the session wherever it happens.
  api.onUnauthorized = () => signOut("Your session has ended: sign in again.");
  window.addEventListener("hashchange", render);
  render();
}

start().catch((err) => {
  clear(main);
  main.append(h("div", { class: "error-box", role: "alert" }, `The console could not start: ${messageOf(err)}`));
});
