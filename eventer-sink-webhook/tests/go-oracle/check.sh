#!/usr/bin/env bash
# Renders the template table (../data/templates.json) with Go's own text/template and
# fails if any body or error differs from the table's expectation: the table the Rust
# engine is tested against is Go's output, not ours. `--write` refreshes the table.
set -euo pipefail
cd "$(dirname "$0")"
table=../data/templates.json
out=$(TZ=UTC GOFLAGS=-mod=mod go run . < "$table")
python3 - "$table" "$out" "${1:-}" <<'PY'
import json, sys
path, out, mode = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
table = json.load(open(path))
got = {r["name"]: r for r in out}
bad = 0
for case in table["cases"]:
    r = got[case["name"]]
    want = {k: case[k] for k in ("body", "error") if k in case}
    have = {k: r[k] for k in ("body", "error") if k in r}
    if mode == "--write":
        case.pop("body", None)
        case.pop("error", None)
        case.update(have)
    elif want != have:
        bad += 1
        print(f"{case['name']}: table {want!r}, Go {have!r}")
if mode == "--write":
    with open(path, "w") as f:
        json.dump(table, f, ensure_ascii=False, indent=1)
        f.write("\n")
elif bad:
    sys.exit(f"{bad} of {len(table['cases'])} cases differ from Go's text/template")
else:
    print(f"go-oracle: {len(table['cases'])} cases match Go's text/template")
PY
