#!/usr/bin/env python3
"""Zero-downtime bench: upgrades under `graft run` beside plain restarts.

For each load mode (keep-alive connections; `Connection: close` at 64
concurrent connections, every request a new connection), in one run:

1. `graft run` supervises the example agent (a 300 ms simulated start)
   under steady load from `graft-load`, while 20 good upgrades and 5 bad
   ones (releases that never become ready, and releases that turn
   unhealthy inside their watch window) go through it.
2. The same agent binds the port itself and is stopped and started 25
   times under the same load: what a plain restart does.

It prints, for each: requests, failed requests (refused, reset, timeouts,
non-2xx), p50/p99/max latency inside and outside the switch windows, and
the longest time without an answer; for Graft also the time from a failed
readiness check to keeping the old release, and from a failure in the
watch window to traffic on the last known good release.

Usage: bench/zero_downtime/run.py [--good 20] [--bad 5] [--modes keepalive,close]
Builds graft, graft-load and the agent in release mode. Loopback only.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
GIT_ENV = dict(
    os.environ,
    GIT_AUTHOR_NAME="Bench",
    GIT_AUTHOR_EMAIL="bench@localhost",
    GIT_COMMITTER_NAME="Bench",
    GIT_COMMITTER_EMAIL="bench@localhost",
)
START_DELAY_MS = 300


def sh(args, cwd, env=None, check=True):
    r = subprocess.run(args, cwd=cwd, env=env or GIT_ENV, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def epoch_ms(rfc3339):
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000


def now_ms():
    return time.time() * 1000


def wait_answering(port, timeout=30):
    """Until a fresh connection gets an HTTP answer."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/1.1 200"):
                    return now_ms()
        except OSError:
            pass
        time.sleep(0.005)
    sys.exit(f"bench: nothing answered on port {port}")


class Load:
    def __init__(self, bin_, port, keepalive, connections, work):
        self.stop_file = os.path.join(work, f"stop-{port}")
        self.windows_file = os.path.join(work, f"windows-{port}.json")
        self.out = os.path.join(work, f"load-{port}.json")
        args = [bin_, "--addr", f"127.0.0.1:{port}", "--connections", str(connections),
                "--stop-file", self.stop_file, "--windows-file", self.windows_file, "--out", self.out]
        if not keepalive:
            args.append("--close")
        self.proc = subprocess.Popen(args)

    def finish(self, windows):
        with open(self.windows_file, "w") as f:
            json.dump(windows, f)
        open(self.stop_file, "w").close()
        self.proc.wait(timeout=120)
        with open(self.out) as f:
            return json.load(f)


def make_target(work, port, agent_bin):
    repo = os.path.join(work, f"agent-{port}")
    shutil.copytree(os.path.join(ROOT, "examples", "agent"), repo, ignore=shutil.ignore_patterns("target"))
    with open(os.path.join(repo, "VERSION"), "w") as f:
        f.write("v1\n")
    with open(os.path.join(repo, "behavior"), "w") as f:
        f.write(f"start_delay_ms={START_DELAY_MS}\n")
    with open(os.path.join(repo, ".gitignore"), "w") as f:
        f.write("/target\n/bin\n")
    with open(os.path.join(repo, "graft.toml"), "w") as f:
        f.write(f"""[target]
branch = "main"

[[gates]]
name = "check"
kind = "test"
command = "test -s VERSION"

[run]
command = "bin/agent"
build = "mkdir -p bin && cp {agent_bin} bin/agent"
artifacts = ["bin/agent"]
drain_timeout = "10s"
keep_releases = 3

[[run.listen]]
name = "http"
address = "127.0.0.1:{port}"

[health]
ready = "http"
interval = "100ms"
failures = 2
start_timeout = "2s"

[watch]
window = "2s"
""")
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "v1"], repo)
    return repo


def bench_graft(graft, load_bin, agent_bin, work, keepalive, conns, good, bad):
    port = free_port()
    repo = make_target(work, port, agent_bin)
    daemon = subprocess.Popen([graft, "run", "--json"], cwd=repo, stdout=subprocess.PIPE,
                              stderr=open(os.path.join(work, f"graft-run-{port}.log"), "w"), text=True)
    line = daemon.stdout.readline()
    if "live_commit" not in line:
        sys.exit(f"bench: graft run did not start: {line}")
    load = Load(load_bin, port, keepalive, conns, work)
    time.sleep(2)
    plan = []
    bad_every = (good + bad) // bad if bad else 0
    n_bad = 0
    for i in range(good + bad):
        is_bad = bad and (i + 1) % bad_every == 0 and n_bad < bad
        if is_bad:
            n_bad += 1
            behavior = "ready=never" if n_bad % 2 else "unhealthy_after_ms=800"
            plan.append((f"bad{i}", f"start_delay_ms={START_DELAY_MS}\\n{behavior}\\n", True))
        else:
            plan.append((f"v{i + 2}", f"start_delay_ms={START_DELAY_MS}\\n", False))
    outcomes = []
    for version, behavior, is_bad in plan:
        edits = os.path.join(work, f"edits-{port}.json")
        with open(edits, "w") as f:
            f.write(f'[{{"op":"replace","path":"VERSION","content":"{version}\\n"}},'
                    f'{{"op":"replace","path":"behavior","content":"{behavior}"}}]')
        r = subprocess.run([graft, "upgrade", "--edits", edits, "--json"], cwd=repo, capture_output=True, text=True)
        report = json.loads(r.stdout)
        want = "rolled_back" if is_bad else "promoted"
        if report["state"] != want:
            sys.exit(f"bench: upgrade to {version} ended {report['state']}, not {want}: {report.get('failure')}")
        outcomes.append(report)
        time.sleep(0.3)
    time.sleep(1.5)

    db = sqlite3.connect(os.path.join(repo, ".graft", "ledger.db"))
    instances = [(epoch_ms(s), epoch_ms(e) if e else None)
                 for s, e in db.execute("SELECT started_at, stopped_at FROM instances ORDER BY id")]
    # A switch window: from a new process's start to the moment only one
    # process serves again (the old one drained, or the new one killed).
    windows = []
    for start, _ in instances[1:]:
        ends = [e for s, e in instances if e and e >= start]
        end = min(ends) if ends else now_ms()
        windows.append([start, end + 100])
    decided = []
    switch_back = []
    for u in outcomes:
        for step, detail in db.execute(
                "SELECT step, detail FROM steps WHERE upgrade_id = ? AND phase = 'end' AND step IN ('deploy', 'watch')",
                (u["id"],)):
            d = json.loads(detail).get("detail") or {}
            if "decided_ms" in d:
                decided.append(d["decided_ms"])
            if d.get("switch_back_ms") is not None:
                switch_back.append(d["switch_back_ms"])
    result = load.finish(windows)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=60)
    result["decided_ms"] = decided
    result["switch_back_ms"] = switch_back
    result["switches"] = len(windows)
    return result


def bench_plain(load_bin, agent_bin, work, keepalive, conns, restarts):
    port = free_port()
    home = os.path.join(work, f"plain-{port}")
    os.makedirs(home)
    with open(os.path.join(home, "VERSION"), "w") as f:
        f.write("v1\n")
    with open(os.path.join(home, "behavior"), "w") as f:
        f.write(f"start_delay_ms={START_DELAY_MS}\n")

    def start():
        return subprocess.Popen([agent_bin, "--listen", f"127.0.0.1:{port}"], cwd=home,
                                stderr=subprocess.DEVNULL)

    agent = start()
    wait_answering(port)
    load = Load(load_bin, port, keepalive, conns, work)
    time.sleep(2)
    windows = []
    for _ in range(restarts):
        t0 = now_ms()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        agent = start()
        ready = wait_answering(port)
        windows.append([t0, ready + 100])
        time.sleep(1.0)
    time.sleep(1)
    result = load.finish(windows)
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=60)
    result["switches"] = len(windows)
    return result


def row(name, r):
    a, i, o = r["all"], r["inside"], r["outside"]
    return (f"  {name:<26}{a['requests']:>10}{a['failed']:>8}{a['refused']:>8}{a['reset']:>7}{a['timeout']:>8}{a['non_2xx']:>8}"
            f"   {i['p50_ms']:>6.2f} {i['p99_ms']:>7.2f} {i['max_ms']:>8.1f}"
            f"   {o['p50_ms']:>6.2f} {o['p99_ms']:>7.2f} {o['max_ms']:>8.1f}   {r['longest_gap_ms']:>6}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--good", type=int, default=20)
    ap.add_argument("--bad", type=int, default=5)
    ap.add_argument("--modes", default="keepalive,close")
    ap.add_argument("--keepalive-connections", type=int, default=8)
    ap.add_argument("--close-connections", type=int, default=64)
    args = ap.parse_args()

    print("building graft, graft-load and the example agent (release)...", file=sys.stderr)
    sh(["cargo", "build", "--release", "--quiet", "-p", "graft", "-p", "graft-load", "-p", "agent"], ROOT,
       env=os.environ)
    rel = os.path.join(TARGET, "release")
    graft, load_bin, agent_bin = (os.path.join(rel, n) for n in ("graft", "graft-load", "agent"))
    work = tempfile.mkdtemp(prefix="graft-bench-zd-")
    ok = True
    results = {}
    try:
        print(f"Zero-downtime bench: {os.cpu_count()} cores; the agent takes {START_DELAY_MS} ms to start;"
              f" {args.good} good + {args.bad} bad upgrades under graft run, {args.good + args.bad} plain restarts\n")
        for mode in args.modes.split(","):
            keepalive = mode == "keepalive"
            conns = args.keepalive_connections if keepalive else args.close_connections
            label = f"keep-alive, {conns} connections" if keepalive else f"Connection: close, {conns} concurrent connections"
            g = bench_graft(graft, load_bin, agent_bin, work, keepalive, conns, args.good, args.bad)
            p = bench_plain(load_bin, agent_bin, work, keepalive, conns, args.good + args.bad)
            results[mode] = {"graft": g, "plain": p}
            print(f"{label}")
            print(f"  {'':<26}{'requests':>10}{'failed':>8}{'refused':>8}{'reset':>7}{'timeout':>8}{'non-2xx':>8}"
                  f"   {'inside switch windows (ms)':>24}   {'outside (ms)':>24}   {'longest':>6}")
            print(f"  {'':<26}{'':>49}   {'p50':>6} {'p99':>7} {'max':>8}   {'p50':>6} {'p99':>7} {'max':>8}   {'gap ms':>6}")
            print(row(f"graft run ({g['switches']} switches)", g))
            print(row(f"stop-and-start ({p['switches']})", p))
            failed_ok = g["all"]["failed"] == 0
            steady = g["outside"]["p99_ms"]
            p99_ok = g["inside"]["p99_ms"] <= 2 * steady if steady > 0 else True
            ok &= failed_ok and p99_ok
            print(f"  target: 0 failed requests under graft -> {'PASS' if failed_ok else 'FAIL'} ({g['all']['failed']})")
            print(f"  target: p99 in switches <= 2x steady p99 -> {'PASS' if p99_ok else 'FAIL'}"
                  f" ({g['inside']['p99_ms']:.2f} ms vs {steady:.2f} ms, {g['inside']['p99_ms'] / steady if steady else 0:.2f}x)")
            if g["decided_ms"]:
                worst = max(g["decided_ms"])
                good_d = worst < 1000
                ok &= good_d
                print(f"  failed readiness -> old release kept: max {worst} ms over {len(g['decided_ms'])}"
                      f" (target < 1000 ms) -> {'PASS' if good_d else 'FAIL'}")
            if g["switch_back_ms"]:
                worst = max(g["switch_back_ms"])
                good_s = worst < 1000 + START_DELAY_MS
                ok &= good_s
                print(f"  watch-window failure -> traffic on the last known good release: max {worst} ms over"
                      f" {len(g['switch_back_ms'])}, including its {START_DELAY_MS} ms start"
                      f" (target < 1000 ms + start) -> {'PASS' if good_s else 'FAIL'}")
            print(f"  stop-and-start: {p['all']['failed']} failed requests, longest time without an answer"
                  f" {p['longest_gap_ms']} ms (the agent's own start is {START_DELAY_MS} ms)\n")
        out_dir = os.path.join(ROOT, "bench", "out")
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "zero_downtime.json"), "w") as f:
            json.dump(results, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
