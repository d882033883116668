// Talking to the API of this graft run: reads, changing requests with the
// session's CSRF token, sign-in (a signed POST /v1/session, or a one-time
// login token), and a small DOM builder every page uses.

import { hmacHex, sha256Hex } from "./hmac.js";

let csrf = null;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function answer(resp) {
  const text = await resp.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const e = (body && body.error) || {};
    throw new ApiError(resp.status, e.code || "http_" + resp.status, e.message || text || resp.statusText);
  }
  return body;
}

export async function get(path) {
  return answer(await fetch(path, { headers: { accept: "application/json" }, credentials: "same-origin" }));
}

/** A changing request made with the session (cookie + CSRF token). */
async function send(method, path, body) {
  const headers = { accept: "application/json", "x-csrf-token": csrf || "" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return answer(await fetch(path, init));
}

export const post = (path, body) => send("POST", path, body);

export function signedIn() {
  return csrf !== null;
}

/** Whether the cookie holds a session (after a reload). */
export async function restore() {
  const s = await get("/v1/session");
  csrf = s.signed_in ? s.csrf_token : null;
  return s.signed_in;
}

/** Sign in with the shared secret: it signs one request, here. */
export async function signIn(secret) {
  const c = await get("/challenge");
  const ts = String(Math.floor(Date.now() / 1000));
  const path = "/v1/session";
  const text = ["POST", path, ts, c.challenge, sha256Hex("")].join("\n");
  const resp = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "x-timestamp": ts, "x-challenge": c.challenge, "x-signature": hmacHex(secret, text) },
  });
  const s = await answer(resp);
  csrf = s.csrf_token;
}

export async function signInWithLink(token) {
  const s = await answer(
    await fetch("/v1/session/link", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    }),
  );
  csrf = s.csrf_token;
}

export async function signOut() {
  await send("DELETE", "/v1/session");
  csrf = null;
}

/** h("div.card#x", {attrs}, children...): elements with text only as text. */
export function h(spec, attrs, ...children) {
  const m = /^([a-z0-9]+)((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElementNS(
    m[1] === "svg" || attrs?.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml",
    m[1],
  );
  for (const part of m[2].match(/[.#][\w-]+/g) || []) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "svg" || v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace an element's children; like h(), skips null and flattens lists. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return h(tag, { ...attrs, svg: true }, ...children);
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function toast(message, kind = "ok") {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.className = "toast " + kind;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 5000);
}

/** The states an upgrade never leaves. */
export const TERMINAL = new Set(["promoted", "rolled_back", "failed", "cancelled"]);

export function stateBadge(state) {
  return h("span.state", { "data-state": state, class: "state st-" + state }, String(state || "").replace(/_/g, " "));
}
