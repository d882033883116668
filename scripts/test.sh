#!/usr/bin/env bash
# Graft's test command: installs what the tests need that a fresh machine
# lacks, then runs every test (unit and integration) with cargo-nextest.
# Usage: scripts/test.sh [extra nextest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: $1 is required ($2)" >&2; exit 1; }; }
need git "the tests drive real git repos"
need python3 "the example targets are Python"
need cargo "https://rustup.rs"
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test.sh: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi

profile=default
[ -n "${CI:-}" ] && profile=ci
exec cargo nextest run --workspace --profile "$profile" "$@"
