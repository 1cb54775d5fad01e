#!/usr/bin/env bash
# Records startup.syms, which build.sh lays out first: the functions the shipped eventer runs
# from its start until its first events are archived, in the order they first ran. They are
# taken from e2e_sls's deployed path (TLS and a token to the apiserver, leader election, the
# ConfigMap checkpoint, the SLS sink), then its watch path (plain HTTP). Needs valgrind.
#
#   eventer-cli/dist/record.sh
#
# Record again when what eventer does at start changes (a new dependency, client or task);
# build.sh says how many of the listed functions it still finds.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "record.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }

bin=$(eventer-cli/dist/build.sh --locked | tail -n 1)
cargo build --release -p eventer-cli --example e2e_sls --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# e2e_sls starts this in eventer's place; RECORD_TO is where callgrind writes. callgrind dumps
# what ran every half second, so the order of the dumps is the order in which functions first
# ran.
cat >"$work/eventer" <<WRAPPER
#!/usr/bin/env bash
pid=\$\$
( for _ in \$(seq 240); do sleep 0.5; kill -0 \$pid 2>/dev/null || exit 0; callgrind_control --dump \$pid >/dev/null 2>&1; done ) &
exec valgrind --tool=callgrind --demangle=no --callgrind-out-file="\$RECORD_TO" "$bin" "\$@"
WRAPPER
chmod +x "$work/eventer"
modes=(deployed watch)
for mode in "${modes[@]}"; do
    RECORD_TO=$work/$mode EVENTER_BIN=$work/eventer \
        "${CARGO_TARGET_DIR:-target}/release/examples/e2e_sls" "$mode" 2000 1 >&2
done

# callgrind names a function once per file, where it first appears (fn= for a caller, cfn=
# for a callee), and by number after that. A recursive call is named <function>'2.
for mode in "${modes[@]}"; do
    for ((dump = 1; dump < 1000; dump++)); do
        [[ -f $work/$mode.$dump ]] || break
        sed -n 's/^c\{0,1\}fn=([0-9]*) \(.*\)/\1/p' "$work/$mode.$dump"
    done
done | sed "s/'[0-9]*$//" | awk '!seen[$0]++' >"$work/ran"
{
    echo "# Functions the shipped eventer runs from its start to its first archived events, in the"
    echo "# order they first ran, each with its size. Written by record.sh; read by build.sh."
    nm -S --defined-only "$bin" | awk -v ran="$work/ran" '
        NF == 4 { size[$4] = $2 }
        END { while ((getline name < ran) > 0) if (name in size) print name, size[name] }'
} >eventer-cli/dist/startup.syms
echo "record.sh: $(grep -vc '^#' eventer-cli/dist/startup.syms) functions in eventer-cli/dist/startup.syms" >&2
