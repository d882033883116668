// The scan page: the latest scan's findings — complexity hot spots,
// import cycles drawn as a graph, duplicated code side by side — each
// with a button that queues it as an upgrade; and a button to scan now.

import { h, s, get, post, when, toast, fill } from "./api.js";
import { highlight, langOf } from "./highlight.js";

export async function scanPage(view) {
  async function render() {
    const scans = (await get("/v1/scans?limit=1")).scans;
    const start = h("button#start-scan.primary", {}, "Start a scan");
    start.addEventListener("click", async () => {
      start.disabled = true;
      start.textContent = "Scanning…";
      try {
        const r = await post("/v1/scans", {});
        toast(`Scan ${r.scan.id}: ${r.suggestions.length} suggestions.`);
        await render();
      } catch (e) {
        toast("Scan failed: " + e.message, "bad");
        start.disabled = false;
        start.textContent = "Start a scan";
      }
    });
    if (!scans.length) {
      fill(view, h("section.card", {}, h("h2", {}, "Scan"), h("p.muted", {}, "No scan yet."), start));
      return;
    }
    const { scan, suggestions } = await get("/v1/scans/" + scans[0].id);
    const by = (kinds) => suggestions.filter((x) => kinds.includes(x.kind));
    const sm = scan.summary || {};
    fill(view, 
      h("section.card#scan-summary", { "data-scan": scan.id },
        h("h2", {}, "Latest scan ", h("span.muted.small", {}, `${scan.id} · ${when(scan.created_at)} · ${scan.duration_ms} ms`)),
        h("div.figures", {}, Object.entries(sm).filter(([, v]) => typeof v === "number").slice(0, 8).map(([k, v]) => h("div.figure", {}, h("span.value", {}, String(v)), h("span.label", {}, k.replace(/_/g, " "))))),
        start),
      section("scan-hotspots", "Complexity hot spots", by(["complex_function", "god_class", "god_module", "high_coupling"]), hotspot),
      section("scan-cycles", "Import cycles", by(["circular_import"]), cycle),
      section("scan-duplicates", "Duplicated code", by(["duplicate"]), duplicate),
    );
  }
  await render();
}

function section(id, title, list, body) {
  return h("section.card", { id }, h("h2", {}, title, " ", h("span.count", {}, String(list.length))),
    list.length ? list.map((x) => suggestionCard(x, body(x))) : h("p.muted", {}, "None found."));
}

function suggestionCard(x, body) {
  const queue = x.upgrade_id
    ? h("a.button.small", { href: "#/upgrade/" + x.upgrade_id }, "Upgrade " + x.upgrade_id)
    : h("button.small.primary", { "data-action": "queue-suggestion" }, "Queue as upgrade");
  if (!x.upgrade_id) {
    queue.addEventListener("click", async () => {
      queue.disabled = true;
      try {
        const r = await post("/v1/upgrades", { suggestion: x.id, requested_by: "dashboard" });
        toast(`Queued ${r.id} (${r.state.replace(/_/g, " ")}).`);
        queue.replaceWith(h("a.button.small", { href: "#/upgrade/" + r.id }, "Upgrade " + r.id));
      } catch (e) {
        toast("Could not queue it: " + e.message, "bad");
        queue.disabled = false;
      }
    });
  }
  return h("article.suggestion", { "data-suggestion": x.id, "data-kind": x.kind },
    h("header", {}, h("b", {}, x.title), " ", h("span.risk", { class: "risk r-" + x.risk }, x.risk), h("span.muted.small", {}, ` priority ${x.priority}`), queue),
    body,
    h("details", {}, h("summary.small", {}, "Instruction for the provider"), h("p.small", {}, x.instruction)));
}

function meter(value, limit, label) {
  const f = Math.min(value / Math.max(limit * 4, 1), 1);
  const fill = h("i", { class: f > 0.5 ? "high" : f > 0.25 ? "medium" : "low" });
  // Through the CSSOM: the Content-Security-Policy refuses style attributes.
  fill.style.width = (f * 100).toFixed(1) + "%";
  return h("div.meter", { title: `${label} ${value} (limit ${limit})` }, h("span.meter-label", {}, `${label} ${value} / ${limit}`), h("span.meter-bar", {}, fill));
}

function hotspot(x) {
  const d = x.detail || {};
  const where = h("p.small", {}, h("code", {}, `${d.path || d.module || x.files[0] || ""}${d.line ? ":" + d.line : ""}`));
  const lim = d.limits || {};
  const meters = [];
  for (const k of ["cyclomatic", "cognitive", "methods", "lines", "definitions", "fan_out"]) {
    if (d[k] != null && lim[k] != null) meters.push(meter(d[k], lim[k], k.replace("_", " ")));
  }
  return h("div", {}, where, meters);
}

/** The cycle as a graph: modules on a circle, an arrow per import. */
function cycle(x) {
  const d = x.detail || {};
  const nodes = d.modules || [];
  const path = d.cycle || [];
  const W = 420, H = 260, R = Math.min(95, 30 + nodes.length * 12), cx = W / 2, cy = H / 2;
  const pos = new Map(nodes.map((m, i) => [m, [cx + R * Math.cos((2 * Math.PI * i) / nodes.length - Math.PI / 2), cy + R * Math.sin((2 * Math.PI * i) / nodes.length - Math.PI / 2)]]));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "graph", "data-chart": "cycle", role: "img", "aria-label": "import cycle" });
  const defs = s("defs", {}, s("marker", { id: "arrow-" + x.id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" })));
  svg.append(defs);
  for (let i = 0; i + 1 < path.length; i++) {
    const a = pos.get(path[i]), b = pos.get(path[i + 1]);
    if (!a || !b) continue;
    const dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy) || 1, pad = 16;
    const line = s("line", { x1: a[0] + (dx / len) * pad, y1: a[1] + (dy / len) * pad, x2: b[0] - (dx / len) * pad, y2: b[1] - (dy / len) * pad, class: "edge", "marker-end": `url(#arrow-${x.id})` });
    line.append(s("title", {}, `${path[i]} imports ${path[i + 1]}` + (d.lines && d.lines[i] ? ` (line ${d.lines[i]})` : "")));
    svg.append(line);
  }
  for (const [m, [x0, y0]] of pos) {
    svg.append(s("circle", { cx: x0, cy: y0, r: 12, class: "node", "data-module": m }));
    svg.append(s("text", { x: x0, y: y0 + (y0 < cy ? -18 : 26), class: "node-label", "text-anchor": "middle" }, m.length > 28 ? "…" + m.slice(-27) : m));
  }
  return h("div.scroll", {}, svg);
}

/** The first two copies side by side, read from the working tree. */
function duplicate(x) {
  const frags = ((x.detail || {}).fragments || []).slice(0, 2);
  const box = h("div.side-by-side", {}, frags.map((f) => h("div.fragment", { "data-path": f.path }, h("p.small", {}, h("code", {}, `${f.path}:${f.start_line}-${f.end_line}`)), h("pre.code", {}, "…"))));
  frags.forEach(async (f, i) => {
    const pre = box.children[i].querySelector("pre");
    try {
      const r = await get(`/v1/files?path=${encodeURIComponent(f.path)}&start=${f.start_line}&count=${Math.min(f.end_line - f.start_line + 1, 200)}`);
      const lang = langOf(f.path);
      fill(pre, ...r.lines.map((line, k) => h("div.codeline", {}, h("span.ln", {}, String(r.start + k)), h("code", {}, highlight(line, lang)))));
    } catch (e) {
      pre.textContent = e.message;
    }
  });
  return box;
}
