#!/usr/bin/env python3
"""Graft scan bench: `graft scan` beside the tools people use today.

In one run, on pinned corpora (Django 5.1.4, syn 2.0.90 + tokio 1.42.0,
lodash 4.17.21, rxjs 7.8.1, fetched with bench/scan/fetch_corpora.sh into
bench/corpora, which git ignores), it measures the median wall time and
peak memory of:

- `graft scan`, cold (no cache) and warm (after one file changed);
- the parse floor: tree-sitter alone parsing the same files with the same
  number of threads (crates/scan/examples/parse_floor.rs);
- lizard, radon cc, pylint's symilar, pydeps (PyPI), jscpd 5.3.3 and
  madge 8.0.0 (npm), and rust-code-analysis-cli (crates.io) when it could
  be built here; the tools that take a thread count (lizard, jscpd,
  rust-code-analysis) get graft's; jscpd runs twice, as its own default
  pass (every format it knows, the target) and limited to graft's
  languages (printed for comparison, and the source of the clone pairs);

each once per round, so the machine's slow spells fall on all of them,
and prints the ratios against the targets, then the agreement figures:
function count and cyclomatic complexity against lizard (Django, syn +
tokio), import cycles against madge (rxjs), clone pairs against jscpd
(Django).

Usage: bench/scan/run.py [--runs N] [--threads N] [--corpus NAME ...]
Installs the reference tools under target/ (a venv, an npm prefix, a cargo
root) on first use. Writes bench/out/scan-results.json.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPORA = os.path.join(ROOT, "bench", "corpora")
OUT = os.path.join(ROOT, "bench", "out")
WORK = os.path.join(OUT, "work")
VENV = os.path.join(ROOT, "target", "bench-venv")
NODE = os.path.join(ROOT, "target", "bench-node")
CARGO_ROOT = os.path.join(ROOT, "target", "bench-cargo")
BIN = lambda *p: os.path.join(*p)  # noqa: E731

# name -> (source dirs under bench/corpora, copied side by side into one repo)
CORPUS = {
    "django": ["Django-5.1.4/django"],
    "syn+tokio": ["rust/syn", "rust/tokio"],
    "lodash": ["lodash/package"],
    "rxjs": ["rxjs/package/src"],
}
# Which reference tools run on which corpus (each one's own single pass).
# "jscpd" is jscpd's own single pass over the tree, the way it is run by
# default and the way the reference figure was taken (every format
# jscpd knows, as lizard reads every language it knows); "jscpd-langs"
# restricts it to the languages graft analyses, for comparison and for the
# clone agreement.
TOOLS = {
    "django": ["lizard", "radon", "rust-code-analysis", "jscpd", "jscpd-langs", "pydeps", "symilar"],
    "syn+tokio": ["lizard", "rust-code-analysis", "jscpd", "jscpd-langs"],
    "lodash": ["lizard", "jscpd", "madge"],
    "rxjs": ["lizard", "jscpd", "madge"],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(args, cwd=None, check=True, env=None, stdout=None):
    r = subprocess.run(args, cwd=cwd, env=env, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-3000:]}")
    return r


def measure_mem(args, cwd, env=None, stdout_path=None, ok=(0,)):
    """Wall time and peak memory of one run, through /usr/bin/time-like
    accounting: a wrapper python that waits for the child with wait4."""
    wrapper = (
        "import os,sys,time,json\n"
        "t=time.perf_counter()\n"
        "pid=os.fork()\n"
        "if pid==0:\n"
        "    if sys.argv[1]!='-':\n"
        "        fd=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT|os.O_TRUNC,0o644); os.dup2(fd,1)\n"
        "    else:\n"
        "        fd=os.open(os.devnull,os.O_WRONLY); os.dup2(fd,1)\n"
        "    os.execvp(sys.argv[2],sys.argv[2:])\n"
        "_,st,ru=os.wait4(pid,0)\n"
        "print(json.dumps({'wall':time.perf_counter()-t,'cpu':ru.ru_utime+ru.ru_stime,'rss_kb':ru.ru_maxrss,'code':os.waitstatus_to_exitcode(st)}),file=sys.stderr)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", wrapper, stdout_path or "-"] + args,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "{}"
    try:
        m = json.loads(last)
    except json.JSONDecodeError:
        sys.exit(f"bench: {' '.join(args)}: no measurement\n{p.stderr[-3000:]}")
    if m["code"] not in ok:
        sys.exit(f"bench: {' '.join(args)} failed ({m['code']}):\n{p.stderr[-3000:]}")
    return m["wall"], m["rss_kb"] / 1024.0, m["cpu"]


# ---- setup -----------------------------------------------------------------


def fetch_corpora():
    script = os.path.join(ROOT, "bench", "scan", "fetch_corpora.sh")
    log("bench: fetching corpora (pip, npm, cargo vendor) ...")
    run(["bash", script, CORPORA], cwd=ROOT)


def install_tools():
    if not os.path.exists(BIN(VENV, "bin", "lizard")):
        log("bench: installing lizard, radon, pylint, pydeps into target/bench-venv ...")
        run([sys.executable, "-m", "venv", VENV])
        run([BIN(VENV, "bin", "pip"), "install", "-q", "lizard", "radon", "pylint", "pydeps"])
    if not os.path.exists(BIN(NODE, "node_modules", ".bin", "jscpd")):
        log("bench: installing jscpd 5.3.3 and madge 8.0.0 into target/bench-node ...")
        os.makedirs(NODE, exist_ok=True)
        run(["npm", "install", "--no-audit", "--no-fund", "jscpd@5.3.3", "madge@8.0.0"], cwd=NODE)
    rca = BIN(CARGO_ROOT, "bin", "rust-code-analysis-cli")
    if not os.path.exists(rca) and not os.path.exists(BIN(CARGO_ROOT, "FAILED")):
        log("bench: building rust-code-analysis-cli from crates.io (several minutes) ...")
        r = run(["cargo", "install", "--locked", "rust-code-analysis-cli", "--root", CARGO_ROOT], check=False)
        if r.returncode != 0:
            os.makedirs(CARGO_ROOT, exist_ok=True)
            with open(BIN(CARGO_ROOT, "FAILED"), "w") as f:
                f.write(r.stderr[-5000:])


def build_graft():
    log("bench: building graft and the parse floor (release) ...")
    run(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    run(["cargo", "build", "--release", "--quiet", "-p", "graft-scan", "--example", "parse_floor"], cwd=ROOT)
    return BIN(ROOT, "target", "release", "graft"), BIN(ROOT, "target", "release", "examples", "parse_floor")


def prepare(name):
    """A git repo holding the corpus (root-owned copies: the tarballs' owners
    make git refuse the originals)."""
    dest = os.path.join(WORK, name.replace("+", "_"))
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    for src in CORPUS[name]:
        shutil.copytree(os.path.join(CORPORA, src), os.path.join(dest, os.path.basename(src)), symlinks=True)
    run(["git", "init", "--quiet", dest])
    # A file changed within 2 s of a scan gets no stat stamp (its next
    # write could fall in the same clock tick), so the first round's warm
    # scan would read again what was just copied: a user's repo is older.
    time.sleep(2.1)
    return dest


# ---- tools -----------------------------------------------------------------


def tool_command(tool, repo, name, outdir, threads):
    """(argv, stdout file or None, accepted exit codes)."""
    node_bin = BIN(NODE, "node_modules", ".bin")
    if tool == "lizard":
        return [BIN(VENV, "bin", "lizard"), "-t", str(threads), "--csv", "."], BIN(outdir, "lizard.csv"), (0, 1)
    if tool == "radon":
        return [BIN(VENV, "bin", "radon"), "cc", "-j", "."], BIN(outdir, "radon.json"), (0,)
    if tool == "rust-code-analysis":
        rca = BIN(CARGO_ROOT, "bin", "rust-code-analysis-cli")
        if not os.path.exists(rca):
            return None
        # An absolute path: given `.`, it analyses nothing.
        return [rca, "-m", "-j", str(threads), "-p", repo, "-O", "json"], BIN(outdir, "rca.json"), (0,)
    if tool in ("jscpd", "jscpd-langs"):
        argv = [BIN(node_bin, "jscpd"), ".", "--silent", "--workers", str(threads), "--reporters", "json"]
        if tool == "jscpd":
            # Its default: every format it knows (Django's .po, .html, .txt too).
            return argv + ["--output", BIN(outdir, "jscpd-all")], None, (0,)
        formats = {"django": "python,javascript", "syn+tokio": "rust", "lodash": "javascript", "rxjs": "typescript"}[name]
        return argv + ["--format", formats, "--output", outdir], None, (0,)
    if tool == "madge":
        extra = []
        tsconfig = BIN(repo, "src", "tsconfig.base.json")
        if os.path.exists(tsconfig):
            extra = ["--ts-config", tsconfig]
        exts = "ts,tsx" if name == "rxjs" else "js"
        return [BIN(node_bin, "madge"), "--circular", "--json", "--extensions", exts, *extra, "."], BIN(outdir, "madge.json"), (0, 1)
    if tool == "pydeps":
        return [BIN(VENV, "bin", "pydeps"), "django", "--no-output", "--show-deps", "--max-bacon", "0", "--no-config"], BIN(outdir, "pydeps.json"), (0,)
    if tool == "symilar":
        files = sorted(
            os.path.relpath(os.path.join(d, f), repo)
            for d, _, fs in os.walk(repo)
            if ".git" not in d and ".graft" not in d
            for f in fs
            if f.endswith(".py")
        )
        return [BIN(VENV, "bin", "symilar"), *files], BIN(outdir, "symilar.txt"), (0, 1)
    raise ValueError(tool)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def bench_corpus(name, graft, floor, runs, threads):
    repo = prepare(name)
    outdir = os.path.join(OUT, "scan-" + name.replace("+", "_"))
    os.makedirs(outdir, exist_ok=True)
    env = dict(os.environ, NO_COLOR="1")
    toml = os.path.join(repo, "graft.toml")
    with open(toml, "w") as f:
        f.write(f"[scan]\nthreads = {threads}\n")
    res = {"corpus": name, "runs": runs, "threads": threads}
    cold, warm, floor_t, mem = [], [], [], []
    cold_cpu, floor_cpu = [], []
    # The file edited between warm runs: the first source file in path order.
    victim = None
    for d, _, fs in sorted(os.walk(repo)):
        if ".git" in d:
            continue
        for f in sorted(fs):
            if f.endswith((".py", ".rs", ".ts", ".js")):
                victim = os.path.join(d, f)
                break
        if victim:
            break
    comment = "#" if victim.endswith(".py") else "//"
    tools = {}
    for tool in TOOLS[name]:
        tools[tool] = tool_command(tool, repo, name, outdir, threads)
    os.makedirs(os.path.join(outdir, "jscpd-all"), exist_ok=True)
    walls = {t: [] for t in tools}
    mems = {t: [] for t in tools}
    # Every round runs graft and each tool once, so a slow spell of the
    # machine falls on all of them rather than on one tool's runs.
    for i in range(runs):
        shutil.rmtree(os.path.join(repo, ".graft"), ignore_errors=True)
        w, m, c = measure_mem([graft, "scan"], repo, env=env)
        cold.append(w)
        cold_cpu.append(c)
        mem.append(m)
        with open(victim, "a") as f:
            f.write(f"\n{comment} bench edit {i}\n")
        w, m, _ = measure_mem([graft, "scan"], repo, env=env)
        warm.append(w)
        mem.append(m)
        w, _, c = measure_mem([floor, repo, str(threads)], repo)
        floor_t.append(w)
        floor_cpu.append(c)
        done = []
        for tool, cmd in tools.items():
            # symilar takes minutes and covers one detector: once.
            if cmd is None or (tool == "symilar" and i > 0):
                continue
            argv, out, ok = cmd
            w, m, _ = measure_mem(argv, repo, stdout_path=out, ok=ok)
            walls[tool].append(w)
            mems[tool].append(m)
            done.append(f"{tool} {w:.2f}")
        log(
            f"bench: {name} run {i + 1}: cold {cold[-1]:.2f} s, warm {warm[-1]:.3f} s, floor {floor_t[-1]:.2f} s; "
            + ", ".join(done)
        )
    # One more run for the agreement figures.
    shutil.rmtree(os.path.join(repo, ".graft"), ignore_errors=True)
    report_path = os.path.join(outdir, "graft.json")
    run([graft, "scan", "--json"], cwd=repo, env=env, stdout=open(report_path, "w"), check=False)
    res["graft_cold"] = median(cold)
    res["graft_warm"] = median(warm)
    res["floor"] = median(floor_t)
    res["graft_cold_cpu"] = median(cold_cpu)
    res["floor_cpu"] = median(floor_cpu)
    res["graft_peak_mib"] = max(mem)
    res["tools"] = {
        tool: None if cmd is None else {"wall": median(walls[tool]), "peak_mib": max(mems[tool]), "runs": len(walls[tool])}
        for tool, cmd in tools.items()
    }
    res["agreement"] = agreement(name, repo, outdir)
    return res


# ---- agreement -------------------------------------------------------------


def load_graft(outdir):
    with open(os.path.join(outdir, "graft.json")) as f:
        return json.load(f)


def lizard_agreement(outdir, ext):
    import csv

    graft = load_graft(outdir)
    ours = {}
    for f in graft["files"]:
        if f["path"].endswith(ext):
            for fn in f["functions"]:
                ours.setdefault((f["path"], fn["line"]), []).append(fn["cyclomatic"])
    theirs = []
    with open(os.path.join(outdir, "lizard.csv"), newline="") as f:
        for row in csv.reader(f):
            if len(row) < 11:
                continue
            path = os.path.normpath(row[6])
            if not path.endswith(ext):
                continue
            theirs.append((path, int(row[9]), int(row[1])))
    found = equal = 0
    for path, line, ccn in theirs:
        got = ours.get((path, line))
        if got:
            found += 1
            if ccn in got:
                equal += 1
    n_ours = sum(len(v) for v in ours.values())
    return {
        "lizard_functions": len(theirs),
        "graft_functions": n_ours,
        "found": found,
        "ccn_equal": equal,
        "found_share": found / max(1, len(theirs)),
        "ccn_equal_share": equal / max(1, len(theirs)),
    }


def madge_agreement(outdir):
    graft = load_graft(outdir)
    sccs = [set(c["modules"]) for c in graft["cycles"]]
    with open(os.path.join(outdir, "madge.json")) as f:
        text = f.read()
    cycles = json.loads(text[text.index("[") :]) if "[" in text else []
    missing = []
    for c in cycles:
        files = {os.path.normpath(p) for p in c}
        if not any(files <= s for s in sccs):
            missing.append(c)
    return {"madge_cycles": len(cycles), "reported": len(cycles) - len(missing), "missing": missing[:10]}


def code_tokens(repo, path, start, end):
    """Tokens of code (not comments, not whitespace; a string is one token)
    in lines start..end of a Python file, as tree-sitter counts them; None
    for other languages."""
    import io
    import tokenize

    if not path.endswith(".py"):
        return None
    try:
        with open(os.path.join(repo, path), encoding="utf-8") as f:
            text = f.read()
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (OSError, SyntaxError, tokenize.TokenError):
        return None
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    return sum(1 for t in toks if t.type not in skip and start <= t.start[0] <= end)


def jscpd_agreement(outdir, repo=None, min_tokens=50, report_dir=None):
    graft = load_graft(outdir)
    skipped = {p["path"] for p in graft["problems"] if p["kind"] != "syntax_error"}
    by_path = {}
    for gi, g in enumerate(graft["clones"]):
        for fi, fr in enumerate(g["fragments"]):
            by_path.setdefault(fr["path"], []).append((gi, fi, fr["start_line"], fr["end_line"]))
    with open(os.path.join(report_dir or outdir, "jscpd-report.json")) as f:
        report = json.load(f)
    pairs = report.get("duplicates", [])

    def hits(side):
        path = os.path.normpath(side["name"])
        s, e = side["start"], side["end"]
        return [(gi, fi) for gi, fi, a, b in by_path.get(path, []) if a <= e and s <= b]

    found = 0
    missing, in_skipped, below = [], 0, 0
    for p in pairs:
        a, b = hits(p["firstFile"]), hits(p["secondFile"])
        if any(ga == gb and fa != fb for ga, fa in a for gb, fb in b):
            found += 1
            continue
        sides = (p["firstFile"], p["secondFile"])
        if any(os.path.normpath(s["name"]) in skipped for s in sides):
            in_skipped += 1
        elif repo and any(
            (n := code_tokens(repo, os.path.normpath(s["name"]), s["start"], s["end"])) is not None and n < min_tokens
            for s in sides
        ):
            below += 1
        elif len(missing) < 10:
            missing.append(
                f"{p['firstFile']['name']}:{p['firstFile']['start']}-{p['firstFile']['end']} ~ "
                f"{p['secondFile']['name']}:{p['secondFile']['start']}-{p['secondFile']['end']}"
            )
    comparable = len(pairs) - in_skipped - below
    return {
        "jscpd_pairs": len(pairs),
        "found": found,
        "share": found / max(1, len(pairs)),
        "analysed_share": found / max(1, len(pairs) - in_skipped),
        "in_skipped_files": in_skipped,
        "below_min_code_tokens": below,
        "comparable_share": found / max(1, comparable),
        "missing": missing,
    }


def agreement(name, repo, outdir):
    a = {}
    if name == "django":
        a["lizard"] = lizard_agreement(outdir, ".py")
        if os.path.exists(os.path.join(outdir, "jscpd-report.json")):
            a["jscpd"] = jscpd_agreement(outdir, repo)
        # The target figure: jscpd counting the tokens graft counts (no
        # comments; see ARCHITECTURE.md, "clone agreement").
        plain = os.path.join(outdir, "jscpd-skip-comments")
        os.makedirs(plain, exist_ok=True)
        argv, _, ok = tool_command("jscpd-langs", repo, name, plain, 2)
        measure_mem(argv + ["--skip-comments"], repo, ok=ok)
        a["jscpd_skip_comments"] = jscpd_agreement(outdir, repo, report_dir=plain)
    elif name == "syn+tokio":
        a["lizard"] = lizard_agreement(outdir, ".rs")
    elif name == "rxjs":
        a["madge"] = madge_agreement(outdir)
    return a


# ---- report ----------------------------------------------------------------


def verdict(ok):
    return "PASS" if ok else "FAIL"


def print_report(results):
    print()
    print(f"{'corpus':<10} {'tool':<28} {'wall s':>8} {'peak MiB':>9} {'tool/graft':>11}")
    for r in results:
        g = r["graft_cold"]
        print(f"{r['corpus']:<10} {'graft scan (cold)':<28} {g:>8.2f} {r['graft_peak_mib']:>9.0f} {1:>10.2f}x")
        print(f"{'':<10} {'graft scan (warm, 1 edit)':<28} {r['graft_warm']:>8.3f} {'':>9} {r['graft_warm'] / g:>10.2f}x")
        print(f"{'':<10} {'tree-sitter parse floor':<28} {r['floor']:>8.2f} {'':>9} {r['floor'] / g:>10.2f}x")
        for tool, t in r["tools"].items():
            if t is None:
                print(f"{'':<10} {tool:<28} {'not built here (see the bench notes)':>30}")
                continue
            print(f"{'':<10} {tool:<28} {t['wall']:>8.2f} {t['peak_mib']:>9.0f} {t['wall'] / g:>10.2f}x")
    print()
    print("targets (median of the runs):")
    for r in results:
        g, name = r["graft_cold"], r["corpus"]
        main = name in ("django", "syn+tokio")
        if main:
            for tool, t in r["tools"].items():
                if t is None or tool in ("symilar", "madge"):
                    continue
                if tool == "jscpd-langs":
                    print(
                        f"  [info] {name}: cold scan {g:.2f} s vs jscpd limited to graft's languages {t['wall']:.2f} s "
                        f"({g / t['wall']:.2f}x its time; jscpd tokenises, tree-sitter's parse alone takes "
                        f"{r['floor'] / t['wall']:.2f}x)"
                    )
                    continue
                print(f"  [{verdict(g < t['wall'])}] {name}: cold scan {g:.2f} s faster than {tool} {t['wall']:.2f} s")
        if name == "django":
            combo = [r["tools"].get(t) for t in ("lizard", "jscpd", "pydeps")]
            if all(combo):
                total = sum(t["wall"] for t in combo)
                print(f"  [{verdict(total / g >= 5)}] django: lizard+jscpd+pydeps {total:.2f} s = {total / g:.1f}x the cold scan (target >= 5x)")
        ratio = g / r["floor"]
        cpu_ratio = r["graft_cold_cpu"] / r["floor_cpu"]
        print(
            f"  [{verdict(ratio <= 1.5)}] {name}: cold scan {ratio:.2f}x the parse floor (target <= 1.5x; "
            f"in CPU time {r['graft_cold_cpu']:.2f} s / {r['floor_cpu']:.2f} s = {cpu_ratio:.2f}x)"
        )
        wr = r["graft_warm"] / g
        print(f"  [{verdict(wr <= 0.10)}] {name}: warm re-scan {wr * 100:.1f}% of cold (target <= 10%)")
        print(f"  [{verdict(r['graft_peak_mib'] < 200)}] {name}: peak memory {r['graft_peak_mib']:.0f} MiB (target < 200 MiB)")
    print()
    print("agreement:")
    for r in results:
        a, name = r["agreement"], r["corpus"]
        if "lizard" in a:
            l = a["lizard"]
            print(
                f"  [{verdict(l['found_share'] >= 0.95)}] {name}: functions: graft {l['graft_functions']}, lizard "
                f"{l['lizard_functions']}, lizard's found by graft {l['found']} ({l['found_share'] * 100:.1f}%)"
            )
            print(
                f"  [{verdict(l['ccn_equal_share'] >= 0.95)}] {name}: cyclomatic complexity equal to lizard's for "
                f"{l['ccn_equal']} of {l['lizard_functions']} functions ({l['ccn_equal_share'] * 100:.1f}%, target >= 95%)"
            )
        if "madge" in a:
            m = a["madge"]
            print(f"  [{verdict(m['reported'] == m['madge_cycles'])}] {name}: import cycles madge reports: {m['madge_cycles']}, reported by graft: {m['reported']}")
            for c in m["missing"]:
                print(f"      missing: {' -> '.join(c)}")
        if "jscpd_skip_comments" in a:
            j = a["jscpd_skip_comments"]
            print(
                f"  [{verdict(j['analysed_share'] >= 0.90)}] {name}: jscpd --skip-comments clone pairs in the files graft "
                f"analyses {j['jscpd_pairs'] - j['in_skipped_files']}, found by graft {j['found']} "
                f"({j['analysed_share'] * 100:.1f}%, target >= 90%; {j['in_skipped_files']} more lie in minified bundles, "
                f"which graft reports and skips)"
            )
            print(
                f"      of the pairs missed, {j['below_min_code_tokens']} hold fewer than 50 code tokens on a side "
                f"(jscpd counts the words inside docstrings); without those: {j['comparable_share'] * 100:.1f}%"
            )
            for m in j["missing"][:5]:
                print(f"      missing: {m}")
        if "jscpd" in a:
            j = a["jscpd"]
            print(
                f"  [info] {name}: jscpd (default mode, comment words counted) clone pairs {j['jscpd_pairs']}, found by "
                f"graft {j['found']} ({j['share'] * 100:.1f}%; in the files graft analyses {j['analysed_share'] * 100:.1f}%; "
                f"{j['below_min_code_tokens']} missed pairs under 50 code tokens; without those {j['comparable_share'] * 100:.1f}%)"
            )
    rca = os.path.join(CARGO_ROOT, "FAILED")
    if os.path.exists(rca):
        print()
        print("note: rust-code-analysis-cli could not be built here; see target/bench-cargo/FAILED")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", action="append", choices=list(CORPUS))
    ap.add_argument("--skip-setup", action="store_true", help="corpora and tools are in place")
    args = ap.parse_args()
    if not args.skip_setup:
        fetch_corpora()
        install_tools()
    graft, floor = build_graft()
    results = []
    for name in args.corpus or list(CORPUS):
        results.append(bench_corpus(name, graft, floor, args.runs, args.threads))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "scan-results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print_report(results)


if __name__ == "__main__":
    main()
