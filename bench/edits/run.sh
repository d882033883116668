#!/usr/bin/env bash
# bench/edits: the corpus of recorded LLM replies (search/replace blocks,
# unified diffs, whole files, with the slips models make), each applied by
# Graft's reply → change → policy path; prints the share of well-formed
# replies applied exactly and of ambiguous or hostile ones refused.
# Target: 100 % and 100 %. Usage: bench/edits/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo run --quiet -p graft-provider --example edits -- bench/edits/corpus
