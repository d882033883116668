// The dashboard's shell: sign-in, the page router (#/live, #/queue,
// #/upgrade/ID, #/ledger, #/scan, #/agent), one server-sent event stream
// shared by the pages, the live release's health, keyboard shortcuts.

import * as api from "./api.js";
import { livePage, queuePage, agentPage } from "./pages.js";
import { upgradePage } from "./upgrade.js";
import { ledgerPage } from "./charts.js";
import { scanPage } from "./scan.js";

const pages = { live: livePage, queue: queuePage, upgrade: upgradePage, ledger: ledgerPage, scan: scanPage, agent: agentPage };

// Every pipeline event, to whichever page listens.
const listeners = new Set();
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
let source = null;
function connectEvents() {
  if (source) return;
  source = new EventSource("/events");
  const kinds = ["upgrade_created", "state_changed", "step_begin", "step_end", "gate_started", "gate_output", "gate_finished", "message", "lagged"];
  for (const k of kinds) {
    source.addEventListener(k, (e) => {
      let data = {};
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      data.type = data.type || k;
      for (const fn of listeners) fn(data);
    });
  }
  source.addEventListener("ready", () => document.body.setAttribute("data-events", "ready"));
  source.onerror = () => document.body.setAttribute("data-events", "reconnecting");
}

let current = null; // { name, cleanup }
let keyHandler = null;
export function setKeys(fn) {
  keyHandler = fn;
}

async function route() {
  if (!api.signedIn()) return;
  const [, name = "live", arg] = (location.hash.replace(/^#\/?/, "") || "live").match(/^([a-z]+)\/?(.*)$/) || [];
  const page = pages[name] ? name : "live";
  if (current && current.cleanup) current.cleanup();
  keyHandler = null;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page || (page === "upgrade" && a.dataset.page === "queue"));
  const view = document.getElementById("view");
  api.fill(view, api.h("p.muted", {}, "Loading…"));
  view.dataset.page = page;
  view.removeAttribute("data-ready");
  try {
    const cleanup = await pages[page](view, decodeURIComponent(arg || ""));
    current = { name: page, cleanup };
  } catch (e) {
    api.fill(view, api.h("div.card.error", {}, h2("Could not show this page"), api.h("p", {}, e.message)));
    current = null;
  }
  view.setAttribute("data-ready", "1");
}
const h2 = (t) => api.h("h2", {}, t);

async function health() {
  const el = document.getElementById("health");
  try {
    const s = await api.get("/health");
    el.textContent = s.status === "ok" ? (s.in_watch_window ? "watching" : "live ok") : "degraded";
    el.className = "pill " + (s.status === "ok" ? (s.in_watch_window ? "warn" : "ok") : "bad");
    el.title = "live commit " + (s.live_commit || "?").slice(0, 10);
  } catch {
    el.textContent = "unreachable";
    el.className = "pill bad";
  }
}

function showSignIn(message) {
  document.getElementById("sign-in").hidden = false;
  document.getElementById("sign-out").hidden = true;
  api.fill(document.getElementById("view"));
  const err = document.getElementById("sign-in-error");
  err.textContent = message || "";
  document.getElementById("secret").focus();
}

async function signedIn() {
  document.getElementById("sign-in").hidden = true;
  document.getElementById("sign-out").hidden = false;
  connectEvents();
  try {
    const st = await api.get("/v1/status");
    document.getElementById("target-name").textContent = st.target || "";
  } catch {
    /* the header name is a nicety */
  }
  await route();
}

async function boot() {
  document.getElementById("sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = document.getElementById("secret");
    const err = document.getElementById("sign-in-error");
    err.textContent = "";
    try {
      await api.signIn(input.value);
      input.value = "";
      await signedIn();
    } catch (x) {
      err.textContent =
        x.code === "bad_signature"
          ? "Wrong secret: the server refused the signature. Check $GRAFT_API_SECRET (or .graft/api-secret) of this graft run."
          : x.message;
    }
  });
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api.signOut();
    if (source) source.close();
    source = null;
    showSignIn("Signed out.");
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", (e) => {
    if (e.target.closest && e.target.closest("input, textarea, select, [contenteditable]")) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const nav = { g: "live", q: "queue", l: "ledger", s: "scan" }[e.key];
    if (keyHandler && keyHandler(e)) {
      e.preventDefault();
    } else if (nav && !e.shiftKey) {
      location.hash = "#/" + nav;
    }
  });
  health();
  setInterval(health, 3000);

  // A one-time login link: the token is in the fragment, never sent to
  // the server in a URL; it is used once and dropped from the address.
  const login = /(?:^#|&)login=([0-9a-f]+)/.exec(location.hash);
  if (login) {
    history.replaceState(null, "", location.pathname + "#/live");
    try {
      await api.signInWithLink(login[1]);
      return signedIn();
    } catch (x) {
      return showSignIn(x.message);
    }
  }
  if (await api.restore()) return signedIn();
  showSignIn();
}

boot();
