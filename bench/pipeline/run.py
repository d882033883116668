#!/usr/bin/env python3
"""Graft pipeline bench.

Prints, side by side in one run:

1. Graft's own overhead per upgrade (wall time of `graft upgrade` minus the
   time spent inside gate commands) on a generated repo of 10,000 files,
   beside the same edit done by hand with `git apply && git commit`.
   Target: overhead under 300 ms.

2. For a small cargo project, the build time of a staged upgrade (the
   `cargo build` gate in Graft's persistent staging worktree) beside a plain
   incremental `cargo build` of the same edit in the main checkout.
   Target: staged rebuild at most 1.5x the main-tree build.

Usage: bench/pipeline/run.py [--graft PATH] [--files N] [--runs N]
Builds graft in release mode unless --graft is given. Needs git, cargo,
python3. Writes only under a temporary directory.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIT_ENV = dict(
    os.environ,
    GIT_AUTHOR_NAME="Bench",
    GIT_AUTHOR_EMAIL="bench@localhost",
    GIT_COMMITTER_NAME="Bench",
    GIT_COMMITTER_EMAIL="bench@localhost",
)


def sh(args, cwd, check=True, env=None, capture=True):
    r = subprocess.run(args, cwd=cwd, env=env or GIT_ENV, capture_output=capture, text=True)
    if check and r.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed in {cwd}:\n{r.stdout}\n{r.stderr}")
    return r


def git_init(path):
    sh(["git", "init", "--quiet", "--initial-branch=main"], path)
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "--quiet", "-m", "initial"], path)


def graft_upgrade(graft, repo, edits, name):
    """Run one upgrade; return (wall ms, report)."""
    path = os.path.join(os.path.dirname(repo), name)
    with open(path, "w") as f:
        json.dump(edits, f)
    t0 = time.perf_counter()
    r = sh([graft, "upgrade", "--edits", path, "--json"], repo, check=False)
    wall = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        sys.exit(f"bench: graft upgrade failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return wall, json.loads(r.stdout)


def module_text(i, variant=0):
    lines = [f'"""Module {i}."""', ""]
    for j in range(8):
        lines += [f"def f{j}(x):", f"    return x * {j} + {i} + {variant}", "", ""]
    return "\n".join(lines)


def bench_overhead(graft, work, files, runs):
    repo = os.path.join(work, "big")
    os.makedirs(repo)
    per_dir = 100
    for i in range(files):
        d = os.path.join(repo, f"pkg{i // per_dir:03d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"mod{i % per_dir:03d}.py"), "w") as f:
            f.write(module_text(i))
    with open(os.path.join(repo, "graft.toml"), "w") as f:
        f.write('[target]\nbranch = "main"\n\n[[gates]]\nname = "check"\nkind = "custom"\ncommand = "true"\n')
    git_init(repo)
    ref = os.path.join(work, "big-ref")
    sh(["git", "clone", "--quiet", repo, ref], work)

    def edit(i, variant):
        path = f"pkg{i // per_dir:03d}/mod{i % per_dir:03d}.py"
        return path, [{"op": "replace", "path": path, "content": module_text(i, variant)}]

    rows = []
    for k in range(runs + 1):
        path, edits = edit(k * 97 % files, k + 1)
        wall, report = graft_upgrade(graft, repo, edits, f"edit{k}.json")
        if report["state"] != "promoted":
            sys.exit(f"bench: upgrade {k} ended {report['state']}: {report.get('failure')}")
        overhead = wall - report["gate_command_ms"]
        # The same edit by hand: apply the diff and commit, no gates.
        diff = sh(["git", "show", "--format=", report["landed_commit"]], repo).stdout
        patch = os.path.join(work, f"ref{k}.diff")
        with open(patch, "w") as f:
            f.write(diff)
        t0 = time.perf_counter()
        sh(["git", "apply", patch], ref)
        sh(["git", "commit", "--quiet", "-am", f"edit {k}"], ref)
        manual = (time.perf_counter() - t0) * 1000
        rows.append((overhead, manual))
    return rows


CARGO_MODULES = 40


def rust_module(i, variant=0):
    body = [f"//! Generated module {i}.", ""]
    for j in range(30):
        body += [
            f"pub fn f{j}(x: u64) -> u64 {{",
            f"    let v: Vec<u64> = (0..x).map(|k| k.wrapping_mul({j + 1}) ^ {i + variant}).collect();",
            f"    v.iter().fold({variant}u64, |a, b| a.wrapping_add(*b))",
            "}",
            "",
        ]
    body += [
        "#[derive(Debug, Clone, PartialEq)]",
        f"pub struct S{i} {{ pub a: u64, pub b: String }}",
        "",
        f"impl S{i} {{",
        f"    pub fn new(a: u64) -> Self {{ S{i} {{ a, b: format!(\"{{a}}-{i}\") }} }}",
        "}",
    ]
    return "\n".join(body) + "\n"


def bench_cargo(graft, work, runs):
    repo = os.path.join(work, "crate")
    os.makedirs(os.path.join(repo, "src"))
    with open(os.path.join(repo, "Cargo.toml"), "w") as f:
        f.write('[package]\nname = "benchcrate"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n')
    with open(os.path.join(repo, ".gitignore"), "w") as f:
        f.write("/target\n")
    lib = [f"pub mod m{i};" for i in range(CARGO_MODULES)]
    with open(os.path.join(repo, "src", "lib.rs"), "w") as f:
        f.write("\n".join(lib) + "\n")
    for i in range(CARGO_MODULES):
        with open(os.path.join(repo, "src", f"m{i}.rs"), "w") as f:
            f.write(rust_module(i))
    with open(os.path.join(repo, "graft.toml"), "w") as f:
        f.write('[target]\nbranch = "main"\n\n[[gates]]\nname = "build"\nkind = "build"\ncommand = "cargo build --quiet"\ntimeout = "10m"\n')
    git_init(repo)
    env = dict(GIT_ENV, CARGO_TERM_COLOR="never")
    env.pop("CARGO_TARGET_DIR", None)
    sh(["cargo", "build", "--quiet"], repo, env=env)

    def upgrade(k):
        edits = [{"op": "replace", "path": f"src/m{k}.rs", "content": rust_module(k, 1000 + k)}]
        wall, report = graft_upgrade(graft, repo, edits, f"cargo{k}.json")
        if report["state"] != "promoted":
            sys.exit(f"bench: cargo upgrade {k} ended {report['state']}: {report.get('failure')}")
        staged = next(g["duration_ms"] for g in report["gates"] if g["name"] == "build")
        # The landing updated the main checkout: build the same edit there.
        t0 = time.perf_counter()
        sh(["cargo", "build", "--quiet"], repo, env=env)
        main = (time.perf_counter() - t0) * 1000
        return staged, main

    first = upgrade(0)  # staging's first build is a full one
    rows = [upgrade(k) for k in range(1, runs + 1)]
    return first, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graft", help="the graft binary (default: build it in release mode)")
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    graft = args.graft
    if not graft:
        print("building graft (release)...", file=sys.stderr)
        sh(["cargo", "build", "--release", "--quiet", "--bin", "graft"], ROOT, capture=False)
        graft = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "graft")
    graft = os.path.abspath(graft)
    work = tempfile.mkdtemp(prefix="graft-bench-pipeline-")
    ok = True
    try:
        print(f"Graft pipeline bench: {os.cpu_count()} cores, {graft}\n")
        rows = bench_overhead(graft, work, args.files, args.runs)
        cold, later = rows[0], rows[1:]
        med_g = statistics.median(r[0] for r in later)
        med_m = statistics.median(r[1] for r in later)
        print(f"1. Overhead per upgrade, generated repo of {args.files} files (one file changed each time)")
        print(f"   {'':34}{'graft':>10}{'git apply+commit':>20}{'ratio':>8}")
        print(f"   {'first upgrade (creates staging)':34}{cold[0]:>8.0f} ms{cold[1]:>17.0f} ms")
        print(f"   {f'later upgrades, median of {len(later)}':34}{med_g:>8.0f} ms{med_m:>17.0f} ms{med_g / med_m:>7.1f}x")
        verdict = med_g < 300
        ok &= verdict
        print(f"   target: graft overhead under 300 ms -> {'PASS' if verdict else 'FAIL'} ({med_g:.0f} ms)")
        print("   (graft's overhead includes the journal, staging reset, the parse gate,")
        print("    commit, fast-forward landing, tag and ledger writes)\n")

        first, crows = bench_cargo(graft, work, max(3, args.runs // 2 + 1))
        med_s = statistics.median(r[0] for r in crows)
        med_b = statistics.median(r[1] for r in crows)
        print(f"2. Rebuild after a one-module edit, cargo project of {CARGO_MODULES} modules")
        print(f"   {'':34}{'staged build':>14}{'main-tree build':>18}{'ratio':>8}")
        print(f"   {'first upgrade (staging is cold)':34}{first[0] / 1000:>12.2f} s{first[1] / 1000:>16.2f} s")
        print(f"   {f'later upgrades, median of {len(crows)}':34}{med_s / 1000:>12.2f} s{med_b / 1000:>16.2f} s{med_s / med_b:>7.2f}x")
        verdict = med_s <= 1.5 * med_b
        ok &= verdict
        print(f"   target: staged rebuild at most 1.5x the main-tree build -> {'PASS' if verdict else 'FAIL'} ({med_s / med_b:.2f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
