#!/usr/bin/env bash
# Reads the Debian package mirror of the build machine from its own apt configuration, so that
# no mirror host name is written into this repository. Sourced by build-initramfs.sh,
# scripts/install-ramdisk-deps.sh and tests/dib/build-and-boot.sh.
#
#   host_debian_uri SUITE     the URI of the first enabled apt source that carries SUITE
#                             (e.g. bookworm, bookworm-security), from deb822 files
#                             (/etc/apt/sources.list.d/*.sources) and one-line sources
#                             (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list);
#                             prints nothing and returns 1 when none does.
# APT_SOURCES_DIR overrides /etc/apt (tests).

host_debian_uri() {
    local suite=$1 etc=${APT_SOURCES_DIR:-/etc/apt} f
    local files=()
    for f in "$etc"/sources.list.d/*.sources; do [ -r "$f" ] && files+=("$f"); done
    if [ ${#files[@]} -gt 0 ]; then
        # deb822: stanzas separated by blank lines; Enabled: no skips a stanza; the first URI
        # of a stanza with Types: deb and the suite is taken.
        awk -v want="$suite" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && uri != "") {
                    n = split(suites, s, " ")
                    for (i = 1; i <= n; i++) if (s[i] == want) { print uri; found = 1; exit }
                }
                types = ""; suites = ""; uri = ""; enabled = ""
            }
            FNR == 1 { flush() }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "types:" { $1 = ""; types = $0 " " }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { if (!found) flush() }
        ' "${files[@]}" 2>/dev/null | head -n 1 | grep . && return 0
    fi
    files=()
    for f in "$etc"/sources.list "$etc"/sources.list.d/*.list; do [ -r "$f" ] && files+=("$f"); done
    [ ${#files[@]} -gt 0 ] || return 1
    # One-line form: deb [options] URI SUITE COMPONENT...
    awk -v want="$suite" '
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == want) { print $i; exit }
        }
    ' "${files[@]}" 2>/dev/null | head -n 1 | grep .
}
