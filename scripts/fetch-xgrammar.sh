#!/usr/bin/env bash
# Fetches XGrammar's C++ sources (the grammar engine behind src/grammar; Apache-2.0) from
# its PyPI source package, pinned by version and sha256, and extracts them into
# ~/.cache/upg-deps/xgrammar-<version>/ (or $UPG_DEPS_DIR/...), which CMake builds as a
# static library of ours (CMakeLists.txt, upg_xgrammar). A no-op when that folder is
# already complete. Prints nothing on success unless it downloads.
set -euo pipefail

VERSION=0.2.9
SHA256=87b466bca2475e29bb0323abc62c6c33cbcbcff47e5fb800a3e2099ac9620b90
# The sdist's address on PyPI's file host (pypi.org/simple/xgrammar/); fetched directly
# because `pip download --no-binary` would first install the package's build back end to
# read its metadata, which takes minutes.
URL=https://files.pythonhosted.org/packages/3a/2f/5bf8e8fa6619cff534932f79b0abc81a417d354bc5093252c1a6081d0a93/xgrammar-$VERSION.tar.gz

deps=${UPG_DEPS_DIR:-$HOME/.cache/upg-deps}
dest=$deps/xgrammar-$VERSION
# The marker is written last, so a half-extracted folder is never taken as complete.
[ -f "$dest/.upg-complete" ] && exit 0

mkdir -p "$deps"
tmp=$(mktemp -d "$deps/.xgrammar.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch-xgrammar: downloading xgrammar $VERSION (source package) from PyPI" >&2
curl -fsSL --retry 3 -o "$tmp/xg.tar.gz" "$URL"
if ! echo "$SHA256  $tmp/xg.tar.gz" | sha256sum --check --status; then
  echo "fetch-xgrammar: sha256 mismatch for xgrammar-$VERSION.tar.gz" >&2
  exit 1
fi
# Only what the C++ library needs: its sources, headers, and the bundled header-only
# picojson and dlpack (the Python, web and test folders stay out).
tar -xzf "$tmp/xg.tar.gz" -C "$tmp" \
  "xgrammar-$VERSION/cpp" "xgrammar-$VERSION/include" "xgrammar-$VERSION/LICENSE" "xgrammar-$VERSION/NOTICE" \
  "xgrammar-$VERSION/3rdparty/picojson" "xgrammar-$VERSION/3rdparty/dlpack/include"
touch "$tmp/xgrammar-$VERSION/.upg-complete"
rm -rf "$dest"
mv "$tmp/xgrammar-$VERSION" "$dest"
echo "fetch-xgrammar: $dest ready" >&2
