#!/usr/bin/env bash
# Re-creates tests/fixtures/eval/kjv-slice.txt, the perplexity evaluation text: Genesis
# 1-24 of the King James Version (1611, public domain) from Debian's bible-kjv-text
# package, as plain prose: one line per chapter heading, one paragraph per chapter, verse
# numbers removed. The output is byte-for-byte the committed fixture.
#   sudo apt-get install -y bible-kjv bible-kjv-text   # `bible` reads the packed text
#   scripts/fetch-eval-text.sh [OUT]
set -euo pipefail
out=${1:-"$(dirname "$0")/../tests/fixtures/eval/kjv-slice.txt"}
command -v bible >/dev/null || { echo "fetch-eval-text: install bible-kjv and bible-kjv-text first" >&2; exit 1; }
# -l 100000: one verse per line, so verse numbers are a line prefix and nothing wraps.
bible -l 100000 "gen1:1-24:67" | awk '
  /^[A-Za-z0-9 ]+ [0-9]+$/ { if (para != "") print para "\n"; print $0 "\n"; para = ""; next }
  /^ *[0-9]+ / { sub(/^ *[0-9]+ /, ""); para = (para == "" ? $0 : para " " $0); next }
  END { if (para != "") print para }' > "$out.tmp"
mv "$out.tmp" "$out"
echo "fetch-eval-text: wrote $out ($(wc -c < "$out") bytes)" >&2
