// A unified diff (git's) drawn per file, unified or side by side, with
// line numbers and syntax highlighting. Built as DOM nodes: the diff's
// text is never parsed as HTML.

import { h } from "./api.js";
import { highlight, langOf } from "./highlight.js";

/** Files → hunks → lines ({t: ' ' | '+' | '-', text, old, new}). */
function parseDiff(text) {
  const files = [];
  let file = null, hunk = null, o = 0, n = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("diff --git ")) {
      const m = / b\/(.*)$/.exec(line);
      file = { path: m ? m[1] : line.slice(11), hunks: [], meta: [] };
      files.push(file);
      hunk = null;
    } else if (!file) {
      continue;
    } else if (line.startsWith("@@")) {
      const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$/.exec(line);
      o = m ? +m[1] : 0;
      n = m ? +m[2] : 0;
      hunk = { header: line, lines: [] };
      file.hunks.push(hunk);
    } else if (hunk && (line[0] === " " || line[0] === "+" || line[0] === "-")) {
      const l = { t: line[0], text: line.slice(1) };
      if (l.t !== "+") l.old = o++;
      if (l.t !== "-") l.new = n++;
      hunk.lines.push(l);
    } else if (hunk && line.startsWith("\\")) {
      hunk.lines.push({ t: "\\", text: line });
    } else if (line.startsWith("+++ ") && !line.startsWith("+++ /dev/null")) {
      file.path = line.slice(4).replace(/^b\//, "");
    } else if (!hunk) {
      file.meta.push(line);
    }
  }
  return files;
}

const code = (text, lang) => h("code", {}, highlight(text, lang));

function unifiedRows(hunk, lang) {
  return hunk.lines.map((l) =>
    h("tr", { class: l.t === "+" ? "add" : l.t === "-" ? "del" : l.t === "\\" ? "note" : "ctx" },
      h("td.ln", {}, l.old ?? ""), h("td.ln", {}, l.new ?? ""), h("td.sign", {}, l.t === "\\" ? "" : l.t), h("td.code", {}, code(l.text, lang))));
}

/** Pairs removed and added lines of each change block, left and right. */
function splitRows(hunk, lang) {
  const rows = [];
  const lines = hunk.lines.filter((l) => l.t !== "\\");
  for (let i = 0; i < lines.length; ) {
    if (lines[i].t === " ") {
      const l = lines[i++];
      rows.push([l, l]);
      continue;
    }
    const del = [], add = [];
    while (i < lines.length && lines[i].t === "-") del.push(lines[i++]);
    while (i < lines.length && lines[i].t === "+") add.push(lines[i++]);
    for (let k = 0; k < Math.max(del.length, add.length); k++) rows.push([del[k] || null, add[k] || null]);
  }
  const side = (l, which) => l
    ? [h("td.ln", {}, which === "old" ? l.old : l.new), h("td.code", { class: "code " + (l.t === " " ? "ctx" : which === "old" ? "del" : "add") }, code(l.text, lang))]
    : [h("td.ln.empty", {}), h("td.code.empty", {})];
  return rows.map(([a, b]) => h("tr", {}, side(a, "old"), side(b, "new")));
}

export function diffView(text, { mode = "unified", compact = false } = {}) {
  const files = parseDiff(text);
  if (!files.length) return h("p.muted", {}, "No diff recorded.");
  return h("div.diff", { "data-mode": mode }, files.map((f) => {
    const lang = langOf(f.path);
    const body = f.hunks.flatMap((hk) => [
      h("tr.hunk", {}, h("td", { colspan: 4 }, hk.header)),
      ...(mode === "split" ? splitRows(hk, lang) : unifiedRows(hk, lang)),
    ]);
    return h("details.file", { open: true, "data-path": f.path },
      h("summary", {}, h("code", {}, f.path), f.meta.filter((m) => /^(new|deleted|rename|similarity)/.test(m)).map((m) => h("span.muted.small", {}, " " + m))),
      h("div.scroll", {}, h("table", { class: "difftable " + mode + (compact ? " compact" : "") }, h("tbody", {}, body))));
  }));
}
