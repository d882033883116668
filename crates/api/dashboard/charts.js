// The ledger page: figures as charts drawn in SVG here (no chart library,
// no network): success rate over time, upgrades by kind and outcome, gate
// durations, rollbacks and their causes, cost per upgrade.

import { h, s, get, when, fill } from "./api.js";
import { onEvent } from "./app.js";

const OUTCOMES = ["promoted", "failed", "rolled_back", "cancelled"];

/** Vertical stacked bars: [{label, title, parts: [{value, cls, title}]}]; optional line (0..1 per bar). */
function bars(name, items, { unit = "", line = null, height = 180 } = {}) {
  const W = Math.max(480, items.length * 38 + 60), H = height, left = 40, bottom = 34, top = 10;
  const max = Math.max(1e-9, ...items.map((b) => b.parts.reduce((a, p) => a + p.value, 0)));
  const bw = Math.min(28, (W - left - 10) / Math.max(items.length, 1) - 8);
  const y = (v) => H - bottom - (v / max) * (H - bottom - top);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", "data-chart": name, role: "img", "aria-label": name.replace(/-/g, " ") });
  svg.append(s("line", { x1: left, y1: H - bottom, x2: W - 5, y2: H - bottom, class: "axis" }));
  for (const f of [0.5, 1]) {
    svg.append(s("text", { x: left - 4, y: y(max * f) + 4, class: "tick", "text-anchor": "end" }, fmt(max * f) + unit));
    svg.append(s("line", { x1: left, y1: y(max * f), x2: W - 5, y2: y(max * f), class: "grid" }));
  }
  const points = [];
  items.forEach((b, i) => {
    const x = left + 8 + i * (bw + 8);
    let acc = 0;
    for (const p of b.parts) {
      if (!p.value) continue;
      const r = s("rect", { x, y: y(acc + p.value), width: bw, height: Math.max(1, y(acc) - y(acc + p.value)), class: "bar " + (p.cls || ""), ...(p.data || {}) });
      r.append(s("title", {}, p.title || `${b.label}: ${fmt(p.value)}${unit}`));
      svg.append(r);
      acc += p.value;
    }
    svg.append(s("text", { x: x + bw / 2, y: H - bottom + 14, class: "label", "text-anchor": "middle" }, b.label.length > 10 ? b.label.slice(0, 9) + "…" : b.label));
    if (line && line[i] != null) points.push([x + bw / 2, H - bottom - line[i] * (H - bottom - top)]);
  });
  if (points.length) {
    svg.append(s("polyline", { points: points.map((p) => p.join(",")).join(" "), class: "rate" }));
    for (const [px, py] of points) svg.append(s("circle", { cx: px, cy: py, r: 3, class: "rate-dot" }));
  }
  return svg;
}

function fmt(v) {
  if (v >= 100) return Math.round(v).toString();
  if (v >= 1) return (Math.round(v * 10) / 10).toString();
  return v > 0 ? Number(v.toPrecision(2)).toString() : "0";
}

const legend = (pairs) => h("p.legend", {}, pairs.map(([cls, text]) => h("span", {}, h("i", { class: "sw " + cls }), text)));

function card(id, title, chart, extra) {
  return h("section.card.chart-card", { id }, h("h2", {}, title), h("div.scroll", {}, chart), extra || null);
}

export async function ledgerPage(view) {
  async function render() {
    const [stats, series] = await Promise.all([get("/v1/ledger?recent=0"), get("/v1/ledger/series?limit=500")]);
    const rate = stats.success_rate == null ? "—" : Math.round(stats.success_rate * 100) + " %";
    const totalCost = series.cost.reduce((a, c) => a + c.cost_usd, 0);
    const summary = h("section.card#ledger-summary", {}, h("div.figures", {},
      fig("Upgrades", stats.total), fig("Success rate", rate), fig("Rolled back", stats.rollbacks), fig("Generation cost", "$" + totalCost.toFixed(4))));

    const days = series.by_day.map((d) => ({
      label: d.day.slice(5),
      parts: OUTCOMES.map((o) => ({ value: d[o], cls: "o-" + o, title: `${d.day} ${o.replace("_", " ")}: ${d[o]}` })),
    }));
    const rates = series.by_day.map((d) => {
      const n = d.promoted + d.failed + d.rolled_back;
      return n ? d.promoted / n : null;
    });
    const outcomeLegend = legend(OUTCOMES.map((o) => ["o-" + o, o.replace("_", " ")]).concat([["rate", "success rate"]]));

    const kinds = series.by_kind.map((k) => ({
      label: k.kind,
      parts: Object.entries(k.by_state).map(([st, n]) => ({ value: n, cls: "o-" + st, title: `${k.kind} ${st.replace(/_/g, " ")}: ${n}` })),
    }));

    const gateCharts = series.gates.map((g) => h("div.gate-chart", {}, h("h3", {}, g.name),
      bars("gate-" + g.name, g.runs.slice(-40).map((r) => ({ label: r.upgrade_id.slice(-6), parts: [{ value: r.duration_ms / 1000, cls: "g-" + r.status, title: `${r.upgrade_id}: ${(r.duration_ms / 1000).toFixed(2)} s, ${r.status}` }] })), { unit: " s", height: 140 })));

    const causes = new Map();
    for (const r of series.rollbacks) causes.set(r.cause, (causes.get(r.cause) || 0) + 1);
    const rollbackChart = bars("rollbacks", [...causes].map(([cause, n]) => ({
      label: cause,
      parts: [{ value: n, cls: "o-rolled_back", title: `${cause}: ${n}`, data: { "data-cause": cause, "data-count": n } }],
    })));
    const rollbackList = series.rollbacks.length
      ? h("ol.rollback-list", {}, series.rollbacks.slice().reverse().slice(0, 20).map((r) => h("li", { "data-upgrade": r.upgrade_id },
        h("a", { href: "#/upgrade/" + r.upgrade_id }, r.upgrade_id), ` · ${r.cause} · by ${r.requested_by} · ${when(r.at)}`)))
      : h("p.muted", {}, "No rollbacks.");

    const cost = bars("cost", series.cost.slice(-40).map((c) => ({ label: c.upgrade_id.slice(-6), parts: [{ value: c.cost_usd, cls: "cost", title: `${c.upgrade_id}: $${c.cost_usd.toFixed(4)} (${c.input_tokens} in / ${c.output_tokens} out)${c.cost_known ? "" : ", price unknown"}` }] })), { unit: "" });

    fill(view, 
      summary,
      card("chart-success", "Success rate over time", bars("success", days, { line: rates }), outcomeLegend),
      card("chart-kinds", "Upgrades by kind and outcome", bars("kinds", kinds), legend(["promoted", "failed", "rolled_back", "cancelled", "awaiting_approval", "queued"].map((o) => ["o-" + o, o.replace(/_/g, " ")]))),
      h("section.card.chart-card#chart-gates", {}, h("h2", {}, "Gate durations"), gateCharts.length ? h("div.gate-grid", {}, gateCharts) : h("p.muted", {}, "No gate has run.")),
      card("chart-rollbacks", "Rollbacks by cause", causes.size ? rollbackChart : h("p.muted", {}, "None yet."), rollbackList),
      card("chart-cost", "Cost per upgrade (US$)", series.cost.length ? cost : h("p.muted", {}, "No generation cost recorded."),
        series.cost.length ? h("p.small.muted", {}, `${series.cost.length} upgrades used a provider; $${totalCost.toFixed(4)} in all.`) : null),
      failures(stats),
    );
  }
  await render();
  let pending = null;
  const off = onEvent((ev) => {
    if (ev.type !== "state_changed") return;
    clearTimeout(pending);
    pending = setTimeout(() => render().catch(() => {}), 300);
  });
  return () => {
    off();
    clearTimeout(pending);
  };
}

const fig = (label, value) => h("div.figure", {}, h("span.value", {}, String(value)), h("span.label", {}, label));

function failures(stats) {
  const list = stats.failures_by_cause || [];
  if (!list.length) return null;
  return h("section.card#failures", {}, h("h2", {}, "Failures by cause"),
    h("ul", {}, list.map((c) => h("li", {}, h("b", {}, c.cause), ` × ${c.count}`, c.recommendation ? h("div.small.muted", {}, c.recommendation) : null))));
}
