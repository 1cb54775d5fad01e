#!/usr/bin/env bash
# Builds the shipped `eventer` binary, as the Dockerfile does:
# - the `dist` profile (whole-program optimisation, see Cargo.toml);
# - on Linux with glibc, the C runtime linked in statically, so the binary needs no shared
#   library and maps only the libc code it calls;
# - with lld (rustc's linker on x86_64 Linux), the functions an eventer runs from its start to
#   its first archived events, listed in startup.syms, placed together at the start of the
#   code. The kernel maps code 64 KiB around each page touched, so an idle eventer then holds
#   3 MiB of code pages rather than 7.4 MiB (README, under Layout).
#
#   eventer-cli/dist/build.sh [cargo options: --locked, --no-default-features, --features ...]
#
# Prints the binary's path last: target/<host triple>/dist/eventer. The triple is explicit so
# that the static C runtime applies to eventer, not to build scripts and proc macros.
set -euo pipefail
cd "$(dirname "$0")/../.."

host=$(rustc -vV | sed -n 's/^host: //p')
if [[ $host == *-linux-gnu ]]; then
    export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
fi
build=(--profile dist --target "$host" -p eventer-cli --bin eventer "$@")
out=$(realpath -m "${CARGO_TARGET_DIR:-target}/$host/dist")
bin=$out/eventer
# The ordering file of the last link. Its name carries a digest of its content: cargo does
# not read the file, so a new order must be a new argument for cargo to link again.
last=$out/eventer.order-used

link() {
    if [[ -n $1 ]]; then
        cargo rustc "${build[@]}" -- -C "link-arg=-Wl,--symbol-ordering-file=$1" \
            -C link-arg=-Wl,--no-warn-symbol-ordering
    else
        cargo build "${build[@]}"
    fi
}

used=$(cat "$last" 2>/dev/null || true)
[[ -f $used ]] || used=
link "$used"

if ! grep -qa 'Linker: LLD' "$bin"; then
    echo "build.sh: the linker is not lld; the code is left in the compiler's order" >&2
    echo "$bin"
    exit 0
fi

# startup.syms names symbols as a build by this script had them, with their sizes. A Rust
# symbol ends with a hash (17h<16 hex digits>E) of its crate's version, features, target and
# compiler: where a listed symbol is not in this build under its hash, the symbols of that
# function with its size go in its place, or failing that all of them (a generic function has
# one per instance).
order=$(mktemp)
trap 'rm -f "$order" "$order.counts"' EXIT
nm -S --defined-only "$bin" | awk -v list=eventer-cli/dist/startup.syms -v counts="$order.counts" '
    function unhashed(name) { sub(/17h[0-9a-f]+E$/, "E", name); return name }
    function place(name) { if (!(name in placed)) { placed[name] = 1; print name } }
    BEGIN {
        while ((getline line < list) > 0) {
            if (line ~ /^(#|$)/) continue
            split(line, field, " ")
            listed++; entry[listed] = field[1]; size[listed] = field[2]; rank[field[1]] = listed
        }
    }
    {
        name = $NF; built[name] = 1; k = unhashed(name)
        instances[k] = (k in instances) ? instances[k] " " name : name
        if (NF == 4) sized[name] = $2
    }
    END {
        for (i = 1; i <= listed; i++) {
            if (entry[i] in built) { place(entry[i]); found++; continue }
            k = unhashed(entry[i])
            if (!(k in instances)) continue
            found++
            n = split(instances[k], names, " ")
            same = 0
            for (j = 1; j <= n; j++) if (!(names[j] in rank) && sized[names[j]] == size[i]) { place(names[j]); same++ }
            if (!same) for (j = 1; j <= n; j++) if (!(names[j] in rank)) place(names[j])
        }
        print found + 0, listed + 0 > counts
    }
' >"$order"
read -r found listed <"$order.counts"
echo "build.sh: $found of the $listed functions in startup.syms are in this build" >&2
# CI sets EVENTER_STARTUP_FOUND_MIN (a percentage) so that a list gone stale is recorded again.
if ((found * 100 < ${EVENTER_STARTUP_FOUND_MIN:-0} * listed)); then
    echo "build.sh: fewer than ${EVENTER_STARTUP_FOUND_MIN}% found; record the list again (eventer-cli/dist/record.sh)" >&2
    exit 1
fi

wanted=$out/eventer.order-$(sha256sum "$order" | cut -c1-16)
if ((found > 0)) && [[ $wanted != "$used" ]]; then
    mv "$order" "$wanted"
    link "$wanted"
    echo "$wanted" >"$last"
fi
echo "$bin"
