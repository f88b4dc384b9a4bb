#!/usr/bin/env bash
# build-test-os.sh: builds the tiny "test OS" images that the VM tests deploy with ironic-agent
# to check bootloader installation. They boot the Debian 12 kernel of the minimal ramdisk with a
# busybox initrd that prints one marker line and powers off:
#
#   IRONIC-AGENT-TEST-OS: booted cmdline=<the kernel command line>
#
#   tests/images/build-test-os.sh --arch x86_64|aarch64 --agent BIN --out DIR \
#       [--host-rootfs DIR] [--check]     (--check: boot-test the images in QEMU)
#
# Outputs in DIR (see README.md in this directory):
#   rootfs/               the ramdisk's staging tree (build-initramfs.sh --rootfs-out), with GRUB
#   marker-initrd.img     gzip'd newc cpio: static busybox + /init printing the marker line
#   whole-disk-uefi.img   64 MiB GPT disk: ESP with a standalone GRUB, kernel, marker initrd,
#                         and the shim-style BOOT<ARCH>.CSV, but no EFI/BOOT fallback loader
#   partition.img         (x86_64) ext4 root filesystem with the grub tools and /etc/grub.d,
#                         for the agent's chroot grub-install + grub-mkconfig path
#   kernel-version, MANIFEST
#
# Root is not needed (no mounts, no loop devices): the ESP is filled with mtools, the ext4 image
# with mke2fs -d. Run as root anyway for root-owned files in partition.img (mke2fs -d copies the
# owners of the tree). Idempotent: every output is rebuilt and replaced.
set -euo pipefail

PROG=build-test-os.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD_INITRAMFS=$REPO/ramdisk-elements/build-initramfs.sh

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}
log() { echo "$PROG: $*" >&2; }
warn() { echo "$PROG: WARNING: $*" >&2; }

usage() {
    cat <<EOF
usage: $PROG --arch x86_64|aarch64 --agent PATH --out DIR [--host-rootfs DIR] [--check]

  --arch ARCH         x86_64 or aarch64
  --agent PATH        the static ironic-agent for ARCH (build-initramfs.sh wants one; it is not
                      in the images)
  --out DIR           output directory (created; its outputs are replaced)
  --host-rootfs DIR   for a cross-architecture build: a rootfs/ of this script built for the
                      host's architecture (e.g. OUT_X86_64/rootfs), whose grub-mkimage then makes
                      the GRUB EFI binary natively. Without it, the target rootfs's own
                      grub-mkimage runs under qemu-user (qemu-user-static)
  --check             then boot-test the images in QEMU (TCG; no root needed; logs in
                      DIR/check/): whole-disk-uefi.img under OVMF/AAVMF (on a copy given an
                      EFI/BOOT fallback loader; and, x86_64, the image as is, which must NOT
                      boot); x86_64 also the agent's chroot grub path on partition.img, BIOS and
                      UEFI: a helper VM runs grub-install and grub-mkconfig in the chroot, then
                      the disk must boot to the marker. About 1.5 min for x86_64 (TCG), 20 s
                      for aarch64

environment:
  IRONIC_AGENT_RAMDISK_CACHE and the other variables of build-initramfs.sh
  IRONIC_AGENT_TEST_FW_CODE, IRONIC_AGENT_TEST_FW_VARS   --check's UEFI firmware (default
                      /usr/share/OVMF/OVMF_{CODE,VARS}_4M.fd, /usr/share/AAVMF/AAVMF_{CODE,VARS}.fd)
  IRONIC_AGENT_TEST_QEMU_ACCEL   --check's QEMU accelerator (default tcg; kvm where usable)
EOF
}

ARCH=
AGENT=
OUT=
HOST_ROOTFS=
CHECK=0
while [ $# -gt 0 ]; do
    case $1 in
        --arch) ARCH=${2:?--arch needs a value}; shift 2 ;;
        --agent) AGENT=${2:?--agent needs a value}; shift 2 ;;
        --out) OUT=${2:?--out needs a value}; shift 2 ;;
        --host-rootfs) HOST_ROOTFS=${2:?--host-rootfs needs a value}; shift 2 ;;
        --check) CHECK=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[ -n "$ARCH" ] || { usage >&2; die "--arch is required"; }
[ -n "$AGENT" ] || { usage >&2; die "--agent is required"; }
[ -n "$OUT" ] || { usage >&2; die "--out is required"; }
case $ARCH in
    x86_64 | amd64)
        ARCH=x86_64 TRIPLET=x86_64-linux-gnu GRUB_EFI=x86_64-efi EFI_NAME=grubx64.efi
        CSV_NAME=BOOTX64.CSV CONSOLE=ttyS0 QEMU_USER=qemu-x86_64-static
        ;;
    aarch64 | arm64)
        ARCH=aarch64 TRIPLET=aarch64-linux-gnu GRUB_EFI=arm64-efi EFI_NAME=grubaa64.efi
        CSV_NAME=BOOTAA64.CSV CONSOLE=ttyAMA0 QEMU_USER=qemu-aarch64-static
        ;;
    *) die "unsupported --arch '$ARCH' (x86_64 or aarch64)" ;;
esac
[ -f "$AGENT" ] || die "agent binary not found: $AGENT"
[ -x "$BUILD_INITRAMFS" ] || die "missing $BUILD_INITRAMFS"

# --- host tools -------------------------------------------------------------------------------
# tool:Debian package, for the error message.
missing=()
for t in cpio:cpio gzip:gzip mkfs.vfat:dosfstools mmd:mtools mcopy:mtools mdir:mtools mtype:mtools \
    sfdisk:fdisk mke2fs:e2fsprogs iconv:libc-bin readelf:binutils sha256sum:coreutils \
    truncate:coreutils dd:coreutils; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t%%:*} (${t#*:})")
done
[ ${#missing[@]} -eq 0 ] ||
    die "missing host tools: ${missing[*]}; on Debian: apt-get install cpio gzip dosfstools mtools fdisk e2fsprogs binutils (or run scripts/install-ramdisk-deps.sh)"
# mke2fs -d (populate from a directory) needs e2fsprogs 1.43 or later.
mke2fs -V 2>&1 | awk '/^mke2fs/ { split($2, v, "."); exit !(v[1] > 1 || (v[1] == 1 && v[2] >= 43)) }' ||
    die "mke2fs is too old for -d (needs e2fsprogs 1.43 or later): $(mke2fs -V 2>&1 | head -1)"
if [ "$CHECK" = 1 ]; then
    case $ARCH in
        x86_64)
            QEMU_SYS=qemu-system-x86_64 QEMU_PKG=qemu-system-x86 FW_PKG=ovmf
            FW_CODE=${IRONIC_AGENT_TEST_FW_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
            FW_VARS=${IRONIC_AGENT_TEST_FW_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
            ;;
        aarch64)
            QEMU_SYS=qemu-system-aarch64 QEMU_PKG=qemu-system-arm FW_PKG=qemu-efi-aarch64
            FW_CODE=${IRONIC_AGENT_TEST_FW_CODE:-/usr/share/AAVMF/AAVMF_CODE.fd}
            FW_VARS=${IRONIC_AGENT_TEST_FW_VARS:-/usr/share/AAVMF/AAVMF_VARS.fd}
            ;;
    esac
    command -v "$QEMU_SYS" >/dev/null 2>&1 || die "--check needs $QEMU_SYS (apt-get install $QEMU_PKG)"
    for f in "$FW_CODE" "$FW_VARS"; do
        [ -r "$f" ] || die "--check needs the UEFI firmware $f (apt-get install $FW_PKG, or set IRONIC_AGENT_TEST_FW_CODE and IRONIC_AGENT_TEST_FW_VARS)"
    done
fi
[ "$(id -u)" = 0 ] ||
    warn "not root: the files in partition.img will belong to uid $(id -u), not root"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROOTFS=$OUT/rootfs
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironic-agent-test-os.XXXXXX")
QEMU_PID=
cleanup() {
    if [ -n "$QEMU_PID" ]; then kill "$QEMU_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
START_TIME=$(date +%s)
export MTOOLS_SKIP_CHECK=1 # mtools: no geometry checks on image files

# --- 1. the root tree -------------------------------------------------------------------------
# The ramdisk's userspace (busybox, disk tools, GRUB with its module directories) as a directory.
# x86_64 also gets what the agent's chroot "grub-mkconfig" needs beyond grub-install: the script,
# its library and /etc/grub.d, grub-script-check (grub-mkconfig checks the generated file with
# it, and fails without it) and gettext (the scripts print through it; busybox has none).
EXTRA=()
if [ "$ARCH" = x86_64 ]; then
    # shellcheck disable=SC2054 # the commas separate the paths of one --extra-tool
    EXTRA=(
        --extra-tool grub-common:/usr/sbin/grub-mkconfig,/etc/grub.d,/usr/share/grub/grub-mkconfig_lib,/usr/bin/grub-script-check
        --extra-tool gettext-base:/usr/bin/gettext
    )
fi
log "building the $ARCH root tree in $ROOTFS (build-initramfs.sh --rootfs-out)"
"$BUILD_INITRAMFS" --arch "$ARCH" --agent "$AGENT" --rootfs-out "$ROOTFS" \
    --grub yes --no-hw-modules "${EXTRA[@]}" ||
    die "build-initramfs.sh --rootfs-out failed"
KVER=$(cat "$ROOTFS/boot/kernel-version")
KERNEL=$ROOTFS/boot/vmlinuz-$KVER
[ -f "$KERNEL" ] || die "no kernel at $KERNEL"
BUSYBOX=$ROOTFS/usr/bin/busybox
[ -f "$BUSYBOX" ] || die "no busybox in $ROOTFS"
if readelf -lW "$BUSYBOX" | grep -q 'Requesting program interpreter'; then
    die "$BUSYBOX is not static (busybox-static expected)"
fi
EPOCH=$(stat -c %Y "$KERNEL") # file times in the images: the kernel's build time

# --- 2. marker-initrd.img ---------------------------------------------------------------------
# /init prints the marker line once on the console and powers off. /dev/console is a cpio entry
# (below) so that the kernel can open it for init before devtmpfs is mounted; written by hand,
# like build-initramfs.sh does, so that no mknod (root) is needed.
log "marker-initrd.img: busybox + /init"
MI=$WORK/marker-initrd
mkdir -p "$MI/bin" "$MI/proc" "$MI/sys" "$MI/dev"
cp -p "$BUSYBOX" "$MI/bin/busybox"
cat >"$MI/init" <<'EOF'
#!/bin/busybox sh
# ironic-agent test OS: print the marker line with the kernel command line, then power off.
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev 2>/dev/null
# Only errors from the kernel from now on, so that no kernel message splits the marker line.
echo 3 >/proc/sys/kernel/printk
echo "IRONIC-AGENT-TEST-OS: booted cmdline=$($bb cat /proc/cmdline)" >/dev/console
$bb sync
$bb poweroff -f
# poweroff -f does not return; if it does, keep PID 1 alive (no panic loop).
while :; do $bb sleep 3600; done
EOF
chmod 0755 "$MI/init"

NEWC_INO=900000
newc_entry() { # NAME MODE(octal) RDEVMAJOR RDEVMINOR: one newc header without data
    local name=$1 mode=$((8#$2)) pad
    NEWC_INO=$((NEWC_INO + 1))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0' \
        "$NEWC_INO" "$mode" 0 0 1 "$EPOCH" 0 0 0 "$3" "$4" $((${#name} + 1)) 0 "$name"
    pad=$(((4 - (110 + ${#name} + 1) % 4) % 4))
    head -c "$pad" /dev/zero
}
find "$MI" -exec touch -h -d "@$EPOCH" {} +
{
    (cd "$MI" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0 --reproducible)
    newc_entry dev/console 020600 5 1
    newc_entry TRAILER!!! 0 0 0
} | gzip -n -9 >"$WORK/marker-initrd.img"
# The kernel unpacks the concatenated archives in turn; check that cpio sees both parts.
gzip -dc "$WORK/marker-initrd.img" | cpio -t --quiet 2>/dev/null | grep -qx init ||
    die "marker-initrd.img: no /init in the archive"

# --- 3. the standalone GRUB EFI binary --------------------------------------------------------
# grub-mkimage's output depends only on the module directory and the options, not on the host
# (it is a plain ELF-to-PE converter). It runs from a rootfs, with that tree's loader and
# libraries, so the host needs no GRUB:
#   - same architecture as the host: the target rootfs's own grub-mkimage;
#   - --host-rootfs DIR: that (host-architecture) tree's grub-mkimage, checked to be the same
#     GRUB package version as the target's modules;
#   - otherwise: the target rootfs's grub-mkimage under qemu-user ($QEMU_USER).
HOST_ARCH=$(uname -m)
interp_of() { readelf -lW "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p'; }
MODDIR=$ROOTFS/usr/lib/grub/$GRUB_EFI
[ -f "$MODDIR/kernel.img" ] || die "no GRUB $GRUB_EFI modules in $MODDIR"
pkgver_of() { sed -n "s/^grub_package_version=[\"']\(.*\)[\"']$/\1/p" "$1/modinfo.sh"; }
MOD_VERSION=$(pkgver_of "$MODDIR")
MKIMAGE_RUNNER=()
if [ "$HOST_ARCH" = "$ARCH" ]; then
    MK_ROOT=$ROOTFS MK_TRIPLET=$TRIPLET
    MKIMAGE_HOW="the $ARCH rootfs's grub-mkimage (native)"
elif [ -n "$HOST_ROOTFS" ]; then
    MK_ROOT=$(cd "$HOST_ROOTFS" && pwd) MK_TRIPLET=$HOST_ARCH-linux-gnu
    MKIMAGE_HOW="$MK_ROOT's grub-mkimage (native, --host-rootfs)"
    host_ver=$(find "$MK_ROOT/usr/lib/grub" -mindepth 2 -maxdepth 2 -name modinfo.sh 2>/dev/null | head -1 | xargs -r dirname)
    [ -n "$host_ver" ] || die "--host-rootfs $MK_ROOT has no GRUB modules (not a rootfs of this script?)"
    host_ver=$(pkgver_of "$host_ver")
    [ "$host_ver" = "$MOD_VERSION" ] ||
        die "--host-rootfs has GRUB $host_ver, the $ARCH modules are $MOD_VERSION: rebuild both"
elif command -v "$QEMU_USER" >/dev/null 2>&1; then
    MK_ROOT=$ROOTFS MK_TRIPLET=$TRIPLET
    MKIMAGE_RUNNER=("$(command -v "$QEMU_USER")")
    MKIMAGE_HOW="the $ARCH rootfs's grub-mkimage under $QEMU_USER"
else
    die "cannot run a grub-mkimage for $ARCH on this $HOST_ARCH host: install qemu-user-static (for $QEMU_USER), or pass --host-rootfs with a $HOST_ARCH rootfs of this script"
fi
MKIMAGE=$MK_ROOT/usr/bin/grub-mkimage
[ -f "$MKIMAGE" ] || die "no grub-mkimage in $MK_ROOT"
MK_INTERP=$(interp_of "$MKIMAGE")
if [ -z "$MK_INTERP" ] || [ ! -e "$MK_ROOT$MK_INTERP" ]; then
    die "no program interpreter for $MKIMAGE in $MK_ROOT"
fi
grub_mkimage() {
    "${MKIMAGE_RUNNER[@]}" "$MK_ROOT$MK_INTERP" --library-path "$MK_ROOT/usr/lib/$MK_TRIPLET" "$MKIMAGE" "$@"
}

# The embedded early config finds the ESP by a file on it and boots the kernel directly: no
# grub.cfg, no menu. If it fails, GRUB drops to its prompt (and the test times out).
cat >"$WORK/early.cfg" <<EOF
search --no-floppy --file --set=root /marker-os.txt
linux /vmlinuz console=$CONSOLE marker.case=whole-disk-uefi
initrd /initrd.img
boot
EOF
GRUB_MODULES=(part_gpt part_msdos fat search search_fs_file linux normal echo configfile gzio)
# x86_64: the GOP video driver, so that the kernel gets the firmware's framebuffer handed over.
[ "$ARCH" = x86_64 ] && GRUB_MODULES+=(efi_gop)
log "$EFI_NAME: grub-mkimage -O $GRUB_EFI (GRUB $MOD_VERSION) with $MKIMAGE_HOW"
grub_mkimage -O "$GRUB_EFI" -d "$MODDIR" -p /EFI/marker -c "$WORK/early.cfg" \
    -o "$WORK/$EFI_NAME" "${GRUB_MODULES[@]}" || die "grub-mkimage failed"
[ "$(head -c 2 "$WORK/$EFI_NAME")" = MZ ] || die "grub-mkimage did not write a PE image"

# --- 4. whole-disk-uefi.img -------------------------------------------------------------------
# GPT, 64 MiB: 1 = ESP (1 MiB, 48 MiB), 2 = Linux data (8 MiB, empty). The FAT file system is
# made in a separate file, filled with mtools and copied into place. Fixed GUIDs and volume id:
# the same inputs give the same layout. On purpose no EFI/BOOT/BOOT*.EFI: firmware cannot find
# the loader by itself, only through a boot entry that the agent creates from the CSV.
log "whole-disk-uefi.img: GPT, ESP with $EFI_NAME, $CSV_NAME, vmlinuz, initrd.img"
ESP=$WORK/esp.img
ESP_START_MIB=1 ESP_MIB=48 DATA_MIB=8 DISK_MIB=64
rm -f "$ESP"
truncate -s ${ESP_MIB}M "$ESP"
mkfs.vfat -F 32 -n TESTOS-ESP -i 7E570E51 "$ESP" >/dev/null || die "mkfs.vfat failed"
printf 'grub%s,Marker OS,,Test OS for ironic-agent\n' "$([ "$ARCH" = x86_64 ] && echo x64 || echo aa64).efi" >"$WORK/csv.txt"
{ printf '\xff\xfe'; iconv -f UTF-8 -t UTF-16LE "$WORK/csv.txt"; } >"$WORK/$CSV_NAME"
printf 'ironic-agent test OS (%s, kernel %s): whole-disk-uefi\n' "$ARCH" "$KVER" >"$WORK/marker-os.txt"
mmd -i "$ESP" ::/EFI ::/EFI/marker
mcopy -i "$ESP" -m "$WORK/$EFI_NAME" "::/EFI/marker/$EFI_NAME"
mcopy -i "$ESP" -m "$WORK/$CSV_NAME" "::/EFI/marker/$CSV_NAME"
mcopy -i "$ESP" -m "$KERNEL" ::/vmlinuz
mcopy -i "$ESP" -m "$WORK/marker-initrd.img" ::/initrd.img
mcopy -i "$ESP" -m "$WORK/marker-os.txt" ::/marker-os.txt
mdir -i "$ESP" -/ :: >"$WORK/esp.list" 2>&1 || die "mdir failed on the ESP: $(cat "$WORK/esp.list")"

DISK=$WORK/whole-disk-uefi.img
rm -f "$DISK"
truncate -s ${DISK_MIB}M "$DISK"
sfdisk --quiet --no-reread --no-tell-kernel "$DISK" <<EOF || die "sfdisk failed on $DISK"
label: gpt
label-id: 5E57D15C-0000-4000-8000-1A0B1CA9E175
start=$((ESP_START_MIB * 2048)), size=$((ESP_MIB * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=5E57D15C-0001-4000-8000-1A0B1CA9E175, name="EFI system partition"
start=$(((ESP_START_MIB + ESP_MIB) * 2048)), size=$((DATA_MIB * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=5E57D15C-0002-4000-8000-1A0B1CA9E175, name="test-os-data"
EOF
dd if="$ESP" of="$DISK" bs=1M seek=$ESP_START_MIB conv=notrunc status=none
# The ESP as seen through the partition table: the marker file must be there.
mtype -i "$DISK@@$((ESP_START_MIB * 1048576))" ::/marker-os.txt >/dev/null 2>&1 ||
    die "whole-disk-uefi.img: the ESP is not readable at its partition offset"

# --- 5. partition.img (x86_64) ----------------------------------------------------------------
# An ext4 root file system for the agent's partition-image deploy: it mounts it, binds /dev,
# /proc and /run, mounts sysfs on /sys and runs in `chroot ROOT /bin/sh -c ...`
# grub-install (BIOS: i386-pc; UEFI: x86_64-efi with the ESP on /boot/efi) and
# grub-mkconfig -o /boot/grub/grub.cfg, which finds /boot/vmlinuz-KVER and /boot/initrd.img-KVER
# (the marker initrd) through /etc/grub.d/10_linux.
PART_MIB=200
PART_UUID=7e57057e-0000-4000-8000-000000000001
if [ "$ARCH" = x86_64 ]; then
    log "partition.img: ext4 (${PART_MIB} MiB, label test-os-root, UUID $PART_UUID)"
    T=$WORK/partition-tree
    cp -a "$ROOTFS" "$T"
    # Not needed by the test OS (it boots the marker initrd): the ramdisk's modules, agent,
    # /init and the ramdisk-only configuration.
    rm -rf "$T/usr/lib/modules" "$T/usr/bin/ironic-agent" "$T/init" "$T/etc/ironic-agent" \
        "$T/boot/kernel-version"
    mkdir -p "$T/boot/grub" "$T/boot/efi" "$T/dev" "$T/proc" "$T/sys" "$T/run" "$T/tmp" "$T/etc/default"
    chmod 1777 "$T/tmp"
    cp -p "$WORK/marker-initrd.img" "$T/boot/initrd.img-$KVER"
    cat >"$T/etc/default/grub" <<'EOF'
# ironic-agent test OS: boot the only kernel at once, on the serial console.
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=TestOS
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0 marker.case=partition"
GRUB_TERMINAL=console
GRUB_DISABLE_OS_PROBER=true
EOF
    : >"$T/etc/fstab"
    echo test-os >"$T/etc/hostname"
    cat >"$T/etc/os-release" <<EOF
PRETTY_NAME="ironic-agent test OS (Debian 12 kernel $KVER)"
NAME="ironic-agent test OS"
ID=ironic-agent-test-os
ID_LIKE=debian
VERSION_ID="$KVER"
EOF
    cat >"$T/etc/profile" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
EOF
    DATA_KB=$(du -sk "$T" | cut -f1)
    log "partition.img: $((DATA_KB / 1024)) MiB of files"
    [ "$DATA_KB" -lt $((PART_MIB * 1024 * 6 / 10)) ] ||
        die "the partition tree ($((DATA_KB / 1024)) MiB) does not fit well in ${PART_MIB} MiB"
    find "$T" -exec touch -h -d "@$EPOCH" {} +
    # The ext4 features of Debian 12's mke2fs.conf, whatever the host's configuration says.
    cat >"$WORK/mke2fs.conf" <<'EOF'
[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
EOF
    rm -f "$WORK/partition.img"
    truncate -s ${PART_MIB}M "$WORK/partition.img"
    MKE2FS_CONFIG=$WORK/mke2fs.conf \
        mke2fs -q -F -t ext4 -T default -L test-os-root -U "$PART_UUID" -E root_owner=0:0,hash_seed=$PART_UUID \
        -d "$T" "$WORK/partition.img" || die "mke2fs -d failed"
    e2fsck -fn "$WORK/partition.img" >"$WORK/e2fsck.log" 2>&1 ||
        die "partition.img does not pass e2fsck: $(tail -5 "$WORK/e2fsck.log")"
    rm -rf "$T"
fi

# --- outputs ----------------------------------------------------------------------------------
OUTPUTS=(marker-initrd.img whole-disk-uefi.img)
[ "$ARCH" = x86_64 ] && OUTPUTS+=(partition.img)
for f in "${OUTPUTS[@]}"; do mv -f "$WORK/$f" "$OUT/$f"; done
[ "$ARCH" = x86_64 ] || rm -f "$OUT/partition.img"
rm -rf "$OUT/check" # the logs of an earlier --check were about the earlier images
echo "$KVER" >"$OUT/kernel-version"
{
    echo "# ironic-agent test OS for $ARCH, built $(date -u +%Y-%m-%dT%H:%M:%SZ) by tests/images/$PROG"
    echo "kernel: $KVER (rootfs/boot/vmlinuz-$KVER)"
    echo "grub: $MOD_VERSION; $EFI_NAME made by $MKIMAGE_HOW, modules: ${GRUB_MODULES[*]}"
    echo "marker: IRONIC-AGENT-TEST-OS: booted cmdline=<kernel command line>"
    echo "marker-initrd.img: busybox + /init (gzip'd newc cpio)"
    echo "whole-disk-uefi.img: GPT ${DISK_MIB} MiB; p1 ESP ${ESP_START_MIB}+${ESP_MIB} MiB (EFI/marker/$EFI_NAME, EFI/marker/$CSV_NAME, vmlinuz, initrd.img, marker-os.txt; no EFI/BOOT fallback); p2 Linux ${DATA_MIB} MiB empty; cmdline console=$CONSOLE marker.case=whole-disk-uefi"
    if [ "$ARCH" = x86_64 ]; then
        echo "partition.img: ext4 ${PART_MIB} MiB, label test-os-root, UUID $PART_UUID; /boot/vmlinuz-$KVER, /boot/initrd.img-$KVER; grub-install, grub-mkconfig, /etc/grub.d; GRUB_CMDLINE_LINUX=\"console=ttyS0 marker.case=partition\""
    fi
    echo "sha256:"
    (cd "$OUT" && sha256sum "${OUTPUTS[@]}" | sed 's/^/  /')
} >"$OUT/MANIFEST"

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "$PROG: $ARCH test OS built in $(($(date +%s) - START_TIME)) s (kernel $KVER) in $OUT:"
for f in "${OUTPUTS[@]}"; do
    s=$(stat -c %s "$OUT/$f")
    printf '  %-20s %10d bytes (%s, %s allocated)\n' "$f" "$s" "$(mb "$s")" "$(du -h "$OUT/$f" | cut -f1)"
done
printf '  %-20s %s\n' rootfs/ "$(du -sh "$ROOTFS" | cut -f1)" kernel-version "$KVER" MANIFEST "sha256 of the images"

[ "$CHECK" = 1 ] || exit 0

# --- --check: boot the images in QEMU ---------------------------------------------------------
# No root, no loop devices, no mounts on the host: the disks are image files, and the agent's
# chroot grub path runs inside a helper VM (this kernel, with the rootfs as its initramfs and a
# /init doing what the agent does), on a virtio disk /dev/vda as in the real deploy.
CHECKDIR=$OUT/check
rm -rf "$CHECKDIR"
mkdir -p "$CHECKDIR"
ACCEL=${IRONIC_AGENT_TEST_QEMU_ACCEL:-tcg}
if [ "$ARCH" = x86_64 ]; then
    QEMU=("$QEMU_SYS" -M q35 -accel "$ACCEL" -m 512 -nographic -no-reboot -net none)
else
    QEMU=("$QEMU_SYS" -M virt -cpu cortex-a57 -accel "$ACCEL" -m 512 -nographic -no-reboot -net none)
fi
MARKER_RE='IRONIC-AGENT-TEST-OS: booted cmdline='
CHECK_RESULTS=()

# qemu_run NAME TIMEOUT EXPECT_RE [QEMU ARGS...]: runs QEMU, console in $CHECKDIR/NAME.log,
# until a line matches EXPECT_RE (QEMU then gets 20 s to exit by itself) or TIMEOUT seconds
# pass. Sets SEEN_LINE (empty if not seen) and SEEN_SECS (seconds from the start to the line).
qemu_run() {
    local name=$1 timeout=$2 expect=$3 logf t0 now
    shift 3
    logf=$CHECKDIR/$name.log
    : >"$logf" # before QEMU starts: the loop below reads it at once
    "${QEMU[@]}" "$@" </dev/null >>"$logf" 2>&1 &
    QEMU_PID=$!
    t0=${EPOCHREALTIME/[.,]/}
    SEEN_LINE=
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        now=${EPOCHREALTIME/[.,]/}
        if SEEN_LINE=$(grep -a -m1 -E "$expect" "$logf" | tr -d '\r') && [ -n "$SEEN_LINE" ]; then break; fi
        [ $(((now - t0) / 1000000)) -lt "$timeout" ] || break
        sleep 0.5
    done
    now=${EPOCHREALTIME/[.,]/}
    [ -n "$SEEN_LINE" ] || SEEN_LINE=$(grep -a -m1 -E "$expect" "$logf" | tr -d '\r') || true
    SEEN_SECS=$(awk -v d=$((now - t0)) 'BEGIN { printf "%.1f", d / 1000000 }')
    for _ in $(seq 40); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.5; done
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=
}
# expect_boot NAME TIMEOUT CASE [QEMU ARGS...]: the marker line, with marker.case=CASE.
expect_boot() {
    local name=$1 timeout=$2 case=$3
    shift 3
    log "check $name: booting (up to $timeout s)"
    qemu_run "$name" "$timeout" "$MARKER_RE" "$@"
    [ -n "$SEEN_LINE" ] ||
        die "check $name: no marker line within $timeout s; last console lines:$(echo; tail -15 "$CHECKDIR/$name.log")"
    case $SEEN_LINE in
        *"marker.case=$case"*) ;;
        *) die "check $name: booted, but not case $case: $SEEN_LINE" ;;
    esac
    log "check $name: ok in $SEEN_SECS s: $SEEN_LINE"
    CHECK_RESULTS+=("$name: marker after $SEEN_SECS s: $SEEN_LINE")
}
# firmware_args VARS_COPY: sets FW_ARGS, the two pflash drives.
firmware_args() {
    FW_ARGS=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$FW_CODE"
        -drive "if=pflash,format=raw,unit=1,file=$1")
}
EFI_FALLBACK=BOOTX64.EFI
[ "$ARCH" = aarch64 ] && EFI_FALLBACK=BOOTAA64.EFI

# 1. whole-disk-uefi.img, on a copy that has an EFI/BOOT fallback loader (the firmware has no
# boot entry for it: that is the agent's job).
cp "$OUT/whole-disk-uefi.img" "$WORK/wd-fallback.img"
mmd -i "$WORK/wd-fallback.img@@1M" ::/EFI/BOOT
mcopy -i "$WORK/wd-fallback.img@@1M" "$WORK/$EFI_NAME" "::/EFI/BOOT/$EFI_FALLBACK"
cp "$FW_VARS" "$WORK/vars-wd.fd"
firmware_args "$WORK/vars-wd.fd"
expect_boot whole-disk-uefi "$([ "$ARCH" = x86_64 ] && echo 180 || echo 240)" whole-disk-uefi \
    "${FW_ARGS[@]}" -drive "file=$WORK/wd-fallback.img,format=raw,if=virtio"

# 2. (x86_64) the image as built must not boot by itself: OVMF ends in its shell.
if [ "$ARCH" = x86_64 ]; then
    cp "$OUT/whole-disk-uefi.img" "$WORK/wd-as-is.img"
    cp "$FW_VARS" "$WORK/vars-none.fd"
    firmware_args "$WORK/vars-none.fd"
    log "check whole-disk-no-fallback: booting the image as is (must reach the UEFI shell, not the marker)"
    qemu_run whole-disk-no-fallback 120 "$MARKER_RE|Shell> |UEFI Interactive Shell" \
        "${FW_ARGS[@]}" -drive "file=$WORK/wd-as-is.img,format=raw,if=virtio"
    case $SEEN_LINE in
        *IRONIC-AGENT-TEST-OS*) die "check whole-disk-no-fallback: it booted without a boot entry: the image has a fallback loader" ;;
        "") die "check whole-disk-no-fallback: neither the marker nor the UEFI shell within 120 s; see $CHECKDIR/whole-disk-no-fallback.log" ;;
    esac
    log "check whole-disk-no-fallback: ok, the firmware found nothing to boot ($SEEN_SECS s)"
    CHECK_RESULTS+=("whole-disk-no-fallback: nothing booted without a boot entry (UEFI shell after $SEEN_SECS s)")
fi

# 3. (x86_64) the agent's chroot grub path on partition.img, BIOS then UEFI.
if [ "$ARCH" = x86_64 ]; then
    # The helper VM's /init: mount the root partition on /mnt/root, bind /dev, /proc and /run,
    # sysfs on /sys (UEFI: efivarfs, and the ESP on /boot/efi), then in the chroot: grub-install
    # /dev/vda (UEFI: and grub-install --removable) and grub-mkconfig, with the agent's
    # environment. Results are "TEST-OS-CHECK:" lines on the console.
    H=$WORK/helper-init
    mkdir -p "$H"
    cat >"$H/init" <<'HELPER_INIT'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 3 >/proc/sys/kernel/printk
say() { echo "TEST-OS-CHECK: $*" >/dev/console; }
fail() {
    say "FAILED: $*"
    sync
    busybox poweroff -f
}
show() { sed "s/^/TEST-OS-CHECK:   /" "$1" >/dev/console; }
for m in virtio_pci virtio_blk crc32c_generic ext4 vfat nls_cp437 nls_iso8859_1 nls_ascii efivarfs; do
    modprobe -q "$m"
done
mode=$(sed -n 's/.*check\.mode=\([a-z]*\).*/\1/p' /proc/cmdline)
case $mode in
    bios) rootdev=/dev/vda1 esp= ;;
    uefi) rootdev=/dev/vda2 esp=/dev/vda1 ;;
    *) fail "no check.mode on the command line" ;;
esac
for _ in $(seq 50); do [ -b "$rootdev" ] && break; sleep 0.2; done
[ -b "$rootdev" ] || fail "no $rootdev"
R=/mnt/root
mkdir -p $R
mount -t ext4 "$rootdev" $R || fail "mount $rootdev"
mount --bind /dev $R/dev && mount --bind /proc $R/proc && mount --bind /run $R/run &&
    mount -t sysfs sysfs $R/sys || fail "bind mounts"
if [ "$mode" = uefi ]; then
    [ -d /sys/firmware/efi ] || fail "not booted through UEFI"
    mount -t efivarfs efivarfs $R/sys/firmware/efi/efivars || fail "efivarfs"
    mount -t vfat "$esp" $R/boot/efi || fail "mount the ESP"
fi
uuid=$(blkid -s UUID -o value "$rootdev")
say "mode $mode, root $rootdev UUID $uuid"
# Without udev there is no /dev/disk/by-uuid, and 10_linux then writes root=/dev/vdaN.
env GRUB_DISABLE_OS_PROBER=true PATH="$PATH:/bin:/usr/sbin:/sbin" \
    chroot $R /bin/sh -c "grub-mkconfig" >/tmp/nolinks.cfg 2>/dev/null
say "without /dev/disk/by-uuid: $(grep -m1 '^[[:space:]]*linux[[:space:]]' /tmp/nolinks.cfg | sed 's/^[[:space:]]*//')"
# What udev would have made.
mkdir -p /dev/disk/by-uuid
for d in /dev/vda[0-9]*; do
    u=$(blkid -s UUID -o value "$d") && [ -n "$u" ] && ln -sf "../../${d#/dev/}" "/dev/disk/by-uuid/$u"
done
chroot $R /bin/sh -c "grub-install /dev/vda" >/tmp/gi.log 2>&1 || {
    show /tmp/gi.log
    fail "grub-install"
}
show /tmp/gi.log
if [ "$mode" = uefi ]; then
    chroot $R /bin/sh -c "grub-install --removable" >/tmp/gir.log 2>&1 || {
        show /tmp/gir.log
        fail "grub-install --removable"
    }
    show /tmp/gir.log
    chroot $R /bin/sh -c "efibootmgr" >/tmp/ebm.log 2>&1
    show /tmp/ebm.log
    (cd $R/boot/efi && find . -type f | sort) >/tmp/esp.lst
    show /tmp/esp.lst
fi
env GRUB_DISABLE_OS_PROBER=true GRUB_SAVEDEFAULT=true PATH="$PATH:/bin:/usr/sbin:/sbin" \
    chroot $R /bin/sh -c "grub-mkconfig -o /boot/grub/grub.cfg" >/tmp/mk.log 2>&1 || {
    show /tmp/mk.log
    fail "grub-mkconfig"
}
show /tmp/mk.log
lin=$(grep -m1 '^[[:space:]]*linux[[:space:]]' $R/boot/grub/grub.cfg | sed 's/^[[:space:]]*//')
ini=$(grep -m1 '^[[:space:]]*initrd[[:space:]]' $R/boot/grub/grub.cfg | sed 's/^[[:space:]]*//')
say "grub.cfg: $lin"
say "grub.cfg: $ini"
case $lin in
    "linux	/boot/vmlinuz-"*"root=UUID=$uuid "*"console=ttyS0 marker.case=partition"*) ;;
    *) fail "unexpected linux line in grub.cfg" ;;
esac
case $ini in "initrd	/boot/initrd.img-"*) ;; *) fail "no initrd line in grub.cfg" ;; esac
sync
if [ "$mode" = uefi ]; then umount $R/boot/efi $R/sys/firmware/efi/efivars; fi
umount $R/sys $R/run $R/proc $R/dev $R || fail "umount"
say "ok"
busybox poweroff -f
HELPER_INIT
    chmod 0755 "$H/init"
    log "check: helper initramfs (the $ARCH rootfs with a check /init)"
    {
        (cd "$ROOTFS" && find . -mindepth 1 -printf '%P\n' | grep -vx init | LC_ALL=C sort |
            cpio --quiet -o -H newc -R 0:0)
        (cd "$H" && echo init | cpio --quiet -o -H newc -R 0:0)
        newc_entry dev/console 020600 5 1
        newc_entry TRAILER!!! 0 0 0
    } >"$WORK/helper.cpio"

    # check_partition bios|uefi: bios = msdos disk, p1 = the image at 1 MiB, SeaBIOS;
    # uefi = GPT disk, p1 = an empty 64 MiB ESP, p2 = the image, OVMF (its variables keep the
    # boot entry grub-install makes for the boot that follows).
    check_partition() {
        local mode=$1 disk=$WORK/part-$1.img cfgline
        FW_ARGS=()
        rm -f "$disk"
        truncate -s 300M "$disk"
        if [ "$mode" = bios ]; then
            echo 'start=2048, size=409600, type=83' | sfdisk --quiet --label dos "$disk" >/dev/null
            dd if="$OUT/partition.img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
        else
            printf '%s\n' 'start=2048, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B' \
                'start=133120, size=409600, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4' |
                sfdisk --quiet --label gpt "$disk" >/dev/null
            rm -f "$WORK/esp-part.img"
            truncate -s 64M "$WORK/esp-part.img"
            mkfs.vfat -F 32 -n ESP "$WORK/esp-part.img" >/dev/null
            dd if="$WORK/esp-part.img" of="$disk" bs=1M seek=1 conv=notrunc status=none
            dd if="$OUT/partition.img" of="$disk" bs=1M seek=65 conv=notrunc,sparse status=none
            cp "$FW_VARS" "$WORK/vars-part.fd"
            firmware_args "$WORK/vars-part.fd"
        fi
        log "check partition-$mode-install: chroot grub-install + grub-mkconfig in a helper VM (up to 300 s)"
        qemu_run "partition-$mode-install" 300 'TEST-OS-CHECK: (ok|FAILED)' "${FW_ARGS[@]}" \
            -kernel "$KERNEL" -initrd "$WORK/helper.cpio" -append "console=ttyS0 check.mode=$mode" \
            -drive "file=$disk,format=raw,if=virtio"
        case $SEEN_LINE in
            *": ok") ;;
            *) die "check partition-$mode-install failed: ${SEEN_LINE:-no result within 300 s}; console:$(echo; grep -a 'TEST-OS-CHECK' "$CHECKDIR/partition-$mode-install.log" | tail -30)" ;;
        esac
        cfgline=$(grep -a -m1 'TEST-OS-CHECK: grub.cfg: linux' "$CHECKDIR/partition-$mode-install.log" | tr -d '\r')
        log "check partition-$mode-install: ok in $SEEN_SECS s; ${cfgline#TEST-OS-CHECK: }"
        CHECK_RESULTS+=("partition-$mode-install: grub-install + grub-mkconfig ok in $SEEN_SECS s; ${cfgline#TEST-OS-CHECK: }")
        expect_boot "partition-$mode" 180 partition "${FW_ARGS[@]}" -drive "file=$disk,format=raw,if=virtio"
    }
    check_partition bios
    check_partition uefi
fi

{
    echo "checks (--check, $(date -u +%Y-%m-%dT%H:%M:%SZ), QEMU accel $ACCEL):"
    printf '  %s\n' "${CHECK_RESULTS[@]}"
} >>"$OUT/MANIFEST"
echo "$PROG: checks passed (console logs in $CHECKDIR):"
printf '  %s\n' "${CHECK_RESULTS[@]}"
