// The live pipeline view with the instruction box, the queue, and the
// agent's state.

import { h, get, post, when, toast, stateBadge, fill, TERMINAL } from "./api.js";
import { onEvent, setKeys } from "./app.js";
import { diffView } from "./diff.js";
import { actions, pipelineView } from "./upgrade.js";

// ---------------------------------------------------------------- live

export async function livePage(view) {
  const pipeline = h("div.card#pipeline", {});
  const box = instructionBox((id) => live.follow(id));
  fill(view, h("div.grid2", {}, box, pipeline));
  const live = pipelineView(pipeline);
  const st = await get("/v1/status");
  const first = (st.in_progress && st.in_progress[0]) || (st.recent && st.recent.find((u) => !u.dry_run));
  if (first) await live.follow(first.id);
  else live.idle();
  const off = onEvent((ev) => {
    // A new upgrade takes the view once the one shown has ended.
    if (ev.type === "upgrade_created" && live.finished()) live.follow(ev.id);
    live.event(ev);
  });
  return () => {
    off();
    live.stop();
  };
}

/** Type or speak an instruction; preview (a dry run: plan, gates, diff), then execute. */
function instructionBox(onExecute) {
  const text = h("textarea#instruction", { rows: 4, placeholder: "What should change? e.g. make the greeting say hello from v2", "aria-label": "Instruction" });
  const out = h("div#preview", {});
  const execute = h("button#execute.primary", { disabled: true, title: "Run the whole pipeline: gates, deploy, watch" }, "Execute");
  const preview = h("button#preview-button", { title: "A dry run: the change is generated, staged and gated; nothing lands" }, "Preview");
  let previewed = null;
  text.addEventListener("input", () => {
    if (previewed !== text.value) execute.disabled = true;
  });
  preview.addEventListener("click", async () => {
    const instruction = text.value.trim();
    if (!instruction) return toast("Say what to change first.", "bad");
    preview.disabled = true;
    execute.disabled = true;
    fill(out, h("p.muted", {}, "Planning: the provider writes the change, then the gates run on it…"));
    try {
      const r = await post("/v1/upgrades", { instruction, dry_run: true, requested_by: "dashboard" });
      const done = await settle(r.id);
      const [u, d] = await Promise.all([get("/v1/upgrades/" + r.id), get("/v1/upgrades/" + r.id + "/diff")]);
      const ok = done.reason === "dry_run";
      fill(out, 
        h("p", { "data-preview": ok ? "passed" : "failed" }, ok ? "Preview passed: every gate is green. " : "Preview failed: " + (done.error || done.reason || done.state) + " ",
          h("a", { href: "#/upgrade/" + r.id }, "details")),
        h("ul.gates", {}, (u.gates || []).map((g) => h("li", {}, h("span.state", { class: "state st-" + g.status }, g.status), " ", g.name))),
        diffView(d.diff || "", { compact: true }),
      );
      if (ok) {
        previewed = text.value;
        execute.disabled = false;
      }
    } catch (e) {
      fill(out, h("p.error", {}, e.message));
    } finally {
      preview.disabled = false;
    }
  });
  execute.addEventListener("click", async () => {
    execute.disabled = true;
    try {
      const r = await post("/v1/upgrades", { instruction: text.value.trim(), requested_by: "dashboard" });
      toast("Upgrade " + r.id + " is " + r.state.replace(/_/g, " ") + ".");
      fill(out, h("p", { "data-sent": r.id }, "Sent as ", h("a", { href: "#/upgrade/" + r.id }, r.id), ". Follow it on the right."));
      text.value = "";
      previewed = null;
      onExecute(r.id);
    } catch (e) {
      fill(out, h("p.error", {}, e.message));
    }
  });
  const buttons = [preview, execute];
  const Speech = window.SpeechRecognition || window.webkitSpeechRecognition;
  if (Speech) {
    const mic = h("button#speak", { title: "Speak the instruction", "aria-label": "Speak" }, "🎤 Speak");
    mic.addEventListener("click", () => {
      const rec = new Speech();
      rec.lang = navigator.language || "en-US";
      rec.interimResults = true;
      mic.classList.add("listening");
      rec.onresult = (e) => {
        text.value = Array.from(e.results, (r) => r[0].transcript).join(" ");
        text.dispatchEvent(new Event("input"));
      };
      rec.onerror = (e) => toast("Speech recognition: " + e.error, "bad");
      rec.onend = () => mic.classList.remove("listening");
      rec.start();
    });
    buttons.unshift(mic);
  }
  return h("div.card#instruction-box", {}, h("h2", {}, "Instruction"), text, h("div.buttons", {}, buttons), out);
}

/** Wait until an upgrade ended (by events, checked against the ledger). */
function settle(id) {
  return new Promise((resolve) => {
    let done = false;
    const check = async () => {
      if (done) return;
      const u = (await get("/v1/upgrades/" + id)).upgrade;
      if (TERMINAL.has(u.state) || u.state === "awaiting_approval") {
        done = true;
        off();
        clearInterval(timer);
        resolve(u);
      }
    };
    const off = onEvent((ev) => ev.id === id && ev.type === "state_changed" && check());
    const timer = setInterval(check, 2000);
    check();
  });
}

// ---------------------------------------------------------------- queue

export async function queuePage(view) {
  let selected = 0;
  let rows = [];
  const help = h("p.muted.keys", {}, "Keys: j / k select · a approve · x reject · c cancel · r roll back · Enter open");
  async function render() {
    // The live sections from the status (each listed by its own states,
    // so no number of newer upgrades pushes an old waiting one out), the
    // recent ones by their states.
    const [st, ended] = await Promise.all([
      get("/v1/status"),
      get("/v1/upgrades?limit=25&state=" + [...TERMINAL].join(",")),
    ]);
    const sections = [
      ["in-progress", "In progress", st.in_progress],
      ["awaiting", "Awaiting approval", st.pending.filter((u) => u.state === "awaiting_approval")],
      ["pending", "Pending", st.pending.filter((u) => u.state === "queued")],
      ["recent", "Recent", ended.upgrades],
    ];
    const cards = [];
    rows = [];
    for (const [key, title, list] of sections) {
      const tbody = h("tbody", {});
      for (const u of list) {
        const tr = h("tr", { "data-id": u.id, "data-state": u.state },
          h("td", {}, h("a", { href: "#/upgrade/" + u.id }, u.title || u.id), h("div.muted.small", {}, u.id)),
          h("td", {}, stateBadge(u.state), u.dry_run ? h("span.muted.small", {}, " dry run") : null),
          h("td.hide-narrow", {}, u.risk ? h("span.risk", { class: "risk r-" + u.risk }, u.risk) : ""),
          h("td.hide-narrow.small", {}, when(u.created_at)),
          h("td.actions", {}, actions(u, render)));
        tr.addEventListener("click", (e) => {
          if (e.target.closest("a, button")) return;
          selected = rows.indexOf(tr);
          mark();
        });
        rows.push(tr);
        tbody.append(tr);
      }
      cards.push(h("section.card", { id: "queue-" + key },
        h("h2", {}, title, " ", h("span.count", {}, String(list.length))),
        list.length ? h("div.scroll", {}, h("table.list", {}, tbody)) : h("p.muted", {}, "Nothing here.")));
    }
    fill(view, help, ...cards);
    selected = Math.min(selected, Math.max(rows.length - 1, 0));
    mark();
    view.setAttribute("data-ready", "1");
  }
  function mark() {
    rows.forEach((r, i) => r.classList.toggle("selected", i === selected));
  }
  await render();
  setKeys((e) => {
    if (e.key === "j" || e.key === "ArrowDown") selected = Math.min(selected + 1, rows.length - 1);
    else if (e.key === "k" || e.key === "ArrowUp") selected = Math.max(selected - 1, 0);
    else if (e.key === "Enter" && rows[selected]) location.hash = "#/upgrade/" + rows[selected].dataset.id;
    else {
      const which = { a: "approve", x: "reject", c: "cancel", r: "rollback" }[e.key];
      const button = which && rows[selected] && rows[selected].querySelector(`button[data-action="${which}"]`);
      if (!button) return false;
      button.click();
      return true;
    }
    mark();
    return true;
  });
  let pending = null;
  const off = onEvent((ev) => {
    if (ev.type !== "state_changed" && ev.type !== "upgrade_created") return;
    clearTimeout(pending);
    pending = setTimeout(render, 150);
  });
  return () => {
    off();
    clearTimeout(pending);
  };
}

// ---------------------------------------------------------------- agent

export async function agentPage(view) {
  const [task, history] = await Promise.all([
    get("/v1/agent/task").catch((e) => (e.code === "no_task" ? null : Promise.reject(e))),
    get("/v1/agent/history?after=0&limit=500"),
  ]);
  const entries = history.entries || [];
  fill(view, 
    h("section.card#agent-task", {},
      h("h2", {}, "Current task"),
      task ? [h("pre.task", {}, task.content), h("p.muted.small", {}, "version " + task.version + " · saved " + when(task.updated_at))] : h("p.muted", {}, "No task has been saved yet.")),
    h("section.card#agent-history", {},
      h("h2", {}, "Conversation history ", h("span.count", {}, String(entries.length))),
      entries.length
        ? h("ol.history", {}, entries.map((e) => h("li", { class: "role-" + e.role.replace(/[^a-z]/gi, "") }, h("span.role", {}, e.role), h("span.small.muted", {}, " " + when(e.at || e.created_at)), h("div.content", {}, e.content))))
        : h("p.muted", {}, "No history yet.")),
  );
}
