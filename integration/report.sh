#!/usr/bin/env bash
# report.sh RESULTS DOC [MARKER]: the scenario × runtime table from RESULTS
# (suite|scenario|runtime|status|note lines) replaces the text between the MARKER markers in DOC
# (default `results`: <!-- results:begin --> ... <!-- results:end -->).
set -euo pipefail
results=$1 doc=$2
marker=${3:-results}
begin="<!-- $marker:begin -->" end="<!-- $marker:end -->"
table=$(mktemp)
trap 'rm -f "$table"' EXIT
{
  echo "Last run: $(date -u +%Y-%m-%d) on $(uname -r), podman $(podman --version | awk '{print $3}')," \
    "containerd $(containerd --version | awk '{print $3}')," \
    "dockerd $(dockerd --version | awk '{print $3}' | tr -d ,), runc $(runc --version | awk 'NR == 1 {print $3}')," \
    "hako $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- crates Cargo.lock 2>/dev/null || echo -modified)."
  echo
  echo "| suite | scenario | hako | runc |"
  echo "|---|---|---|---|"
  awk -F'|' '
    { key = $1 "|" $2; if (!(key in seen)) { seen[key] = 1; order[n++] = key }
      cell[key, $3] = $4 ($5 == "" ? "" : " (" $5 ")") }
    END { for (i = 0; i < n; i++) { split(order[i], k, "|")
            printf "| %s | %s | %s | %s |\n", k[1], k[2], cell[order[i], "hako"], cell[order[i], "runc"] } }
  ' "$results"
} >"$table"
awk -v b="$begin" -v e="$end" -v t="$table" '
  $0 == b { print; while ((getline line < t) > 0) print line; skip = 1; next }
  $0 == e { skip = 0 }
  !skip
' "$doc" >"$doc.new"
grep -qxF "$begin" "$doc" || { rm -f "$doc.new"; echo "report: no '$begin' marker in $doc" >&2; exit 1; }
mv "$doc.new" "$doc"
