#!/usr/bin/env bash
# Suite 'install': build an external consumer against the installed libguard.
#
#   check.sh BUILDDIR SOURCEDIR [ignored...]
#
# `meson install --destdir TMP --no-rebuild`, then, with only the installed tree and
# `pkg-config libguard` (PKG_CONFIG_PATH=<installed libdir>/pkgconfig, PKG_CONFIG_SYSROOT_DIR=TMP
# because the .pc names the configured prefix), compile every installed header on its own and
# tests/install/consumer.c with `cc -std=c11 -Wall -Wextra -Werror -pedantic` (no _GNU_SOURCE),
# link it with `pkg-config --libs libguard` (shared) and run it; then link it once more against
# libguard.a with the .pc's Libs.private / Requires.private. A sanitized build (b_sanitize) links
# with the build's compiler ($LG_INSTALL_CC) and -fsanitize=<b_sanitize>, as its library needs
# the sanitizer runtime. Prints TAP; exits 1 iff a check failed. TMP is removed on exit.
set -euo pipefail

if (($# < 2)); then
    echo "usage: $0 BUILDDIR SOURCEDIR" >&2
    exit 2
fi
builddir=$(cd "$1" && pwd)
srcdir=$(cd "$2" && pwd)
meson=${MESON:-meson}
compiler=${CC_CONSUMER:-cc}
strict=(-std=c11 -Wall -Wextra -Werror -pedantic)
# meson points LD_LIBRARY_PATH at the build tree; the consumer must load the installed library.
unset LD_LIBRARY_PATH

n=0
failed=0
ok() {
    n=$((n + 1))
    echo "ok $n - $*"
}
not_ok() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $*"
}
skip() {
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
}
# Standard input as TAP diagnostics, at most 60 lines.
diag() {
    awk -v max=60 'NR <= max { print "# " $0 } END { if (NR > max) print "# ... (" NR - max " more lines)" }'
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lg-install.XXXXXX")
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    rm -rf -- "$tmp"
}
trap cleanup EXIT

echo "1..9"

# Where the build installs to, and whether it is sanitized.
if ! opts=$("$meson" introspect "$builddir" --buildoptions 2>"$tmp/introspect.err"); then
    diag <"$tmp/introspect.err"
    not_ok "meson introspect --buildoptions $builddir"
    exit 1
fi
read -r prefix libdir includedir sanitize < <(python3 -c '
import json, os, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
p = o["prefix"]
print(p, *(os.path.join(p, o[k]) for k in ("libdir", "includedir")), o.get("b_sanitize", "none"))
' <<<"$opts")
root=$tmp/root
inst_lib=$root$libdir
inst_inc=$root$includedir
echo "# prefix $prefix, libdir $libdir, includedir $includedir, b_sanitize $sanitize"

# 1. Install into a scratch DESTDIR.
if "$meson" install -C "$builddir" --destdir "$root" --no-rebuild --quiet >"$tmp/install.log" 2>&1; then
    ok "meson install --destdir --no-rebuild"
else
    diag <"$tmp/install.log"
    not_ok "meson install --destdir --no-rebuild"
    exit 1
fi

# 2. The installed tree: the umbrella header, the user-facing cache.h, the reflector's
#    cache_contract.h, the pkg-config file and both libraries; no public header includes uv.h.
missing=()
for f in "$inst_inc/libguard/libguard.h" "$inst_inc/libguard/cache.h" \
    "$inst_inc/libguard/cache_contract.h" "$inst_lib/pkgconfig/libguard.pc" \
    "$inst_lib/libguard.so" "$inst_lib/libguard.a"; do
    [[ -e $f ]] || missing+=("${f#"$root"}")
done
[[ ! -e $inst_inc/libguard/cache_read.h ]] || missing+=("(stale) cache_read.h is installed")
if grep -lE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]uv\.h[>"]' "$inst_inc"/libguard/*.h >"$tmp/uv.txt"; then
    missing+=("public headers include uv.h: $(tr '\n' ' ' <"$tmp/uv.txt")")
fi
if ((${#missing[@]} == 0)); then
    ok "installed tree: headers, libguard.pc, libguard.so, libguard.a; no <uv.h> in public headers"
else
    printf '%s\n' "${missing[@]}" | diag
    not_ok "installed tree"
fi

# pkg-config on the installed .pc only; the sysroot maps its prefix into DESTDIR.
export PKG_CONFIG_PATH=$inst_lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$root
unset PKG_CONFIG_LIBDIR

# 3. pkg-config resolves libguard and everything it requires.
if cflags=$(pkg-config --print-errors --cflags libguard 2>"$tmp/pc.err") &&
    libs=$(pkg-config --print-errors --libs libguard 2>>"$tmp/pc.err") &&
    static_libs=$(pkg-config --print-errors --static --libs libguard 2>>"$tmp/pc.err"); then
    ok "pkg-config --cflags --libs libguard"
    echo "# cflags: $cflags"
    echo "# libs: $libs"
    echo "# libs --static: $static_libs"
else
    diag <"$tmp/pc.err"
    not_ok "pkg-config --cflags --libs libguard"
    exit 1
fi
read -ra cflags_a <<<"$cflags"
read -ra libs_a <<<"$libs"

# 4. What is private stays private: a shared consumer links libguard, libuv and libpq only;
#    hiredis, jansson, libxxhash, pg_query and pthread are needed by a static link alone.
problems=()
req_private=$(pkg-config --print-requires-private libguard | awk '{print $1}' | sort | tr '\n' ' ')
[[ $req_private == "hiredis jansson libxxhash " ]] || problems+=("Requires.private is '$req_private'")
for lib in -lhiredis -ljansson -lxxhash -lpg_query -lboost_context; do
    for word in "${libs_a[@]}"; do
        [[ $word != "$lib" ]] || problems+=("shared --libs has private $lib")
    done
done
for lib in -lguard -luv -lpq; do
    [[ " $libs " == *" $lib "* ]] || problems+=("shared --libs lacks $lib")
done
for lib in -lhiredis -ljansson -lxxhash -lpg_query -lpthread; do
    [[ " $static_libs " == *" $lib "* ]] || problems+=("--static --libs lacks $lib")
done
if ((${#problems[@]} == 0)); then
    ok "Requires.private hiredis, jansson, libxxhash; Libs.private -lpg_query -lpthread; shared libs public only"
else
    printf '%s\n' "${problems[@]}" | diag
    not_ok "pkg-config private/public split"
fi

# Checks 5 and 6 compile with cc and, when it is another one, the build's compiler too.
compilers=("$compiler")
if [[ -n ${LG_INSTALL_CC:-} && $LG_INSTALL_CC != *" "* ]] &&
    build_cc=$(command -v "$LG_INSTALL_CC") && this_cc=$(command -v "$compiler") &&
    [[ $(readlink -f "$build_cc") != "$(readlink -f "$this_cc")" ]]; then
    compilers+=("$LG_INSTALL_CC")
fi

# 5. Every installed header compiles on its own in strict C11.
bad=()
for c in "${compilers[@]}"; do
    for h in "$inst_inc"/libguard/*.h; do
        name=libguard/$(basename "$h")
        if ! printf '#include <%s>\n' "$name" |
            "$c" "${strict[@]}" "${cflags_a[@]}" -fsyntax-only -x c - >"$tmp/hdr.log" 2>&1; then
            bad+=("$c:$name")
            diag <"$tmp/hdr.log"
        fi
    done
done
if ((${#bad[@]} == 0)); then
    ok "every installed header compiles alone: ${compilers[*]} ${strict[*]}"
else
    not_ok "headers that do not compile alone: ${bad[*]}"
fi

# 6. The consumer compiles (the object from cc is the one linked below).
compiled=1
for c in "${compilers[@]}"; do
    obj=$tmp/consumer.o
    [[ $c == "$compiler" ]] || obj=$tmp/consumer-$(basename "$c").o
    if ! "$c" "${strict[@]}" "${cflags_a[@]}" -c "$srcdir/tests/install/consumer.c" -o "$obj" \
        >"$tmp/cc.log" 2>&1; then
        diag <"$tmp/cc.log"
        compiled=0
    fi
done
if ((compiled)); then
    ok "consumer.c compiles: ${compilers[*]} ${strict[*]} \$(pkg-config --cflags libguard)"
else
    not_ok "consumer.c compiles"
fi

# The link driver: a sanitized libguard needs the sanitizer runtime in the executable.
linker=("$compiler")
if [[ $sanitize != none ]]; then
    read -ra linker <<<"${LG_INSTALL_CC:-$compiler}"
    linker+=("-fsanitize=$sanitize")
    echo "# b_sanitize=$sanitize: linking with ${linker[*]}"
fi

# 7. Shared link with `pkg-config --libs libguard` alone, 8. run against the installed library.
if ((compiled)) && "${linker[@]}" "$tmp/consumer.o" "${libs_a[@]}" -o "$tmp/consumer" \
    >"$tmp/ld.log" 2>&1; then
    ok "consumer links: ${linker[*]} consumer.o \$(pkg-config --libs libguard)"
    if out=$(LD_LIBRARY_PATH=$inst_lib "$tmp/consumer" 2>&1) &&
        LD_LIBRARY_PATH=$inst_lib ldd "$tmp/consumer" >"$tmp/ldd.txt" 2>&1 &&
        grep -q "libguard\.so.* => $inst_lib/" "$tmp/ldd.txt"; then
        ok "consumer runs with LD_LIBRARY_PATH=<installed libdir>"
        echo "$out" | diag
    else
        { echo "$out"; cat "$tmp/ldd.txt"; } | diag
        not_ok "consumer runs against the installed libguard.so"
    fi
else
    [[ ! -s $tmp/ld.log ]] || diag <"$tmp/ld.log"
    not_ok "consumer links with pkg-config --libs libguard"
    skip "consumer runs" "not linked"
fi

# 9. Static libguard: libguard.a, the .pc's Libs.private and its Requires.private (those as
#    shared libraries), plus the public Requires: checks libguard's private list is complete.
#    (`pkg-config --static` also expands libpq.pc's own Libs.private, which names archives
#    Debian does not ship, e.g. -lpgcommon; that is libpq's business, not libguard's.)
libs_private=$(sed -n 's/^Libs\.private:[[:space:]]*//p' "$inst_lib/pkgconfig/libguard.pc")
read -ra libs_private_a <<<"$libs_private"
read -ra requires_a <<<"$(pkg-config --print-requires libguard | awk '{print $1}' | tr '\n' ' ')"
read -ra requires_private_a <<<"$req_private"
static_link=("$inst_lib/libguard.a" "${libs_private_a[@]}")
if ! deps=$(pkg-config --libs "${requires_a[@]}" "${requires_private_a[@]}" 2>"$tmp/pc.err"); then
    diag <"$tmp/pc.err"
fi
read -ra deps_a <<<"${deps:-}"
static_link+=("${deps_a[@]}")
echo "# static link: ${static_link[*]#"$root"}"
if ((compiled)) && "${linker[@]}" "$tmp/consumer.o" "${static_link[@]}" -o "$tmp/consumer-static" \
    >"$tmp/ld-static.log" 2>&1; then
    if out=$("$tmp/consumer-static" 2>&1); then
        ok "consumer links libguard.a with its Libs.private / Requires.private and runs"
    else
        echo "$out" | diag
        not_ok "statically linked consumer runs"
    fi
else
    [[ ! -s $tmp/ld-static.log ]] || diag <"$tmp/ld-static.log"
    not_ok "consumer links libguard.a with its Libs.private / Requires.private"
fi

exit $((failed > 0))
