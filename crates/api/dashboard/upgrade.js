// One upgrade: what was asked, its risk, the diff, gates with their
// output, the deploy timeline, rollbacks; the buttons that act on it; and
// the live pipeline view the Live page is built from.

import { h, get, post, when, toast, stateBadge, fill, TERMINAL } from "./api.js";
import { onEvent } from "./app.js";
import { diffView } from "./diff.js";

const PHASES = ["queued", "generating", "staging", "validating", "deploying", "watching", "promoted"];
/** The phase each journal step belongs to (by its name before any `:`). */
const STEP_PHASE = {
  generate: "generating",
  stage: "staging",
  restage: "staging",
  gate: "validating",
  review: "validating",
  release: "deploying",
  backup: "deploying",
  land: "deploying",
  deploy: "deploying",
  watch: "watching",
};

/** The buttons that fit an upgrade's state; `after` runs once one acted. */
export function actions(u, after) {
  const out = [];
  const act = (action, label, path, cls, body) => {
    const b = h("button.small", { "data-action": action, class: "small " + (cls || ""), title: label });
    b.textContent = label;
    b.addEventListener("click", async (e) => {
      e.stopPropagation();
      if (action === "rollback" && !b.dataset.armed) {
        // A rollback deploys the previous release: one more click to be sure.
        b.dataset.armed = "1";
        b.textContent = "Confirm roll back";
        b.classList.add("danger");
        return;
      }
      b.disabled = true;
      try {
        const r = await post(`/v1/upgrades/${u.id}/${path}`, body || { requested_by: "dashboard" });
        const state = r.state || (r.cancel && r.cancel.state) || (r.rollback && "rolled back") || (r.upgrade_id && "rolled back") || "done";
        toast(`${label}: ${u.id} ${String(state).replace(/_/g, " ")}`);
      } catch (x) {
        toast(`${label} failed: ${x.message}`, "bad");
      }
      if (after) after();
    });
    out.push(b);
  };
  if (u.state === "awaiting_approval") {
    act("approve", "Approve", "approve", "primary");
    act("reject", "Reject", "reject", "", { requested_by: "dashboard", reason: "rejected in the dashboard" });
  }
  if (!TERMINAL.has(u.state) && u.state !== "deploying" && u.state !== "watching") act("cancel", "Cancel", "cancel");
  if (u.state === "promoted" && !u.dry_run) act("rollback", "Roll back", "rollback", "warn");
  return out;
}

/** Steps from the ledger's journal rows: name → {status, at, ended}. */
function stepsOf(rows) {
  const steps = new Map();
  for (const r of rows || []) {
    const s = steps.get(r.step) || { name: r.step };
    if (r.phase === "begin") {
      s.status = "running";
      s.at = r.at;
    } else {
      s.status = r.outcome || "ok";
      s.ended = r.at;
    }
    steps.set(r.step, s);
  }
  return steps;
}

/**
 * The class of each phase of `u`: done up to the one it is in, that one
 * now. An upgrade that ended short of promotion (failed, rolled back,
 * cancelled) shows the phases it passed done and the one it stopped in
 * as stopped, by its journal; a watch window that ended well means it was
 * promoted, then rolled back. A dry run that passed its gates shows them
 * done. Awaiting approval is no phase: none is marked.
 */
function phaseClass(u, steps) {
  if (u.state === "promoted") return () => "done";
  const now = PHASES.indexOf(u.state);
  if (now >= 0) return (i) => (i < now ? "done" : i === now ? "now" : "");
  if (!TERMINAL.has(u.state)) return () => "";
  let end = 0;
  for (const s of steps.values()) {
    const phase = s.name === "watch" && s.status === "ok" ? "promoted" : STEP_PHASE[s.name.split(":")[0]];
    end = Math.max(end, PHASES.indexOf(phase));
  }
  // A dry run that passed its gates ends there by design.
  if (u.dry_run && u.reason === "dry_run") return (i) => (i <= end ? "done" : "");
  return (i) => (i < end ? "done" : i === end ? "stopped" : "");
}

/** The live pipeline of one upgrade at a time, fed by server-sent events. */
export function pipelineView(el) {
  let id = null, u = null, steps = new Map(), gates = new Map(), timer = null, supervisor = null;
  const render = () => {
    if (!u) return;
    el.dataset.id = u.id;
    el.dataset.state = u.state;
    const phase = phaseClass(u, steps);
    const phases = h("ol.phases", {}, PHASES.map((p, i) => h("li", { class: phase(i) }, p.replace(/_/g, " "))));
    const stepList = h("ol.steps", {}, [...steps.values()].map((s) =>
      h("li", { "data-step": s.name, class: "step-" + s.status }, h("span.dot", {}), s.name, " ", h("span.muted.small", {}, s.status))));
    const gateBlocks = [...gates.values()].map((g) =>
      h("details.gate", { open: ["running", "failed", "misconfigured"].includes(g.status) ? true : null, "data-gate": g.name },
        h("summary", {}, h("span.state", { class: "state st-" + g.status }, g.status), " gate ", h("b", {}, g.name), g.duration_ms != null ? h("span.muted.small", {}, ` ${(g.duration_ms / 1000).toFixed(2)} s`) : ""),
        h("pre.output", {}, g.output || "(no output)")));
    const deploy = ["deploy", "watch"].map((n) => steps.get(n)).filter(Boolean);
    const sup = supervisor
      ? h("p.small", {}, "Live release ", h("code", {}, String(supervisor.live_commit || "").slice(0, 10)), " · ", supervisor.ready ? "ready" : "not ready", supervisor.in_watch_window ? " · in its watch window" : "")
      : null;
    fill(el, 
      h("h2", {}, "Pipeline ", stateBadge(u.state)),
      h("p", {}, h("a", { href: "#/upgrade/" + u.id }, u.title || u.id), h("span.muted.small", {}, " " + u.id + (u.dry_run ? " · dry run" : ""))),
      phases,
      u.error ? h("p.error", {}, u.error) : null,
      stepList,
      gateBlocks,
      h("div.deploy", {}, h("h3", {}, "Deploy and watch"),
        deploy.length ? h("ul", {}, deploy.map((s) => h("li", {}, s.name, ": ", s.status, s.at ? h("span.muted.small", {}, " " + when(s.at)) : ""))) : h("p.muted.small", {}, "Not deployed yet."),
        sup),
    );
  };
  // Answers may come back out of order: only the newest request's answer
  // for the upgrade shown now is drawn.
  let seq = 0;
  const refresh = async () => {
    if (!id) return;
    const mine = ++seq, forId = id;
    const d = await get("/v1/upgrades/" + forId);
    const sup = ["deploying", "watching", "promoted", "rolled_back"].includes(d.upgrade.state) ? await get("/health") : null;
    if (mine !== seq || forId !== id) return;
    u = d.upgrade;
    supervisor = sup;
    steps = stepsOf(d.steps);
    for (const g of d.gates || []) {
      const cur = gates.get(g.name);
      gates.set(g.name, { name: g.name, status: g.status, duration_ms: g.duration_ms, output: cur && cur.output && cur.output.length > (g.output_tail || "").length ? cur.output : g.output_tail });
    }
    render();
  };
  let pending = null;
  const soon = () => {
    clearTimeout(pending);
    pending = setTimeout(() => refresh().catch(() => {}), 120);
  };
  return {
    async follow(newId) {
      if (id === newId) return;
      id = newId;
      u = null;
      steps = new Map();
      gates = new Map();
      clearInterval(timer);
      // The watch window has no events of its own, and an event can be
      // missed: poll until the upgrade shown has ended.
      timer = setInterval(() => (!u || u.id !== id || !TERMINAL.has(u.state)) && refresh().catch(() => {}), 1500);
      await refresh();
    },
    event(ev) {
      if (!id || ev.id !== id) return;
      if (ev.type === "state_changed") {
        if (u && u.id === id) u.state = ev.state;
        soon();
      } else if (ev.type === "step_begin") {
        steps.set(ev.step, { name: ev.step, status: "running", at: new Date().toISOString() });
      } else if (ev.type === "step_end") {
        const s = steps.get(ev.step) || { name: ev.step };
        s.status = ev.outcome;
        steps.set(ev.step, s);
      } else if (ev.type === "gate_started") {
        gates.set(ev.gate, { name: ev.gate, status: "running", output: "" });
      } else if (ev.type === "gate_output") {
        const g = gates.get(ev.gate) || { name: ev.gate, status: "running", output: "" };
        g.output = (g.output || "") + ev.line + "\n";
        gates.set(ev.gate, g);
      } else if (ev.type === "gate_finished") {
        const g = gates.get(ev.gate) || { name: ev.gate, output: "" };
        Object.assign(g, { status: ev.status, duration_ms: ev.duration_ms });
        gates.set(ev.gate, g);
      } else return;
      render();
    },
    finished: () => !id || (u && u.id === id && (TERMINAL.has(u.state) || u.state === "awaiting_approval")),
    idle() {
      fill(el, h("h2", {}, "Pipeline"), h("p.muted", {}, "No upgrade yet. Give an instruction, or queue a suggestion from the Scan page."));
    },
    stop() {
      clearInterval(timer);
      clearTimeout(pending);
    },
  };
}

// ---------------------------------------------------------------- page

export async function upgradePage(view, id) {
  let mode = localStorage.getItem("graft.diff") || (window.innerWidth < 760 ? "unified" : "split");
  async function render() {
    const [d, diff] = await Promise.all([get("/v1/upgrades/" + id), get("/v1/upgrades/" + id + "/diff")]);
    const u = d.upgrade;
    const sub = (u.request && u.request.submission) || {};
    const steps = [...stepsOf(d.steps).values()];
    const t0 = steps.length ? new Date(steps[0].at).getTime() : 0;
    const modeButtons = h("div.toggle", { role: "group", "aria-label": "Diff view" },
      ["unified", "split"].map((m) => h("button.small", {
        class: "small" + (m === mode ? " on" : ""), "data-mode": m,
        onclick: () => { mode = m; localStorage.setItem("graft.diff", m); render(); },
      }, m === "split" ? "Side by side" : "Unified")));
    fill(view, 
      h("section.card#upgrade", { "data-id": u.id, "data-state": u.state },
        h("h1", {}, u.title || u.id, " ", stateBadge(u.state)),
        h("p.muted.small", {}, `${u.id} · ${u.kind} · by ${u.requested_by} · ${when(u.created_at)}` + (u.dry_run ? " · dry run" : "")),
        h("div.buttons", {}, actions(u, render)),
        u.error ? h("p.error", {}, (u.reason ? u.reason + ": " : "") + u.error) : null),
      h("section.card#request", {}, h("h2", {}, "Request"),
        d.asked ? h("pre.request", {}, d.asked) : h("p", {}, u.title),
        h("p.small.muted", {}, [`${u.kind} from ${u.source || sub.source || "?"}`, `priority ${u.priority}`, sub.provider && `provider ${sub.provider}`, sub.suggestion && `suggestion ${sub.suggestion}`, u.retry_of && `retry of ${u.retry_of}`].filter(Boolean).join(" · ")),
        h("details", {}, h("summary.small", {}, "The request as recorded"), h("pre.request.small", {}, JSON.stringify(u.request, null, 2)))),
      h("section.card#risk", {}, h("h2", {}, "Risk ", u.risk ? h("span.risk", { class: "risk r-" + u.risk }, u.risk) : h("span.muted", {}, "not assessed yet")),
        (u.risk_reasons || []).length ? h("ul", {}, u.risk_reasons.map((r) => h("li", {}, r))) : h("p.muted.small", {}, "No reasons recorded."),
        u.approval ? h("p.small", {}, `Approval: ${u.approval}` + (u.approved_by ? ` by ${u.approved_by}` : "")) : null,
        (d.approvals || []).map((a) => h("p.small", {}, `Approved by ${a.approved_by} · ${when(a.at)}`))),
      h("section.card#files", {}, h("h2", {}, "Files ", modeButtons),
        h("ul.files", {}, (d.files || []).map((f) => h("li", {}, h("code", {}, f.path), ` ${f.kind} `, h("span.add", {}, "+" + f.lines_added), " ", h("span.del", {}, "−" + f.lines_removed)))),
        diffView(diff.diff || "", { mode })),
      h("section.card#gates", {}, h("h2", {}, "Gates"),
        (d.gates || []).length ? d.gates.map((g) => h("details.gate", { open: g.status !== "passed" ? true : null, "data-gate": g.name },
          h("summary", {}, h("span.state", { class: "state st-" + g.status }, g.status), ` ${g.name} (${g.kind}) `, h("span.muted.small", {}, `round ${g.round} · ${(g.duration_ms / 1000).toFixed(2)} s` + (g.exit_code != null ? ` · exit ${g.exit_code}` : ""))),
          h("pre.output", {}, g.output_tail || "(no output)"))) : h("p.muted", {}, "No gate has run.")),
      h("section.card#timeline", {}, h("h2", {}, "Timeline"),
        h("ol.timeline", {}, steps.map((s) => h("li", { class: "step-" + s.status + (["deploy", "watch", "land", "release"].includes(s.name) ? " key" : "") },
          h("b", {}, s.name), " ", s.status, h("span.muted.small", {}, ` +${((new Date(s.at).getTime() - t0) / 1000).toFixed(2)} s` + (s.ended ? ` · ${((new Date(s.ended) - new Date(s.at)) / 1000).toFixed(2)} s` : "")))))),
      (d.rollbacks || []).length
        ? h("section.card#rollbacks", {}, h("h2", {}, "Rolled back"), d.rollbacks.map((r) => h("p", { "data-cause": r.cause },
          h("b", {}, "Cause: " + r.cause), ` · by ${r.requested_by} · ${when(r.at)}`, r.revert_commit ? [" · revert ", h("code", {}, r.revert_commit.slice(0, 10))] : "", r.data_restored ? " · data files restored" : "")))
        : null,
      (d.rounds || []).length
        ? h("section.card#rounds", {}, h("h2", {}, "Generation"), h("div.scroll", {}, h("table.list", {}, h("tbody", {}, d.rounds.map((r) => h("tr", {}, h("td", {}, "round " + r.round), h("td", {}, r.provider + (r.model ? " · " + r.model : "")), h("td", {}, `${r.input_tokens} in / ${r.output_tokens} out`), h("td", {}, "$" + Number(r.cost_usd || 0).toFixed(4)), h("td", {}, r.outcome)))))))
        : null,
    );
  }
  await render();
  let pending = null;
  const off = onEvent((ev) => {
    if (ev.id !== id || !["state_changed", "step_end", "gate_finished"].includes(ev.type)) return;
    clearTimeout(pending);
    pending = setTimeout(() => render().catch(() => {}), 200);
  });
  return () => {
    off();
    clearTimeout(pending);
  };
}
