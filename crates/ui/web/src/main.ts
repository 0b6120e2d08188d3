// The dashboard's shell: loads where the public APIs are (/api/config), draws the header and
// navigation, and mounts the view the URL's hash names, cancelling the previous view's work.

import "./app.css";
import { isAbort, loadConfig } from "./api";
import { currentSession, LoginRequired, logIn, logOut } from "./auth";
import { clear, errorText, h } from "./dom";
import { currentRoute, href } from "./router";
import { applyTheme, currentTheme, followSystemTheme, toggleTheme } from "./theme";
import type { View } from "./view";
import { consoleView } from "./views/console";
import { dashboardsView } from "./views/dashboards";
import { discoverView } from "./views/discover";
import { ledgersView } from "./views/ledgers";
import { manageView } from "./views/manage";
import { pipelineView } from "./views/pipeline";
import { visualizeView } from "./views/visualize";

interface Entry {
  id: string;
  view: View;
}

const ENTRIES: Entry[] = [
  { id: "discover", view: discoverView },
  { id: "visualize", view: visualizeView },
  { id: "dashboards", view: dashboardsView },
  { id: "console", view: consoleView },
  { id: "ledgers", view: ledgersView },
  { id: "pipeline", view: pipelineView },
  { id: "saved-objects", view: manageView },
];
const DEFAULT_VIEW = "console";

let mounted: AbortController | null = null;

function render(main: HTMLElement, nav: HTMLElement): void {
  const route = currentRoute();
  const entry = ENTRIES.find((candidate) => candidate.id === route.view);
  if (!entry) {
    location.replace(href(DEFAULT_VIEW));
    return;
  }
  mounted?.abort();
  mounted = new AbortController();
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset["view"] === entry.id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${entry.view.title} · Sluice`;
  clear(main);
  main.appendChild(h("h1", { class: "view-title" }, entry.view.title));
  try {
    entry.view.mount(main, route.params, mounted.signal);
  } catch (error) {
    main.appendChild(h("p", { class: "error", role: "alert" }, errorText(error)));
  }
}

async function start(): Promise<void> {
  applyTheme();
  followSystemTheme();
  const nav = h("nav", { class: "nav", "aria-label": "Views" },
    ...ENTRIES.map((entry) => h("a", { href: href(entry.id), "data-view": entry.id }, entry.view.title)));
  const themeButton = h("button", { type: "button", class: "theme-toggle", "aria-label": "Toggle dark theme", "aria-pressed": String(currentTheme() === "dark") }, "◐");
  themeButton.addEventListener("click", () => {
    themeButton.setAttribute("aria-pressed", String(toggleTheme() === "dark"));
  });
  const version = h("span", { class: "version" });
  const main = h("main", { id: "main", class: "view" });
  document.body.append(
    h("a", { class: "skip-link", href: "#main" }, "Skip to content"),
    h("header", { class: "header" }, h("span", { class: "brand" }, "Sluice"), nav, version, themeButton),
    main,
  );
  // The skip link must not change the route: it focuses the view instead.
  document.querySelector(".skip-link")?.addEventListener("click", (event) => {
    event.preventDefault();
    main.setAttribute("tabindex", "-1");
    main.focus();
  });
  try {
    const config = await loadConfig();
    version.textContent = `v${config.version}`;
  } catch (error) {
    if (error instanceof LoginRequired) {
      showLogin(main);
    } else if (!isAbort(error)) {
      main.appendChild(h("p", { class: "error", role: "alert" }, `the dashboard's configuration did not load: ${errorText(error)}`));
    }
    return;
  }
  const session = currentSession();
  if (session) {
    const logOutButton = h("button", { type: "button", class: "log-out" }, `Log out ${session.username}`);
    logOutButton.addEventListener("click", () => {
      void logOut().then(() => location.reload());
    });
    themeButton.before(logOutButton);
  }
  window.addEventListener("hashchange", () => render(main, nav));
  render(main, nav);
}

/** The login form of a node started with `--security`: on success the dashboard starts over. */
function showLogin(main: HTMLElement): void {
  document.title = "Log in · Sluice";
  const username = h("input", { id: "login-username", name: "username", autocomplete: "username", required: "" }) as HTMLInputElement;
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: "" }) as HTMLInputElement;
  const status = h("p", { class: "status", role: "status" });
  const form = h("form", { class: "login", "aria-label": "Log in" },
    h("label", { for: "login-username" }, "User"), username,
    h("label", { for: "login-password" }, "Password"), password,
    h("button", { type: "submit" }, "Log in"),
    status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    status.textContent = "logging in…";
    logIn(username.value, password.value).then(
      () => location.reload(),
      (error: unknown) => {
        status.textContent = errorText(error);
        password.value = "";
        password.focus();
      },
    );
  });
  main.append(h("h1", { class: "view-title" }, "Log in"), form);
  username.focus();
}

void start();
