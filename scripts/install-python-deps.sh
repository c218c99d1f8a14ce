#!/usr/bin/env bash
# Installs the Python packages the tests need (pinned), only when missing: the official
# openai client and httpx for the server's integration tests (tests/server/), jsonschema
# for the structured-output tests (tests/grammar/). httpx is pinned on its own: openai
# 3.63.0 depends on httpx2, not httpx, so it no longer brings the module the tests import.
set -euo pipefail
cd "$(dirname "$0")/.."
if python3 - <<'PY' 2>/dev/null; then exit 0; fi
import importlib.metadata as m
assert m.version("openai") == "3.63.0"
assert m.version("httpx") == "0.28.1"
assert m.version("jsonschema") == "4.26.0"
PY
echo "install-python-deps: installing openai==3.63.0 httpx==0.28.1 jsonschema==4.26.0" >&2
python3 -m pip install --quiet --disable-pip-version-check "openai==3.63.0" "httpx==0.28.1" "jsonschema==4.26.0" >&2
