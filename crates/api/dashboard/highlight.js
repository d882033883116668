// A small syntax highlighter for diff lines: comments, strings, numbers
// and keywords of the languages Graft knows (Rust, Python, JavaScript,
// TypeScript, Go, TOML, JSON, YAML, shell). One line at a time, so a
// block comment or string that spans lines is coloured line by line; for
// reading a diff that is enough, and it never needs the whole file.

const KEYWORDS = {
  rust: "as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while",
  python: "and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return True try while with yield",
  js: "async await break case catch class const continue default delete do else export extends false finally for function if import in instanceof let new null of return static super switch this throw true try typeof undefined var void while yield interface type enum implements",
  go: "break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var nil true false",
  toml: "true false",
  shell: "if then else elif fi for in do done case esac while until function return export local set",
};

const LANG_OF = { rs: "rust", py: "python", js: "js", mjs: "js", cjs: "js", ts: "js", tsx: "js", jsx: "js", go: "go", toml: "toml", json: "toml", yaml: "toml", yml: "toml", sh: "shell", bash: "shell" };

export function langOf(path) {
  const ext = (path.split(".").pop() || "").toLowerCase();
  return LANG_OF[ext] || null;
}

const sets = {};
function keywords(lang) {
  return (sets[lang] ||= new Set(KEYWORDS[lang].split(" ")));
}

function tokenRe(lang) {
  const comment = lang === "python" || lang === "toml" || lang === "shell" ? "#.*" : "\\/\\/.*|\\/\\*.*?(?:\\*\\/|$)";
  const strings = lang === "rust" ? `"(?:[^"\\\\]|\\\\.)*"?` : `"(?:[^"\\\\]|\\\\.)*"?|'(?:[^'\\\\]|\\\\.)*'?|\`[^\`]*\`?`;
  return new RegExp(`(${comment})|(${strings})|(\\b\\d[\\d_]*(?:\\.\\d+)?\\b)|([A-Za-z_][A-Za-z0-9_]*)`, "g");
}

/** The line as nodes: spans with classes c-comment, c-string, c-number, c-keyword. */
export function highlight(line, lang) {
  if (!lang) return [document.createTextNode(line)];
  const out = [];
  const re = tokenRe(lang);
  let last = 0, m;
  const kw = keywords(lang);
  while ((m = re.exec(line))) {
    const cls = m[1] ? "c-comment" : m[2] ? "c-string" : m[3] ? "c-number" : kw.has(m[4]) ? "c-keyword" : null;
    if (!cls) continue;
    if (m.index > last) out.push(document.createTextNode(line.slice(last, m.index)));
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = m[0];
    out.push(span);
    last = m.index + m[0].length;
    if (m[0].length === 0) re.lastIndex++;
  }
  if (last < line.length) out.push(document.createTextNode(line.slice(last)));
  return out;
}
