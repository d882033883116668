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

# ruff, for the autofix provider's tests: a venv under target/, made once.
RUFF_VERSION=0.14.14
tools="$PWD/target/tools"
ruff=""
for c in "$tools/venv/bin/ruff" "$tools/pip/bin/ruff"; do
    if "$c" --version 2>/dev/null | grep -q "$RUFF_VERSION"; then ruff="$c"; break; fi
done
if [ -z "$ruff" ]; then
    echo "test.sh: installing ruff $RUFF_VERSION into $tools" >&2
    if python3 -m venv "$tools/venv" 2>/dev/null; then
        ruff="$tools/venv/bin/ruff"
        "$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check "ruff==$RUFF_VERSION"
    else
        # A Python without the venv module: a plain target directory.
        ruff="$tools/pip/bin/ruff"
        python3 -m pip install --quiet --disable-pip-version-check --target "$tools/pip" "ruff==$RUFF_VERSION"
    fi
fi
export GRAFT_TEST_RUFF="$ruff"

# The control plane's tests drive the API with tools nobody here wrote:
# the official MCP Python SDK, schemathesis, prometheus_client's parser.
# The README's recipes run real apps under gunicorn and uvicorn.
PY_TOOLS="mcp==2.3.0 schemathesis==4.32.5 prometheus_client==0.26.0 playwright==1.65.2 gunicorn==27.0.1 uvicorn==0.55.0"
PY_IMPORTS="mcp, schemathesis, prometheus_client, playwright, gunicorn, uvicorn"
if [ -x "$tools/venv/bin/python" ]; then
    py="$tools/venv/bin/python"
    if ! "$py" -c "import $PY_IMPORTS" 2>/dev/null; then
        echo "test.sh: installing $PY_TOOLS into $tools/venv" >&2
        # `python -m pip`, not the pip script: a venv copied from elsewhere
        # keeps scripts that point at the original.
        "$py" -m pip install --quiet --disable-pip-version-check $PY_TOOLS
    fi
else
    # No venv module: the same target directory as ruff, on PYTHONPATH.
    py="$(command -v python3)"
    if ! PYTHONPATH="$tools/pip" "$py" -c "import $PY_IMPORTS" 2>/dev/null; then
        echo "test.sh: installing $PY_TOOLS into $tools/pip" >&2
        python3 -m pip install --quiet --disable-pip-version-check --target "$tools/pip" $PY_TOOLS
    fi
    export PYTHONPATH="$tools/pip${PYTHONPATH:+:$PYTHONPATH}"
fi
export GRAFT_TEST_PYTHON="$py"
# The README's signed-request example runs for real: it needs curl and
# openssl. The dashboard's tests drive Debian's chromium (with Playwright,
# above: it uses the system browser, nothing is downloaded).
for tool in curl openssl chromium; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "test.sh: installing $tool" >&2
            apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null
        else
            echo "test.sh: $tool is required (curl and openssl: the README's curl example is tested; chromium: the dashboard's browser tests): install it" >&2
            exit 1
        fi
    fi
done

profile=default
[ -n "${CI:-}" ] && profile=ci
exec cargo nextest run --workspace --profile "$profile" "$@"
