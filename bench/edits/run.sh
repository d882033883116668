#!/usr/bin/env bash
# bench/edits: the corpus of LLM replies, each applied by Graft's reply →
# change → policy path. Two parts, reported apart: hand-written replies
# (search/replace blocks, unified diffs, whole files, written in the shape
# of the slips models make) and recorded ones (bench/edits/corpus/recorded,
# what real models answered, written by bench/edits/recorded/extract.py
# from aider's published chat log). Prints, per part, the share of
# well-formed replies applied exactly and of ambiguous or hostile ones
# refused. Target: 100 % and 100 %. Usage: bench/edits/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo run --quiet -p graft-provider --example edits -- bench/edits/corpus
