#!/usr/bin/env bash
# build-initramfs.sh: builds the minimal ironic-agent deploy ramdisk: a Debian 12 kernel and a
# small initramfs (busybox, the static agent, the disk tools it runs, their libraries and a
# short list of kernel modules), for QEMU tests and for small, fast-booting real deployments.
#
#   build-initramfs.sh --arch x86_64|aarch64 --agent PATH --out DIR [options]
#   build-initramfs.sh --arch x86_64|aarch64 --agent PATH --rootfs-out DIR [options]
#
# Outputs DIR/vmlinuz, DIR/initramfs.img and DIR/initramfs.manifest (what went in); with
# --rootfs-out, the staging tree itself as a directory instead (for tests/images). Debian
# packages come from the target architecture's archive through a private apt state (the host's
# apt and dpkg state are not touched) and are cached in
# ${IRONIC_AGENT_RAMDISK_CACHE:-~/.cache/ironic-agent-ramdisk}/<arch>: a second run downloads
# nothing, and works offline once the cache is filled. See README.md in this directory.
set -euo pipefail

PROG=build-initramfs.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INITRAMFS_SRC=$HERE/initramfs

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}
log() { echo "$PROG: $*" >&2; }
warn() { echo "$PROG: WARNING: $*" >&2; }

usage() {
    cat <<EOF
usage: $PROG --arch x86_64|aarch64 --agent PATH --out DIR [options]
       $PROG --arch x86_64|aarch64 --agent PATH --rootfs-out DIR [options]

  --arch ARCH          target architecture: x86_64 (amd64) or aarch64 (arm64)
  --agent PATH         the static ironic-agent binary for ARCH (installed as /usr/bin/ironic-agent)
  --out DIR            output directory: vmlinuz, initramfs.img, initramfs.manifest
  --rootfs-out DIR     instead of the archives, write the complete staging tree (tools,
                       libraries, modules, /init, /etc) to DIR as a directory (DIR is
                       replaced), with the kernel at DIR/boot/vmlinuz-KVER and KVER in
                       DIR/boot/kernel-version; no cpio is built, --out is optional, and
                       --grub auto means yes (no size goal). Used by tests/images/build-test-os.sh
  --compress zstd|xz   initramfs compression (default: zstd, which decompresses much faster;
                       xz is about 10% smaller)
  --grub auto|yes|no   grub-install and the GRUB modules: auto (default) includes them unless
                       the initramfs then exceeds --max-size; yes always; no never
  --max-size MB        size goal of the compressed initramfs (default 30)
  --no-hw-modules      only the virtual-machine drivers, no drivers for real NICs and RAID
                       controllers
  --extra-modules LIST more kernel modules (comma-separated names), with their dependencies
  --extra-tool PKG:PATH[,PATH...]
                       more programs from a Debian package, with their libraries (repeatable),
                       e.g. btrfs-progs:/bin/mkfs.btrfs or smartmontools:/usr/sbin/smartctl
  --burnin-tools       add the burn-in tools: stress-ng (burnin_cpu, burnin_memory), fio
                       (burnin_disk) and smartctl, with their libraries (roughly +30 MB
                       compressed: fio links Ceph, GlusterFS and RDMA libraries); raise
                       --max-size accordingly or GRUB is left out
  --plugin FILE        install an executable hardware-manager plug-in (a static binary or a
                       script) into /etc/ironic-agent/hardware-managers.d/ (repeatable)
  --add-file SRC:DEST  install file SRC at DEST, an absolute path under /etc (repeatable),
                       e.g. a plug-in's configuration:
                       --add-file fw.json:/etc/ironic-agent/firmware-manager.json
  --refresh            refresh the package lists even if they are recent (default: once a day)
  --keep-stage         keep the staging tree and print where it is

environment:
  IRONIC_AGENT_RAMDISK_CACHE   cache directory (default ~/.cache/ironic-agent-ramdisk)
  IRONIC_AGENT_DEBIAN_MIRROR   Debian mirror (default: the build machine's apt source for bookworm)
  IRONIC_AGENT_DEBIAN_SECURITY security mirror (default: its apt source for bookworm-security)
  IRONIC_AGENT_DEBIAN_KEYRING  archive keyring (default /usr/share/keyrings/debian-archive-keyring.gpg)
  IRONIC_AGENT_KERNEL_PACKAGE  kernel package (default: what linux-image-<arch> depends on)
EOF
}

# --- arguments --------------------------------------------------------------------------------
ARCH=
AGENT=
OUT=
ROOTFS_OUT=
COMPRESS=zstd
GRUB=auto
MAX_MB=30
HW_MODULES=1
EXTRA_MODULES=
EXTRA_TOOLS=()
BURNIN_TOOLS=0
PLUGINS=()
ADD_FILES=()
REFRESH=0
KEEP_STAGE=0
while [ $# -gt 0 ]; do
    case $1 in
        --arch) ARCH=${2:?--arch needs a value}; shift 2 ;;
        --agent) AGENT=${2:?--agent needs a value}; shift 2 ;;
        --out) OUT=${2:?--out needs a value}; shift 2 ;;
        --rootfs-out) ROOTFS_OUT=${2:?--rootfs-out needs a value}; shift 2 ;;
        --compress) COMPRESS=${2:?--compress needs a value}; shift 2 ;;
        --grub) GRUB=${2:?--grub needs a value}; shift 2 ;;
        --max-size) MAX_MB=${2:?--max-size needs a value}; shift 2 ;;
        --no-hw-modules) HW_MODULES=0; shift ;;
        --extra-modules) EXTRA_MODULES=${2:?--extra-modules needs a value}; shift 2 ;;
        --extra-tool)
            case ${2:-} in
                ?*:/?*) EXTRA_TOOLS+=("${2%%:*} $(echo "${2#*:}" | tr ',' ' ')") ;;
                *) die "--extra-tool wants PACKAGE:/PATH[,/PATH...], not '${2:-}'" ;;
            esac
            shift 2
            ;;
        --burnin-tools) BURNIN_TOOLS=1; shift ;;
        --plugin) PLUGINS+=("${2:?--plugin needs a file}"); shift 2 ;;
        --add-file)
            case ${2:-} in
                ?*:/etc/?*) ADD_FILES+=("${2}") ;;
                *) die "--add-file wants SRC:/etc/PATH, not '${2:-}'" ;;
            esac
            shift 2
            ;;
        --refresh) REFRESH=1; shift ;;
        --keep-stage) KEEP_STAGE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[ -n "$ARCH" ] || { usage >&2; die "--arch is required"; }
[ -n "$AGENT" ] || { usage >&2; die "--agent is required"; }
[ -n "$OUT" ] || [ -n "$ROOTFS_OUT" ] || { usage >&2; die "--out (or --rootfs-out) is required"; }
if [ -n "$ROOTFS_OUT" ]; then
    ROOTFS_OUT=$(realpath -m "$ROOTFS_OUT")
    case $ROOTFS_OUT in / | /usr | /etc | /boot | "$HOME") die "--rootfs-out $ROOTFS_OUT: refusing to replace that" ;; esac
    # DIR is replaced: only when it is empty or an earlier --rootfs-out tree (a safety net
    # against a mistyped path).
    if [ -e "$ROOTFS_OUT" ] && [ -n "$(ls -A "$ROOTFS_OUT" 2>/dev/null)" ] &&
        [ ! -e "$ROOTFS_OUT/boot/kernel-version" ]; then
        die "--rootfs-out $ROOTFS_OUT exists and is not an earlier --rootfs-out tree; remove it first"
    fi
fi

case $ARCH in
    x86_64 | amd64)
        ARCH=x86_64 DEBARCH=amd64 TRIPLET=x86_64-linux-gnu ELF_MACHINE="X86-64" QEMU_USER=qemu-x86_64-static
        ;;
    aarch64 | arm64)
        ARCH=aarch64 DEBARCH=arm64 TRIPLET=aarch64-linux-gnu ELF_MACHINE="AArch64" QEMU_USER=qemu-aarch64-static
        ;;
    *) die "unsupported --arch '$ARCH' (x86_64 or aarch64)" ;;
esac
case $COMPRESS in zstd | xz) ;; *) die "--compress must be zstd or xz, not '$COMPRESS'" ;; esac
case $GRUB in auto | yes | no) ;; *) die "--grub must be auto, yes or no, not '$GRUB'" ;; esac
case $MAX_MB in '' | *[!0-9]*) die "--max-size must be a number of MB, not '$MAX_MB'" ;; esac
[ -f "$AGENT" ] || die "agent binary not found: $AGENT"
[ -d "$INITRAMFS_SRC" ] || die "missing $INITRAMFS_SRC (init and scripts)"
for p in "${PLUGINS[@]}"; do
    [ -f "$p" ] || die "plug-in not found: $p"
    [ -x "$p" ] || die "plug-in is not executable: $p (the agent only runs files with an execute bit)"
done
for f in "${ADD_FILES[@]}"; do
    [ -f "${f%%:*}" ] || die "--add-file: ${f%%:*} not found"
done

# --- host tools -------------------------------------------------------------------------------
missing=()
for t in apt-get apt-cache dpkg-deb readelf depmod cpio find sort awk sed; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if [ -z "$ROOTFS_OUT" ]; then
    command -v "$COMPRESS" >/dev/null 2>&1 || missing+=("$COMPRESS")
fi
[ ${#missing[@]} -eq 0 ] ||
    die "missing host tools: ${missing[*]} (Debian: run scripts/install-ramdisk-deps.sh, or apt-get install apt dpkg binutils kmod cpio zstd xz-utils)"
KEYRING=${IRONIC_AGENT_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
[ -r "$KEYRING" ] || die "Debian archive keyring not found: $KEYRING (apt-get install debian-archive-keyring, or set IRONIC_AGENT_DEBIAN_KEYRING)"

# The mirrors default to the build machine's own apt sources (no host name is kept here).
# shellcheck source=lib/apt-sources.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-sources.sh"
MIRROR=${IRONIC_AGENT_DEBIAN_MIRROR:-$(host_debian_uri bookworm || true)}
SECURITY=${IRONIC_AGENT_DEBIAN_SECURITY:-$(host_debian_uri bookworm-security || true)}
[ -n "$MIRROR" ] ||
    die "no apt source for bookworm on this machine: set IRONIC_AGENT_DEBIAN_MIRROR to a Debian mirror URI"
[ -n "$SECURITY" ] ||
    die "no apt source for bookworm-security on this machine: set IRONIC_AGENT_DEBIAN_SECURITY to a Debian security mirror URI"
CACHE=${IRONIC_AGENT_RAMDISK_CACHE:-$HOME/.cache/ironic-agent-ramdisk}/$ARCH
APTDIR=$CACHE/apt
DEBS=$CACHE/debs
XDIR=$CACHE/extracted
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/state" \
    "$APTDIR/empty" "$DEBS" "$XDIR"
if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
fi

# One build per cache at a time.
if command -v flock >/dev/null; then
    exec 9>"$CACHE/.lock"
    flock -n 9 || { log "waiting for another build using $CACHE"; flock 9; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironic-agent-initramfs.XXXXXX")
cleanup() {
    if [ "$KEEP_STAGE" = 1 ]; then log "staging tree kept in $WORK/stage"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
STAGE=$WORK/stage
START_TIME=$(date +%s)

# --- private apt ------------------------------------------------------------------------------
# The target architecture's package lists and downloads live under $APTDIR; the host's apt
# state, caches, sources and dpkg architectures are not used or changed.
cat >"$APTDIR/sources.list" <<EOF
deb [signed-by=$KEYRING] $MIRROR bookworm main
deb [signed-by=$KEYRING] $MIRROR bookworm-updates main
deb [signed-by=$KEYRING] $SECURITY bookworm-security main
EOF
APT_OPTS=(
    -o "APT::Architecture=$DEBARCH" -o "APT::Architectures=$DEBARCH"
    -o "Dir::State=$APTDIR/state" -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::State::Status=/dev/null"
    -o "Dir::Cache=$APTDIR/cache" -o "Dir::Cache::Archives=$APTDIR/cache/archives"
    -o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=$APTDIR/empty"
    -o "Dir::Etc::Preferences=$APTDIR/empty/none" -o "Dir::Etc::PreferencesParts=$APTDIR/empty"
    -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
    -o "Acquire::Retries=3"
)
apt_get() { apt-get -q "${APT_OPTS[@]}" "$@"; }
apt_cache() { apt-cache "${APT_OPTS[@]}" "$@"; }

# Package lists: refreshed when older than a day (or --refresh); a failed refresh with usable
# old lists only warns, so the build works offline from the cache.
stamp=$APTDIR/updated
if [ "$REFRESH" = 1 ] || [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
    log "updating the bookworm $DEBARCH package lists ($MIRROR)"
    if apt_get update >"$WORK/apt-update.log" 2>&1 && ! grep -q '^[WE]:' "$WORK/apt-update.log"; then
        touch "$stamp"
    elif [ -e "$stamp" ]; then
        warn "could not refresh the package lists (offline?); using the cached ones:"
        grep '^[WE]:' "$WORK/apt-update.log" | head -5 >&2 || true
    else
        cat "$WORK/apt-update.log" >&2
        die "apt-get update failed for $DEBARCH and there are no cached package lists in $APTDIR"
    fi
fi

# deb_for PKG...: prints "PKG DEBFILE" for each package (candidate version), downloading the
# ones not yet in $DEBS. Fails loudly on an unknown package.
declare -A DEB_OF=()
fetch_debs() {
    local pkg ver arch file need=() show
    show=$(apt_cache show --no-all-versions "$@" 2>"$WORK/apt-show.err") ||
        die "apt-cache show failed for: $* ($(head -3 "$WORK/apt-show.err"))"
    while read -r pkg ver arch; do
        [ -n "$pkg" ] || continue
        # The file name apt-get download gives: the epoch's colon is URL-encoded.
        file="$DEBS/${pkg}_${ver//:/%3a}_${arch}.deb"
        DEB_OF[$pkg]=$file
        [ -s "$file" ] || need+=("$pkg")
    done < <(awk '/^Package:/ {p=$2} /^Version:/ {v=$2} /^Architecture:/ {a=$2}
                  /^$/ {if (p != "") print p, v, a; p=""} END {if (p != "") print p, v, a}' <<<"$show")
    for pkg in "$@"; do
        [ -n "${DEB_OF[$pkg]:-}" ] || die "package $pkg not found in bookworm $DEBARCH"
    done
    if [ ${#need[@]} -gt 0 ]; then
        log "downloading ${#need[@]} packages: ${need[*]}"
        (cd "$DEBS" && apt_get download "${need[@]}" >"$WORK/apt-download.log" 2>&1) || {
            cat "$WORK/apt-download.log" >&2
            die "apt-get download failed (offline and not cached?)"
        }
        for pkg in "${need[@]}"; do
            [ -s "${DEB_OF[$pkg]}" ] || die "download of $pkg did not produce ${DEB_OF[$pkg]}"
        done
    fi
}

# extracted PKG: the directory holding the extracted package (extracted once, then cached).
extracted() {
    local deb=${DEB_OF[$1]:?package $1 was not fetched} dir
    dir=$XDIR/$(basename "$deb" .deb)
    if [ ! -e "$dir/.extracted" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir" || die "cannot extract $deb"
        touch "$dir/.extracted"
    fi
    echo "$dir"
}

# lib_closure PKG...: the packages PKG... depend on (recursively) whose names look like shared
# library packages. This is the candidate set the ELF NEEDED resolution below searches; the
# NEEDED check is what proves it complete.
lib_closure() {
    local -A seen=()
    local todo=("$@") next dep p
    for p in "$@"; do seen[$p]=1; done
    while [ ${#todo[@]} -gt 0 ]; do
        next=()
        while read -r dep; do
            [ -n "${seen[$dep]:-}" ] && continue
            seen[$dep]=1
            case $dep in
                *-dev | *-doc | *-bin | *-utils | *-tools | *-data | *-common) continue ;;
                lib* | zlib1g) next+=("$dep") ;;
            esac
        done < <(apt_cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "${todo[@]}" 2>/dev/null |
            sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \([^<][^ ]*\)$/\2/p' | sort -u)
        [ ${#next[@]} -gt 0 ] && echo "${next[@]}"
        todo=("${next[@]}")
    done
}

# --- what goes in -----------------------------------------------------------------------------
# Tools the agent runs, as "PACKAGE PATH..." (paths as in the package; /bin, /sbin and /lib are
# merged into /usr in the ramdisk). Links in a package (mkfs.ext4 -> mke2fs) stay links.
TOOLS=(
    "util-linux /sbin/blkid /sbin/blockdev /sbin/blkdiscard /sbin/mkswap /sbin/wipefs /sbin/fstrim /sbin/swaplabel /bin/lsblk /bin/findmnt /usr/bin/partx /usr/bin/addpart /usr/bin/delpart /usr/bin/resizepart /usr/bin/lscpu"
    "util-linux-extra /sbin/hwclock"
    "mount /sbin/losetup /bin/mount /bin/umount /sbin/swapon /sbin/swapoff"
    "fdisk /sbin/sfdisk /sbin/fdisk"
    "e2fsprogs /sbin/mke2fs /sbin/mkfs.ext2 /sbin/mkfs.ext3 /sbin/mkfs.ext4 /sbin/e2fsck /sbin/fsck.ext2 /sbin/fsck.ext3 /sbin/fsck.ext4 /sbin/tune2fs /sbin/e2label /sbin/resize2fs /sbin/dumpe2fs"
    "dosfstools /sbin/mkfs.fat /sbin/mkfs.vfat /sbin/mkdosfs /sbin/fsck.fat /sbin/fsck.vfat /sbin/fatlabel"
    "xfsprogs /sbin/mkfs.xfs /sbin/xfs_repair /usr/sbin/xfs_growfs"
    "gdisk /sbin/sgdisk"
    "mdadm /sbin/mdadm /sbin/mdmon"
    "qemu-utils /usr/bin/qemu-img"
    "efibootmgr /bin/efibootmgr"
    "nvme-cli /usr/sbin/nvme"
    "hdparm /sbin/hdparm"
    "dhcpcd-base /usr/sbin/dhcpcd"
    # Inspection: the BMC's addresses (bmc_address, bmc_v6address, bmc_mac) and the
    # dmi-decode collector.
    "ipmitool /usr/bin/ipmitool"
    "dmidecode /usr/sbin/dmidecode"
)
# Burn-in tools (--burnin-tools): large through their libraries, so not in by default.
if [ "$BURNIN_TOOLS" = 1 ]; then
    TOOLS+=(
        "stress-ng /usr/bin/stress-ng"
        "fio /usr/bin/fio"
        "smartmontools /usr/sbin/smartctl"
    )
fi
TOOLS+=("${EXTRA_TOOLS[@]}")
# GRUB: the installer and its module directories (the prebuilt monolithic images are left out).
if [ "$ARCH" = x86_64 ]; then
    GRUB_TOOLS=(
        "grub2-common /usr/sbin/grub-install"
        "grub-common /usr/bin/grub-mkimage /usr/sbin/grub-probe /usr/bin/grub-editenv /usr/bin/grub-mkrelpath"
        "grub-pc-bin /usr/lib/grub/i386-pc"
        "grub-efi-amd64-bin /usr/lib/grub/x86_64-efi"
    )
else
    GRUB_TOOLS=(
        "grub2-common /usr/sbin/grub-install"
        "grub-common /usr/bin/grub-mkimage /usr/sbin/grub-probe /usr/bin/grub-editenv /usr/bin/grub-mkrelpath"
        "grub-efi-arm64-bin /usr/lib/grub/arm64-efi"
    )
fi

# Kernel modules loaded by /init (in this order) with their dependencies. A name that is built
# into this kernel is skipped; a "?" suffix marks a module that may not exist on every arch.
MODULES_BOOT=(
    # virtio (virtio_ring, virtio, virtio_mmio are built into the arm64 kernel)
    virtio_ring virtio virtio_pci_modern_dev? virtio_pci_legacy_dev? virtio_pci virtio_mmio?
    failover net_failover virtio_net virtio_blk virtio_scsi virtio_rng
    # disks
    nvme ahci libata sd_mod sr_mod sg loop
    # USB disks (a BMC's virtual floppy or stick): bound as soon as the bus enumerates them,
    # without udev
    usb_storage
    # RAID and device-mapper
    md_mod raid0 raid1 raid10 raid456 dm_mod
    # filesystems
    crc32c_generic ext4 vfat fat nls_cp437 nls_iso8859_1 nls_ascii nls_utf8 xfs isofs
    # network
    af_packet? ipv6? 8021q
)
# In the ramdisk but only loaded when needed: by the agent (ipmi), or by /init's coldplug for
# the devices present (drivers of common server NICs, RAID/HBA controllers, USB keyboards and
# sticks). Drivers needing firmware files get none: Debian ships firmware separately.
# (bonding: by network-setup, without its default bond0; crc32c_intel: by its CPU-feature alias,
# only where the CPU has SSE4.2; efivarfs: by /init on UEFI machines; 9pnet_virtio and 9p:
# host directories shared with a QEMU guest, which the VM tests use to run IPA beside the agent.)
MODULES_ONDEMAND=(ipmi_msghandler ipmi_devintf ipmi_si ipmi_ssif crc32c_intel? efivarfs bonding
    9pnet_virtio 9p)
MODULES_HW=(
    e1000 e1000e igb igbvf ixgbe ixgbevf i40e iavf ice tg3 bnxt_en r8169 mlx4_en mlx5_core
    vmxnet3 ena? qede? be2net?
    megaraid_sas mpt3sas smartpqi hpsa aacraid? vmw_pvscsi? virtio_console
    xhci_pci ehci_pci? uhci_hcd? usb_storage uas usbhid hid_generic
)

# --- kernel -----------------------------------------------------------------------------------
if [ -n "${IRONIC_AGENT_KERNEL_PACKAGE:-}" ]; then
    KPKG=$IRONIC_AGENT_KERNEL_PACKAGE
else
    KPKG=$(apt_cache show --no-all-versions "linux-image-$DEBARCH" 2>/dev/null |
        sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -1)
    [ -n "$KPKG" ] || die "cannot resolve linux-image-$DEBARCH to a kernel package"
fi
log "kernel package: $KPKG"

# --- downloads --------------------------------------------------------------------------------
TOOL_PKGS=(busybox-static ca-certificates)
for entry in "${TOOLS[@]}" "${GRUB_TOOLS[@]}"; do TOOL_PKGS+=("${entry%% *}"); done
mapfile -t TOOL_PKGS < <(printf '%s\n' "${TOOL_PKGS[@]}" | sort -u)
# The closure is cached per tool list and package-list refresh: apt-cache is slow.
closure_key=$( (printf '%s\n' "${TOOL_PKGS[@]}"; stat -c %Y "$stamp" 2>/dev/null) | sha256sum | cut -c1-16)
closure_file=$APTDIR/libclosure-$closure_key
if [ ! -s "$closure_file" ]; then
    log "resolving the shared-library packages of ${#TOOL_PKGS[@]} tool packages"
    rm -f "$APTDIR"/libclosure-*
    lib_closure "${TOOL_PKGS[@]}" | tr ' ' '\n' | sed '/^$/d' >"$closure_file.tmp"
    mv "$closure_file.tmp" "$closure_file"
fi
mapfile -t LIB_PKGS <"$closure_file"
fetch_debs "$KPKG" "${TOOL_PKGS[@]}" "${LIB_PKGS[@]}"

KX=$(extracted "$KPKG")
KVER=$(basename "$(ls -d "$KX"/lib/modules/*/ | head -1)")
[ -f "$KX/boot/vmlinuz-$KVER" ] || die "no /boot/vmlinuz-$KVER in $KPKG"
[ -s "$KX/lib/modules/$KVER/modules.dep" ] || depmod -b "$KX" "$KVER" ||
    die "depmod failed on the extracted $KPKG"

# --- staging tree -----------------------------------------------------------------------------
# merged /usr: /bin, /sbin, /lib (and /lib64 on x86_64) are links into /usr.
mkdir -p "$STAGE"/{usr/bin,usr/sbin,usr/lib/"$TRIPLET",usr/lib/modules,dev,proc,sys,run,tmp,root,mnt,etc,var/lib,var/log}
ln -s usr/bin "$STAGE/bin"
ln -s usr/sbin "$STAGE/sbin"
ln -s usr/lib "$STAGE/lib"
if [ "$ARCH" = x86_64 ]; then
    mkdir -p "$STAGE/usr/lib64"
    ln -s usr/lib64 "$STAGE/lib64"
fi
ln -s ../run "$STAGE/var/run"
ln -s ../run/lock "$STAGE/var/lock"
chmod 1777 "$STAGE/tmp"
chmod 0700 "$STAGE/root"

# usrpath PATH: where a package path goes in the merged-/usr ramdisk (no leading slash).
usrpath() {
    local p=${1#/}
    case $p in bin/* | sbin/* | lib/* | lib64/*) p=usr/$p ;; esac
    echo "$p"
}

# resolve_in ROOT PATH: PATH with its symbolic links followed inside ROOT (an extracted
# package tree, whose absolute links point into ROOT, not the host).
resolve_in() {
    local root=$1 p=$2 t i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        [ -L "$root$p" ] || { echo "$p"; return 0; }
        t=$(readlink "$root$p")
        case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
        p=$(realpath -m -s "$p")
    done
    die "too many levels of links at $root$2"
}

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# install_path PKG PATH: copies a file, link or directory of an extracted package into the stage.
install_path() {
    local pkg=$1 path=$2 root dst target
    root=$(extracted "$pkg")
    dst=$STAGE/$(usrpath "$path")
    if [ -L "$root$path" ]; then
        target=$(resolve_in "$root" "$path")
        [ -e "$root$target" ] || die "$pkg: $path links to $target, which is not in the package"
        mkdir -p "$(dirname "$dst")"
        rm -f "$dst"
        # A link within the same directory stays a relative link; others are copied.
        if [ "$(usrpath "$(dirname "$target")")" = "$(usrpath "$(dirname "$path")")" ]; then
            ln -s "$(basename "$target")" "$dst"
            install_path "$pkg" "$target"
        else
            install_path "$pkg" "$target"
            cp -a "$STAGE/$(usrpath "$target")" "$dst"
        fi
    elif [ -d "$root$path" ]; then
        mkdir -p "$dst"
        # Not the prebuilt monolithic EFI images, nor helper programs grub-install does not run.
        (cd "$root$path" && find . \( -path ./monolithic -o -name grub-bios-setup -o \
            -name grub-ntldr-img \) -prune -o -print) | while read -r f; do
            f=${f#./}
            [ -n "$f" ] || continue
            if [ -d "$root$path/$f" ]; then mkdir -p "$dst/$f"; else cp -a "$root$path/$f" "$dst/$f"; fi
        done
    elif [ -f "$root$path" ]; then
        mkdir -p "$(dirname "$dst")"
        rm -f "$dst"
        cp -p "$root$path" "$dst"
    else
        die "$pkg has no $path"
    fi
}

# busybox (static) and its applet links first, so that the real tools installed next replace
# the applets of the same name (losetup, blkid, mount, fdisk, mkswap, hwclock...).
BBX=$(extracted busybox-static)
[ -x "$BBX/bin/busybox" ] || die "busybox-static has no /bin/busybox"
cp -p "$BBX/bin/busybox" "$STAGE/usr/bin/busybox"
if [ "$(uname -m)" = "$ARCH" ]; then
    applets=$("$STAGE/usr/bin/busybox" --list-full)
elif command -v "$QEMU_USER" >/dev/null; then
    applets=$("$QEMU_USER" "$STAGE/usr/bin/busybox" --list-full)
elif command -v busybox >/dev/null; then
    warn "cannot run the $ARCH busybox ($QEMU_USER missing): using the host busybox's applet list"
    applets=$(busybox --list-full)
else
    die "cannot list the busybox applets: install qemu-user-static (for $QEMU_USER) or busybox"
fi
n_applets=0
set -f # applet names such as [ and [[ are not globs
for a in $applets; do
    name=${a##*/}
    case $name in busybox | init | linuxrc) continue ;; esac
    dst=$STAGE/$(usrpath "$a")
    [ -e "$dst" ] && continue
    mkdir -p "$(dirname "$dst")"
    case $dst in
        */usr/bin/*) ln -s busybox "$dst" ;;
        *) ln -s ../bin/busybox "$dst" ;;
    esac
    n_applets=$((n_applets + 1))
done
set +f
log "busybox: $n_applets applets"

install_tools() {
    local entry pkg path paths
    for entry in "$@"; do
        read -r pkg paths <<<"$entry"
        for path in $paths; do install_path "$pkg" "$path"; done
    done
}
install_tools "${TOOLS[@]}"
WITH_GRUB=0
if [ "$GRUB" != no ]; then
    install_tools "${GRUB_TOOLS[@]}"
    WITH_GRUB=1
fi

# --- shared libraries -------------------------------------------------------------------------
# Every NEEDED library of every ELF file, recursively, is looked up in the extracted packages
# (the tool packages and their library dependencies) and copied to /usr/lib/<triplet>; so is the
# dynamic loader at the path the binaries request. A library that cannot be found stops the
# build with its name.
declare -A LIB_SRC=()
for pkg in "${LIB_PKGS[@]}" "${TOOL_PKGS[@]}"; do
    root=$(extracted "$pkg")
    for d in lib/$TRIPLET usr/lib/$TRIPLET lib usr/lib lib64; do
        [ -d "$root/$d" ] || continue
        while read -r f; do
            name=${f##*/}
            [ -n "${LIB_SRC[$name]:-}" ] || LIB_SRC[$name]="$root|/$d/$name"
        done < <(find "$root/$d" -maxdepth 1 \( -type f -o -type l \) -name '*.so*')
    done
done
# Then libraries that packages keep in a sub-directory of the multiarch directory and find
# through a RUNPATH (librados2: ceph/libceph-common.so.2); they are installed flat into
# /usr/lib/<triplet>, where the loader's default search finds them.
for pkg in "${LIB_PKGS[@]}" "${TOOL_PKGS[@]}"; do
    root=$(extracted "$pkg")
    for d in lib/$TRIPLET usr/lib/$TRIPLET; do
        [ -d "$root/$d" ] || continue
        while read -r f; do
            name=${f##*/}
            [ -n "${LIB_SRC[$name]:-}" ] || LIB_SRC[$name]="$root|${f#"$root"}"
        done < <(find "$root/$d" -mindepth 2 -maxdepth 2 \( -type f -o -type l \) -name 'lib*.so*')
    done
done

declare -A LIB_DONE=()
INTERP=
install_lib() { # install_lib SONAME WHO
    local name=$1 src root path real
    [ -n "${LIB_DONE[$name]:-}" ] && return 0
    src=${LIB_SRC[$name]:-}
    [ -n "$src" ] || die "shared library $name (needed by $2) is in none of the $DEBARCH packages fetched; add its package to the tool list"
    root=${src%%|*}
    path=${src#*|}
    real=$(resolve_in "$root" "$path")
    cp "$root$real" "$STAGE/usr/lib/$TRIPLET/$name"
    LIB_DONE[$name]=1
    ELF_QUEUE+=("$STAGE/usr/lib/$TRIPLET/$name")
}

# resolve_libs: (re)fills /usr/lib/<triplet> with the closure of the ELF programs now in
# /usr/bin and /usr/sbin.
resolve_libs() {
    local f i lib ldname dst
    mkdir -p "$STAGE/usr/lib/$TRIPLET"
    find "$STAGE/usr/lib/$TRIPLET" -maxdepth 1 ! -type d -delete
    LIB_DONE=()
    INTERP=
    ELF_QUEUE=()
    while read -r f; do
        is_elf "$f" && ELF_QUEUE+=("$f")
    done < <(find "$STAGE/usr/bin" "$STAGE/usr/sbin" "$STAGE/usr/lib/$TRIPLET" -type f | LC_ALL=C sort)
    N_PROGS=${#ELF_QUEUE[@]}
    while [ ${#ELF_QUEUE[@]} -gt 0 ]; do
        f=${ELF_QUEUE[0]}
        ELF_QUEUE=("${ELF_QUEUE[@]:1}")
        readelf -h "$f" 2>/dev/null | grep -q "Machine:.*$ELF_MACHINE" ||
            die "$f is not an ELF file for $ARCH"
        i=$(readelf -lW "$f" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
        if [ -n "$i" ] && [ -z "$INTERP" ]; then INTERP=$i; fi
        for lib in $(readelf -dW "$f" | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]/\1/p'); do
            install_lib "$lib" "${f#"$STAGE"}"
        done
    done
    if [ -n "$INTERP" ]; then
        # The loader's real file was copied as a NEEDED of libc; put a link where binaries ask.
        ldname=${INTERP##*/}
        install_lib "$ldname" "the binaries (program interpreter)"
        dst=$STAGE/$(usrpath "$INTERP")
        if [ "$dst" != "$STAGE/usr/lib/$TRIPLET/$ldname" ]; then
            mkdir -p "$(dirname "$dst")"
            ln -sf "$(realpath -m --relative-to="$(dirname "$dst")" "$STAGE/usr/lib/$TRIPLET/$ldname")" "$dst"
        fi
    fi
    log "tools: $N_PROGS ELF programs, ${#LIB_DONE[@]} shared libraries, loader ${INTERP:-none}"
}
# glibc iconv modules for the FAT code pages (mkfs.vfat/fsck.fat convert labels through them and
# warn without), with a gconv-modules file that declares only those.
LIBC_X=$(extracted libc6)
GCONV=usr/lib/$TRIPLET/gconv
mkdir -p "$STAGE/$GCONV"
for cp in IBM437 IBM850; do
    cp -p "$LIBC_X/$GCONV/$cp.so" "$STAGE/$GCONV/"
    grep -hE "[[:space:]]$cp//" "$LIBC_X/$GCONV"/gconv-modules "$LIBC_X/$GCONV"/gconv-modules.d/*.conf
done >"$STAGE/$GCONV/gconv-modules"
resolve_libs

# --- the agent --------------------------------------------------------------------------------
# check_static WHAT FILE HINT: FILE, if an ELF binary, must be a static one for ARCH.
check_static() {
    readelf -h "$2" | grep -q "Machine:.*$ELF_MACHINE" ||
        die "$1 $2 is not an $ARCH binary ($(readelf -h "$2" | sed -n 's/ *Machine: *//p'))"
    if readelf -lW "$2" | grep -q 'Requesting program interpreter' ||
        readelf -dW "$2" 2>/dev/null | grep -q '(NEEDED)'; then
        die "$1 $2 is dynamically linked; $3"
    fi
}

install -m 0755 "$AGENT" "$STAGE/usr/bin/ironic-agent"
if is_elf "$AGENT"; then
    check_static agent "$AGENT" "the ramdisk expects the static (musl) agent build"
else
    warn "$AGENT is not an ELF binary (a placeholder script?); installed as is"
fi

# --- hardware-manager plug-ins and extra files ------------------------------------------------
# Plug-ins go where the agent looks by default (--hardware-managers-dir); each must run in the
# ramdisk: a static binary for ARCH, or a script for busybox sh.
PLUGIN_DIR=$STAGE/etc/ironic-agent/hardware-managers.d
mkdir -p "$PLUGIN_DIR"
for p in "${PLUGINS[@]}"; do
    if is_elf "$p"; then
        check_static plug-in "$p" "build it statically (scripts/build-static.sh builds the example)"
    fi
    install -m 0755 "$p" "$PLUGIN_DIR/$(basename "$p")"
    log "plug-in: /etc/ironic-agent/hardware-managers.d/$(basename "$p")"
done
for f in "${ADD_FILES[@]}"; do
    install -D -m 0644 "${f%%:*}" "$STAGE${f#*:}"
    log "file: ${f#*:}"
done

# --- kernel modules ---------------------------------------------------------------------------
MODDIR=$KX/lib/modules/$KVER
declare -A MOD_PATH=() MOD_DEPS=() MOD_ALIAS=() MOD_BUILTIN=() MOD_SOFT=()
while IFS=: read -r path deps; do
    name=${path##*/}
    name=${name%.ko*}
    name=${name//-/_}
    MOD_PATH[$name]=$path
    MOD_DEPS[$name]=$deps
done <"$MODDIR/modules.dep"
while read -r path; do
    name=${path##*/}
    name=${name%.ko}
    MOD_BUILTIN[${name//-/_}]=1
done <"$MODDIR/modules.builtin"
while read -r _ alias name; do
    [ -n "${MOD_ALIAS[$alias]:-}" ] || MOD_ALIAS[$alias]=${name//-/_}
done < <(grep '^alias ' "$MODDIR/modules.alias" 2>/dev/null | grep -v '[*?[]')
while read -r _ name rest; do
    MOD_SOFT[${name//-/_}]=$(echo "$rest" | sed 's/\(pre\|post\)://g')
done < <(grep '^softdep ' "$MODDIR/modules.softdep" 2>/dev/null || true)

declare -A MOD_WANT=()
BOOT_LIST=()
BUILTIN_LIST=()
MISSING_LIST=()
# want_module NAME [boot]: adds a module and its dependencies (hard and soft) to the ramdisk.
want_module() {
    local req=$1 boot=${2:-} name optional=0 dep d
    case $req in *\?) optional=1; req=${req%\?} ;; esac
    name=${req//-/_}
    if [ -z "${MOD_PATH[$name]:-}" ] && [ -n "${MOD_ALIAS[$name]:-}" ]; then name=${MOD_ALIAS[$name]}; fi
    if [ -z "${MOD_PATH[$name]:-}" ]; then
        if [ -n "${MOD_BUILTIN[$name]:-}" ]; then
            [ -n "$boot" ] && BUILTIN_LIST+=("$name")
        elif [ $optional = 0 ]; then
            MISSING_LIST+=("$name")
        fi
        return 0
    fi
    if [ -n "$boot" ]; then BOOT_LIST+=("$name"); fi
    [ -n "${MOD_WANT[$name]:-}" ] && return 0
    MOD_WANT[$name]=1
    for dep in ${MOD_DEPS[$name]}; do
        d=${dep##*/}
        d=${d%.ko*}
        want_module "${d//-/_}?"
    done
    for dep in ${MOD_SOFT[$name]:-}; do want_module "$dep?"; done
}
for m in "${MODULES_BOOT[@]}"; do want_module "$m" boot; done
for m in "${MODULES_ONDEMAND[@]}"; do want_module "$m"; done
if [ "$HW_MODULES" = 1 ]; then
    for m in "${MODULES_HW[@]}"; do want_module "$m"; done
fi
for m in ${EXTRA_MODULES//,/ }; do want_module "$m" boot; done
[ ${#MISSING_LIST[@]} -eq 0 ] || warn "kernel modules not found in $KVER: ${MISSING_LIST[*]}"

SMOD=$STAGE/usr/lib/modules/$KVER
mkdir -p "$SMOD"
for name in "${!MOD_WANT[@]}"; do
    path=${MOD_PATH[$name]}
    mkdir -p "$SMOD/$(dirname "$path")"
    cp -p "$MODDIR/$path" "$SMOD/$path"
done
for f in modules.builtin modules.builtin.modinfo modules.order; do
    [ -f "$MODDIR/$f" ] && cp -p "$MODDIR/$f" "$SMOD/"
done
depmod -b "$STAGE" "$KVER" || die "depmod failed on the staged modules"
mkdir -p "$STAGE/etc/ironic-agent/hardware-managers.d"
{
    echo "# Kernel modules /init loads in this order (built by $PROG; kernel $KVER)."
    printf '%s\n' "${BOOT_LIST[@]}" | awk '!seen[$0]++'
} >"$STAGE/etc/ironic-agent/modules"
log "kernel $KVER: ${#MOD_WANT[@]} modules (${#BOOT_LIST[@]} loaded at boot; built in: ${BUILTIN_LIST[*]:-none})"

# --- /init and /etc ---------------------------------------------------------------------------
install -m 0755 "$INITRAMFS_SRC/init" "$STAGE/init"
install -D -m 0755 "$INITRAMFS_SRC/udhcpc.script" "$STAGE/etc/udhcpc/default.script"
install -m 0755 "$INITRAMFS_SRC/dhcpcd.script" "$STAGE/etc/dhcpcd.script"
install -m 0644 "$INITRAMFS_SRC/dhcpcd.conf" "$STAGE/etc/dhcpcd.conf"
for p in poweroff reboot halt; do
    rm -f "$STAGE/usr/sbin/$p"
    install -m 0755 "$INITRAMFS_SRC/power" "$STAGE/usr/sbin/$p"
done
install -m 0755 "$INITRAMFS_SRC/rescue-user" "$STAGE/usr/sbin/ironic-agent-rescue-user"

echo ironic-agent >"$STAGE/etc/hostname"
cat >"$STAGE/etc/hosts" <<'EOF'
127.0.0.1	localhost ironic-agent
::1	localhost ip6-localhost ip6-loopback
EOF
cat >"$STAGE/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
dhcpcd:x:100:65534:DHCP Client Daemon:/usr/lib/dhcpcd:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$STAGE/etc/group" <<'EOF'
root:x:0:
tty:x:5:
disk:x:6:
nogroup:x:65534:
EOF
cat >"$STAGE/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
EOF
cat >"$STAGE/etc/profile" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PS1='ironic-agent:\w\$ '
echo "ironic-agent ramdisk debug shell; agent log: /run/ironic-agent.log"
EOF
# grub-install warns when there is no locale directory to copy translations from.
mkdir -p "$STAGE/usr/share/locale"
: >"$STAGE/etc/fstab"
: >"$STAGE/etc/resolv.conf"
ln -s ../proc/self/mounts "$STAGE/etc/mtab"
mkdir -p "$STAGE/etc/mdadm" "$STAGE/usr/lib/dhcpcd" "$STAGE/var/lib/dhcpcd"
echo "HOMEHOST <none>" >"$STAGE/etc/mdadm/mdadm.conf"
cat >"$STAGE/etc/os-release" <<EOF
PRETTY_NAME="ironic-agent ramdisk (Debian 12 kernel $KVER)"
NAME="ironic-agent ramdisk"
ID=ironic-agent-ramdisk
ID_LIKE=debian
VERSION_ID="$KVER"
EOF
# CA certificates for the agent's TLS (rustls-native-certs reads /etc/ssl/certs).
CAX=$(extracted ca-certificates)
mkdir -p "$STAGE/etc/ssl/certs"
find "$CAX/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort | xargs cat >"$STAGE/etc/ssl/certs/ca-certificates.crt"
[ -s "$STAGE/etc/ssl/certs/ca-certificates.crt" ] || die "no CA certificates in ca-certificates"

# --- --rootfs-out: the staging tree as a directory --------------------------------------------
# For tests/images/build-test-os.sh: the same userspace as the ramdisk, as a root tree with the
# kernel in /boot. Copied next to DIR first, then swapped in, so that a failed copy leaves no
# half tree at DIR.
if [ -n "$ROOTFS_OUT" ]; then
    mkdir -p "$(dirname "$ROOTFS_OUT")"
    rm -rf "$ROOTFS_OUT.tmp"
    cp -a "$STAGE" "$ROOTFS_OUT.tmp" || die "cannot copy the staging tree to $ROOTFS_OUT.tmp"
    mkdir -p "$ROOTFS_OUT.tmp/boot"
    cp -p "$KX/boot/vmlinuz-$KVER" "$ROOTFS_OUT.tmp/boot/vmlinuz-$KVER"
    echo "$KVER" >"$ROOTFS_OUT.tmp/boot/kernel-version"
    rm -rf "$ROOTFS_OUT"
    mv "$ROOTFS_OUT.tmp" "$ROOTFS_OUT"
    echo "$PROG: $ARCH root tree written in $(($(date +%s) - START_TIME)) s to $ROOTFS_OUT (kernel $KVER, GRUB $([ $WITH_GRUB = 1 ] && echo included || echo left out), $(du -sm "$ROOTFS_OUT" | cut -f1) MB)"
    exit 0
fi

# --- archive ----------------------------------------------------------------------------------
# newc_dev NAME MODE MAJOR MINOR: one newc cpio entry for a device node, so that /dev/console
# exists before /init mounts devtmpfs (the kernel opens it for init's stdin/out/err) without
# needing root to mknod in the staging tree.
NEWC_INO=900000
newc_entry() { # NAME MODE(octal) RDEVMAJOR RDEVMINOR
    local name=$1 mode=$((8#$2)) hdr pad
    NEWC_INO=$((NEWC_INO + 1))
    hdr=$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$NEWC_INO" "$mode" 0 0 1 0 0 0 0 "$3" "$4" $((${#name} + 1)) 0)
    printf '%s%s\0' "$hdr" "$name"
    pad=$(((4 - (110 + ${#name} + 1) % 4) % 4))
    head -c "$pad" /dev/zero
}
dev_cpio() {
    newc_entry dev 040755 0 0
    newc_entry dev/console 020600 5 1
    newc_entry dev/null 020666 1 3
    newc_entry TRAILER!!! 0 0 0
}

# The initramfs is two concatenated compressed cpio archives (the kernel unpacks them in turn):
#   base: kernel modules, busybox, tools, libraries; depends only on the packages, so it is
#         compressed once and cached in $CACHE/base-<sha256 of its cpio>.cpio.<ext>;
#   top:  /dev nodes, /init, /etc and the agent; small, compressed at every build.
# File times are set to the kernel package's build time so that the same packages give the same
# base archive, byte for byte.
TOP_PATHS='^(init|etc|etc/.*|usr/bin/ironic-agent|usr/sbin/(poweroff|reboot|halt))$'
EPOCH=$(stat -c %Y "$KX/boot/vmlinuz-$KVER")

compress() { # compress IN OUT
    case $COMPRESS in
        zstd) zstd -q -19 -T0 -f "$1" -o "$2" ;;
        # The kernel's xz decoder wants CRC32 (or no) integrity checks.
        xz) xz -q -9 --check=crc32 -T1 -c "$1" >"$2" ;;
    esac
}

stage_cpio() { # stage_cpio base|top: the cpio of that part of the staging tree, on stdout
    local sel=-v
    [ "$1" = top ] && sel=
    (cd "$STAGE" && find . -mindepth 1 -printf '%P\n' | grep -E $sel "$TOP_PATHS" | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0 --reproducible)
}

build_archive() {
    local sum base
    find "$STAGE" -exec touch -h -d "@$EPOCH" {} +
    stage_cpio base >"$WORK/base.cpio"
    sum=$(sha256sum "$WORK/base.cpio" | cut -c1-16)
    base=$CACHE/base-$sum.cpio.$COMPRESS
    if [ -s "$base" ]; then
        log "base archive unchanged: reusing $(basename "$base")"
        touch "$base"
    else
        log "compressing the base archive ($COMPRESS; about a minute)"
        compress "$WORK/base.cpio" "$base.tmp"
        mv "$base.tmp" "$base"
        # Keep the three most recent base archives of this compression.
        ls -t "$CACHE"/base-*.cpio."$COMPRESS" 2>/dev/null | tail -n +4 | xargs -r rm -f
    fi
    { dev_cpio; stage_cpio top; } >"$WORK/top.cpio"
    compress "$WORK/top.cpio" "$WORK/top.cpio.$COMPRESS"
    cat "$base" "$WORK/top.cpio.$COMPRESS" >"$WORK/initramfs.img"
    CPIO_SIZE=$(($(fsize "$WORK/base.cpio") + $(fsize "$WORK/top.cpio")))
}

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1048576 }'; }
fsize() { stat -c %s "$1"; }

build_archive
if [ "$GRUB" = auto ] && [ "$(fsize "$WORK/initramfs.img")" -gt $((MAX_MB * 1048576)) ]; then
    warn "initramfs with GRUB is $(mb "$(fsize "$WORK/initramfs.img")"), over the ${MAX_MB} MB goal: leaving GRUB out"
    rm -rf "$STAGE/usr/lib/grub"
    for t in grub-install grub-mkimage grub-probe grub-editenv grub-mkrelpath; do
        rm -f "$STAGE/usr/sbin/$t" "$STAGE/usr/bin/$t"
    done
    WITH_GRUB=0
    resolve_libs
    build_archive
fi

# --- manifest ---------------------------------------------------------------------------------
{
    echo "# ironic-agent initramfs for $ARCH, built $(date -u +%Y-%m-%dT%H:%M:%SZ) by $PROG"
    echo "kernel: $KPKG ($KVER)"
    echo "agent: $(basename "$AGENT") $(sha256sum "$AGENT" | cut -c1-16)"
    echo "grub: $([ $WITH_GRUB = 1 ] && echo included || echo left out)"
    echo "burn-in tools: $([ "$BURNIN_TOOLS" = 1 ] && echo included || echo left out)"
    for p in "${PLUGINS[@]}"; do
        echo "plug-in: $(basename "$p") $(sha256sum "$p" | cut -c1-16)"
    done
    echo "packages:"
    for pkg in $(printf '%s\n' "$KPKG" "${TOOL_PKGS[@]}" "${LIB_PKGS[@]}" | sort -u); do
        echo "  $(basename "${DEB_OF[$pkg]}" .deb)"
    done
    echo "modules loaded at boot: $(grep -v '^#' "$STAGE/etc/ironic-agent/modules" | tr '\n' ' ')"
    echo "modules in the ramdisk: $(printf '%s\n' "${!MOD_WANT[@]}" | sort | tr '\n' ' ')"
    echo "shared libraries: $(printf '%s\n' "${!LIB_DONE[@]}" | sort | tr '\n' ' ')"
} >"$WORK/manifest"

# --- outputs ----------------------------------------------------------------------------------
# The kernel as Debian ships it: bzImage on x86_64; on arm64 an uncompressed Image with an EFI
# stub (UEFI/GRUB load it, and so does QEMU's -kernel).
cp "$KX/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$WORK/initramfs.img" "$OUT/initramfs.img"
IMG_SIZE=$(fsize "$OUT/initramfs.img")
KSIZE=$(fsize "$OUT/vmlinuz")
{
    cat "$WORK/manifest"
    echo "sizes: vmlinuz $KSIZE, initramfs.img $IMG_SIZE ($COMPRESS), uncompressed cpio $CPIO_SIZE"
    echo "files:"
    (cd "$STAGE" && find . -mindepth 1 ! -type d | LC_ALL=C sort | sed 's|^\./|  /|')
} >"$OUT/initramfs.manifest"

[ "$IMG_SIZE" -le $((MAX_MB * 1048576)) ] ||
    warn "initramfs.img is $(mb "$IMG_SIZE"), over the ${MAX_MB} MB goal"
echo "$PROG: $ARCH ramdisk built in $(($(date +%s) - START_TIME)) s (kernel $KVER, GRUB $([ $WITH_GRUB = 1 ] && echo included || echo left out))"
echo "  $OUT/vmlinuz: $KSIZE bytes ($(mb "$KSIZE"))"
echo "  $OUT/initramfs.img: $IMG_SIZE bytes ($(mb "$IMG_SIZE"), $COMPRESS; uncompressed $(mb "$CPIO_SIZE"))"
