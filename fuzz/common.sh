# Shared settings of fuzz/run.sh, fuzz/merge.sh and fuzz/smoke.sh (sourced, not run).
# shellcheck shell=bash

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')

# Every target, in the order the smoke run takes them (used by the scripts that source this).
# shellcheck disable=SC2034
TARGETS=(api_request kernel_cmdline image_info root_device_hints superblock_probe plugin_protocol inject_walker lldp network_data mdns_message ipa_conf vpd dmidecode_text smbios ipmitool_lan ethtool_text)

# Largest input per target (libFuzzer -max_len): real inputs plus room to grow.
max_len() {
    case "$1" in
        api_request) echo 16384 ;;       # node dicts are a few KiB
        kernel_cmdline) echo 4096 ;;     # COMMAND_LINE_SIZE is 2048-4096
        image_info) echo 8192 ;;
        root_device_hints) echo 2048 ;;
        superblock_probe) echo 266240 ;; # 260 KiB: the VHDX region table sits at 192 KiB
        plugin_protocol) echo 16384 ;;
        inject_walker) echo 4096 ;;      # up to 64 short commands
        lldp) echo 1600 ;;               # one frame, as the capture reads it
        network_data) echo 16384 ;;      # real documents are a few KiB
        mdns_message) echo 9000 ;;       # largest mDNS message (RFC 6762 section 17)
        ipa_conf) echo 8192 ;;           # IPA's configuration files are a few lines
        vpd) echo 1200 ;;                # header, vendor, model, page 0x80, page 0x83/0x89 (572 B)
        dmidecode_text) echo 32768 ;;    # a two-socket server's output is about 20 KiB
        smbios) echo 16384 ;;            # real tables are a few KiB
        ipmitool_lan) echo 16384 ;;      # up to 33 answers of about 1 KiB
        ethtool_text) echo 8192 ;;       # `ethtool -k` prints about 70 lines
        *) echo "unknown fuzz target $1" >&2; return 1 ;;
    esac
}

# The binary of target $1 built with profile $2 (release or smoke).
target_bin() {
    echo "$FUZZ_DIR/target/$TRIPLE/$2/$1"
}

# libFuzzer options shared by every run of target $1.
fuzz_opts() {
    echo "-max_len=$(max_len "$1") -rss_limit_mb=2048 -timeout=10 -dict=$FUZZ_DIR/dict/$1.dict"
}
