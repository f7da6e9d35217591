#!/usr/bin/env bash
# Regenerates the settings table in docs/settings.md from the program's own
# table (`tegami config doc`), between the BEGIN/END markers.
# Usage: scripts/settings-doc.sh [BUILD-DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/tegami" -D "$tmp/data" config doc > "$tmp/table"
/usr/bin/python3 - "$tmp/table" <<'PY'
import pathlib, re, sys
doc = pathlib.Path("docs/settings.md")
table = pathlib.Path(sys.argv[1]).read_text()
text = doc.read_text()
new, n = re.subn(r"(<!-- BEGIN config doc -->\n).*?(<!-- END config doc -->)",
                 lambda m: m.group(1) + table + m.group(2), text, flags=re.S)
if n != 1:
    sys.exit("docs/settings.md lacks the generated table markers")
doc.write_text(new)
PY
