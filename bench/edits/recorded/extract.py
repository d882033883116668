#!/usr/bin/env python3
"""Write the recorded part of the bench/edits corpus from a published source.

The source: aider's chat log of its own development, `tests/fixtures/
chat-history.md` in the aider-chat 0.86.2 sdist on PyPI (Apache-2.0). It
holds the replies real models gave (claude-3-5-sonnet-20240620, gpt-4o,
gpt-4o-mini, deepseek-coder, ...) in SEARCH/REPLACE blocks, each session
opened by the model's name and aider's version, and each reply followed by
aider's own verdict ("Applied edit to ...").

A reply becomes a case when this script can say, without Graft, what must
come of it:

- aider reported it applied;
- its blocks are in the plain form (path line, ``` fence, SEARCH, =======,
  REPLACE; aider asked for `<source>` fences when a file held ```, which
  Graft's prompt never does, so those replies are left out);
- every file it edits is in the aider-chat wheel released just before the
  session's version (vX.Y.Z-dev → X.Y.(Z-1)), and every SEARCH text is
  found there exactly once, in order. The expected file is that file with
  each SEARCH replaced by its REPLACE, computed here with str.replace.

The file is the released one, not the developer's tree of that minute:
where the two differed in the edited lines the reply does not match and
is left out, so a left-out reply says nothing about the model. Cases
whose files together exceed --max-bytes are left out to keep the
repository small, except for models that have few cases.

Usage: extract.py [--cache DIR] [--max-bytes N] [OUT_DIR]
(pip downloads the sdist and the wheels into the cache, target/edits-recorded
by default; OUT_DIR defaults to bench/edits/corpus/recorded).
"""

import argparse
import collections
import hashlib
import os
import re
import subprocess
import sys
import tarfile
import zipfile

HISTORY_VERSION = "0.86.2"
HISTORY_PATH = f"aider_chat-{HISTORY_VERSION}/tests/fixtures/chat-history.md"
LICENSE_PATH = f"aider_chat-{HISTORY_VERSION}/LICENSE.txt"

BLOCK = re.compile(
    r"^(?P<path>[^\n]*)\n```[^\n]*\n<<<<<<< SEARCH\n(?P<search>.*?)^=======\n"
    r"(?P<replace>.*?)^>>>>>>> REPLACE\n```\n",
    re.S | re.M,
)


def pip_download(cache, spec, binary):
    os.makedirs(cache, exist_ok=True)
    kind = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", cache, *kind, spec],
        check=True,
    )


def release_before(dev):
    """The release a `vX.Y.Z-dev` session's tree grew from."""
    m = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)(-dev)?", dev)
    a, b, c = (int(x) for x in m.groups()[:3])
    if m.group(4):
        c -= 1
    return f"{a}.{b}.{c}"


def sessions_of(text):
    """Sessions of the chat log: start, aider version, model, and each
    user message with the reply after it and aider's lines after that."""
    lines = text.split("\n")
    sessions = []
    cur = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("# aider chat started at "):
            cur = {"start": line[len("# aider chat started at "):].strip(), "version": None, "model": None, "replies": []}
            sessions.append(cur)
            i += 1
            continue
        if cur is None:
            i += 1
            continue
        m = re.match(r"> Aider (v[\d.]+(?:-dev)?)\s*$", line)
        if m and cur["version"] is None:
            cur["version"] = m.group(1)
        m = re.match(r"> Models?: (\S+?)⚡? .*?edit format", line)
        if m and cur["model"] is None:
            cur["model"] = m.group(1)
        if line.startswith("#### "):
            j = i
            while j < len(lines) and lines[j].startswith("####"):
                j += 1
            k = j
            while k < len(lines) and not (
                lines[k].startswith("> ") or lines[k] == ">" or lines[k].startswith("#### ")
                or lines[k].startswith("# aider chat started")
            ):
                k += 1
            after = k
            while after < len(lines) and (lines[after].startswith(">") or lines[after] == ""):
                after += 1
            cur["replies"].append({
                "line": j + 1,
                "reply": "\n".join(lines[j:k]).strip("\n") + "\n",
                "verdict": "\n".join(lines[k:after]),
            })
            i = k
            continue
        i += 1
    return sessions


def expected_files(reply, wheel):
    """The files the reply edits, before and after, or why not."""
    if reply.count("<<<<<<< SEARCH") == 0:
        return None, "no blocks"
    blocks = list(BLOCK.finditer(reply))
    if len(blocks) != reply.count("<<<<<<< SEARCH"):
        return None, "not the plain block form"
    files = {}
    for b in blocks:
        path = b.group("path").strip()
        if path not in files:
            try:
                text = wheel.read(path).decode("utf-8")
            except KeyError:
                return None, "a file not in the wheel"
            files[path] = [text, text]
        search, replace = b.group("search"), b.group("replace")
        if search == "":
            return None, "an empty SEARCH"
        if files[path][1].count(search) != 1:
            return None, "a SEARCH not found exactly once in the released file"
        files[path][1] = files[path][1].replace(search, replace, 1)
    for before, after in files.values():
        for text in (before, after):
            if not text.endswith("\n") or "\r" in text or "\n@@@ " in text or text.startswith("@@@ "):
                return None, "a file the case format cannot hold"
    if "\n@@@ " in reply or reply.startswith("@@@ "):
        return None, "a reply the case format cannot hold"
    return files, None


def main():
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(root, "target/edits-recorded"))
    ap.add_argument("--max-bytes", type=int, default=24 * 1024)
    ap.add_argument("out", nargs="?", default=os.path.join(root, "bench/edits/corpus/recorded"))
    args = ap.parse_args()

    sdist = os.path.join(args.cache, f"aider_chat-{HISTORY_VERSION}.tar.gz")
    if not os.path.exists(sdist):
        pip_download(args.cache, f"aider-chat=={HISTORY_VERSION}", binary=False)
    with tarfile.open(sdist) as tar:
        history = tar.extractfile(HISTORY_PATH).read().decode("utf-8")
        license_text = tar.extractfile(LICENSE_PATH).read().decode("utf-8")
    history_sha = hashlib.sha256(history.encode("utf-8")).hexdigest()

    sessions = sessions_of(history)
    wheels = {}
    left_out = collections.Counter()
    found = []
    for s in sessions:
        for r in s["replies"]:
            if "<<<<<<< SEARCH" not in r["reply"]:
                continue
            if "Applied edit to" not in r["verdict"]:
                left_out["aider did not report it applied"] += 1
                continue
            if not s["version"] or not s["model"]:
                left_out["the session names no version or model"] += 1
                continue
            release = release_before(s["version"])
            if release not in wheels:
                path = os.path.join(args.cache, f"aider_chat-{release}-py3-none-any.whl")
                if not os.path.exists(path):
                    pip_download(args.cache, f"aider-chat=={release}", binary=True)
                wheels[release] = zipfile.ZipFile(path)
            files, why = expected_files(r["reply"], wheels[release])
            if files is None:
                left_out[why] += 1
                continue
            found.append((s, r, release, files))

    per_model = collections.Counter(s["model"] for s, *_ in found)
    kept = []
    for s, r, release, files in found:
        size = sum(len(before) for before, _ in files.values())
        if size > args.max_bytes and per_model[s["model"]] > 5:
            left_out[f"files over {args.max_bytes} bytes"] += 1
            continue
        kept.append((s, r, release, files))

    os.makedirs(args.out, exist_ok=True)
    for name in os.listdir(args.out):
        if name.endswith(".txt"):
            os.remove(os.path.join(args.out, name))
    for s, r, release, files in kept:
        first = next(iter(files))
        stem = os.path.splitext(os.path.basename(first))[0].replace("_", "-")
        name = f"aider-{r['line']:05d}-{stem}.txt"
        out = [
            "expect: apply",
            "format: search-replace",
            f"provenance: recorded:{s['model']}",
            f"source: aider-chat {HISTORY_VERSION} sdist, tests/fixtures/chat-history.md line {r['line']}"
            f" (session {s['start']}, aider {s['version']}); files from the aider-chat {release} wheel",
            "slip: as the model wrote it; aider reported it applied",
        ]
        for path, (before, _) in files.items():
            out.append(f"@@@ file {path}")
            out.append(before.rstrip("\n"))
        out.append("@@@ reply")
        out.append(r["reply"].rstrip("\n"))
        for path, (_, after) in files.items():
            out.append(f"@@@ after {path}")
            out.append(after.rstrip("\n"))
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")
    with open(os.path.join(args.out, "LICENSE-aider.txt"), "w", encoding="utf-8") as f:
        f.write(license_text)

    replies = sum(1 for s in sessions for r in s["replies"] if "<<<<<<< SEARCH" in r["reply"])
    print(f"chat-history.md sha256 {history_sha}")
    print(f"{replies} replies with SEARCH/REPLACE blocks; {len(kept)} written to {os.path.relpath(args.out, root)}")
    for model, n in sorted(collections.Counter(s["model"] for s, *_ in kept).items()):
        print(f"  {n:3d} {model}")
    print("left out:")
    for why, n in left_out.most_common():
        print(f"  {n:3d} {why}")


if __name__ == "__main__":
    main()
