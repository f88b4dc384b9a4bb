#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*.

Seeds are real examples: request bodies rebuilt from the recorded Ironic call traces
(/work/shared/spec or $SPEC_DIR), IPA's inventory example, kernel command lines and hints from
the repository's tests, and disk/image heads made by sfdisk, mkfs.*, mkswap, genisoimage and
qemu-img on small sparse files in a temporary directory (heads truncated to 64-256 KiB). A few
signatures that need a block device to create (MD RAID, LVM2) are written by hand.

Run once after changing a target's input format: `python3 fuzz/make_seeds.py`. Tools that are
missing are skipped with a note. Existing seeds with the same name are overwritten; fuzzer
findings in the corpus are left alone.
"""

import gzip
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import uuid
import zlib
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
CORPUS = FUZZ / "corpus"
SPEC = Path(os.environ.get("SPEC_DIR", "/work/shared/spec"))
KIB = 1024
MIB = 1024 * KIB


def seed(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


def compact(v):
    return json.dumps(v, separators=(", ", ": "))


# ---- network_data --------------------------------------------------------------------------

NETCONF_FIXTURES = FUZZ.parent / "agent/src/netconf/tests/fixtures"


def network_data():
    """The netconf unit tests' samples (glean, Nova), their MACs replaced by the target's two
    fake NICs (52:54:00:aa:00:01 and :02) so that planning goes past MAC matching; one with an
    ipa-enable-vlan-interfaces value after a NUL byte."""
    fakes = ["52:54:00:aa:00:01", "52:54:00:AA:00:02"]
    for f in sorted(NETCONF_FIXTURES.glob("*.json")):
        doc = json.loads(f.read_text())
        macs = {}
        for link in doc.get("links") or []:
            mac = link.get("ethernet_mac_address")
            if mac and link.get("type") not in ("bond", "vlan"):
                link["ethernet_mac_address"] = macs.setdefault(mac, fakes[len(macs) % 2])
        seed("network_data", f.stem, compact(doc))
    seed("network_data", "vlan-spec", "{}\0eth0.100, 52:54:00:aa:00:02.7,eth1,all")


# ---- inject_walker -------------------------------------------------------------------------

# Trees like the walker's unit tests: links to `/`, climbing `..`, absolute links to the host
# (`@S` is the sentinel beside the root), loops, dangling links, then writes, deletes and walks.
INJECT_WALKER = {
    "escape": [
        "d conf", "d tmp", "f conf/file", "l etc /", "l conf/up ../../../..",
        "l conf/abs /tmp/fzA", "l conf/loop loop", "l conf/dirlink /tmp/", "l conf/dangling /fzB/x",
        "w etc/fzA", "w conf/up/fzB", "w conf/abs", "w conf/loop", "w conf/dirlink",
        "w conf/dangling", "w conf/file/x", "w conf", "w etc/new/leaf/fzC",
        "x conf/abs", "x conf/abs", "x no/such/dir/x", "x etc/fzA", "x conf",
    ],
    "host_links": [
        "d etc", "l abs_parent @S", "l rel_parent ../sentinel", "l etc/deep_rel ../../../../../sentinel",
        "l slash /", "l final_abs @S/keep", "l etc/final_rel ../sentinel/keep", "l base @B",
        "w abs_parent/a", "w rel_parent/b", "w etc/deep_rel/c", "w final_abs", "w etc/final_rel",
        "w base/sentinel/keep", "x abs_parent/keep", "x rel_parent/keep", "x base/sentinel/keep",
        "c abs_parent/sub/new", "r rel_parent/sub",
    ],
    "loops": [
        "l a b", "l b a", "l c c/x", "l d ./d", "l e ../e", "w a/x", "w b", "c c/y", "r d/z", "w e/f",
        "x a", "x b/x",
    ],
    "create": [
        "d fzA", "l fzA/up ..", "l fzA/top /fzB", "c fzA/up/up/fzC/fzD", "c fzA/top/fzE",
        "w fzA/top/fzE/file", "w fzA/up/fzA/up/file", "r fzA/top/fzE", "x fzA/top/fzE/file",
        "w ../x", "w ./x", "w a//b", "x ..",
    ],
}


def inject_walker():
    for name, lines in INJECT_WALKER.items():
        seed("inject_walker", name, "\n".join(lines) + "\n")


# ---- api_request ---------------------------------------------------------------------------

NODE = {
    "uuid": "8c2e0381-7dd8-49bb-aea8-47445bf88872",
    "provision_state": "wait call-back",
    "driver": "ipmi",
    "properties": {"root_device": {"size": ">= 10"}, "skip_block_devices": []},
    "instance_info": {"image_source": "http://127.0.0.1:46380/img.raw"},
    "driver_info": {},
    "driver_internal_info": {"agent_url": "http://127.0.0.1:46399"},
}
PORTS = [{"address": "02:fc:00:00:00:01", "uuid": "2f5a7c1e-0000-4000-8000-000000000001"}]
VERSIONS = {
    "ContainerHardwareManager": "2",
    "RealIronicLoopDiskHardwareManager": "1.0",
    "generic_hardware_manager": "1.2",
}
SHA256 = "2e255746dd8008c97639197a509916d4d9b65eac80f80859b0383a49d9e6503c"
IMAGE_INFO = {
    "container_format": None,
    "disk_format": "raw",
    "id": "img.raw",
    "node_uuid": NODE["uuid"],
    "os_hash_algo": "sha256",
    "os_hash_value": SHA256,
    "stream_raw_images": True,
    "urls": ["http://127.0.0.1:46380/img.raw"],
}


def api_request():
    bodies = {
        "get_deploy_steps": ("deploy.get_deploy_steps", {"node": NODE, "ports": PORTS}),
        "execute_deploy_step": (
            "deploy.execute_deploy_step",
            {
                "deploy_version": VERSIONS,
                "node": NODE,
                "ports": PORTS,
                "step": {
                    "interface": "deploy",
                    "step": "write_image",
                    "args": {"configdrive": None, "image_info": IMAGE_INFO},
                },
            },
        ),
        "get_partition_uuids": ("standby.get_partition_uuids", {}),
        "install_bootloader": (
            "image.install_bootloader",
            {
                "efi_system_part_uuid": None,
                "prep_boot_part_uuid": None,
                "root_uuid": "0x00000000",
                "target_boot_mode": "uefi",
            },
        ),
        "power_off": ("standby.power_off", {}),
        "get_clean_steps": ("clean.get_clean_steps", {"node": NODE, "ports": PORTS}),
        "execute_clean_step": (
            "clean.execute_clean_step",
            {
                "clean_version": VERSIONS,
                "node": NODE,
                "ports": PORTS,
                "step": {
                    "abortable": True,
                    "interface": "deploy",
                    "priority": 99,
                    "reboot_requested": False,
                    "requires_ramdisk": True,
                    "step": "erase_devices_metadata",
                },
            },
        ),
        "execute_fuzz_step": (
            "service.execute_service_step",
            {
                "node": NODE,
                "ports": PORTS,
                "service_version": {"fuzz_hardware_manager": "1.0"},
                "step": {"interface": "service", "step": "fuzz_step", "args": {"x": 1}},
            },
        ),
        "prepare_image": (
            "standby.prepare_image",
            {"image_info": IMAGE_INFO, "configdrive": "H4sIAAAAAAAAA2NgGAWjYBSMglEwCgAAAP//AwBb7WYwAAQAAA=="},
        ),
        "get_hardware_info": ("poll.get_hardware_info", {}),
        "get_node_info": ("poll.get_node_info", {}),
        "finalize_rescue": (
            "rescue.finalize_rescue",
            {"rescue_password": "$6$rounds=5000$salt$hash", "hashed": True},
        ),
        "collect_system_logs": ("log.collect_system_logs", {}),
        "sync": ("standby.sync", {}),
    }
    for name, (command, params) in bodies.items():
        seed("api_request", name, compact({"name": command, "params": params}))
    seed("api_request", "wait-true", "?wait=true\n" + compact({"name": "standby.get_partition_uuids", "params": {}}))
    seed("api_request", "bad-token", "?agent_token=wrong\n" + compact({"name": "standby.sync", "params": {}}))
    seed("api_request", "no-dot", compact({"name": "nodot", "params": {}}))
    seed("api_request", "not-json", "{\"name\": ")


# ---- kernel_cmdline ------------------------------------------------------------------------

def kernel_cmdline():
    lines = [
        "BOOT_IMAGE=/vmlinuz ro quiet ipa-api-url=http://10.0.0.1:6385,http://10.0.0.2:6385 "
        "ipa-debug=1 BOOTIF=01-52-54-00-12-34-56 ipa-insecure=no nomodeset x=\"a b\"\n",
        "console=ttyS0 ipa-api-url=http://10.0.2.2:6385 ipa-insecure=1 "
        "ipa-advertise-host=127.0.0.1 ipa-advertise-port=9999",
        "ipa-api-url=http://127.0.0.1:6385 ipa-lookup-timeout=3 ipa-lookup-interval=0.5 "
        "ipa-agent-token=tok-0123456789abcdef0123456789abcdef ipa-global-request-id=req-1",
        "ipa-api-url=mdns",
        "ipa-listen-host=:: ipa-listen-port=9998 ipa-advertise-protocol=https "
        "ipa-ironic-api-version=1.68 ipa-network-interface=eth0",
        "ipa-inspection-callback-url=http://10.0.0.1:5050/v1/continue "
        "ipa-inspection-collectors=default,logs ipa-inspection-dhcp-wait-timeout=0",
        "ipa-inject-files-priority=55 ipa-image-download-connection-timeout=60 "
        "ipa-image-download-connection-retries=2 ipa-image-download-connection-retry-interval=0",
        "ipa-hardware-initialization-delay=1.5 ipa-http-request-timeout=0.1 "
        "ipa-enable-bios-bootloader-install=yes ipa-ignore-bootloader-failure=off",
        "ipa-api-url=ftp://x ipa-listen-port=99999 ipa-ironic-api-version=abc",
        "a=\"unterminated \"\"=\"\" k= =v",
    ]
    for i, line in enumerate(lines):
        seed("kernel_cmdline", f"{i:02d}", line)


# ---- image_info ----------------------------------------------------------------------------

def image_info():
    full = {
        "id": "img-1",
        "urls": ["http://a/img.raw", "http://b/img.raw"],
        "disk_format": "raw",
        "container_format": "bare",
        "stream_raw_images": True,
        "checksum": SHA256,
        "os_hash_algo": "sha256",
        "os_hash_value": SHA256,
        "image_request_authorization": "QmVhcmVyIHh5eg==",
        "image_server_auth_strategy": "http_basic",
        "image_server_user": "u",
        "image_server_password": "secret-pw",
        "proxies": {"http": "http://user:pw@p:3128", "https": "http://p:3129", "ftp": "x"},
        "no_proxy": "10.0.0.1",
        "node_uuid": "n-1",
        "kernel": "k",
        "ramdisk": "r",
        "root_gb": "10",
        "root_mb": 10240,
        "swap_mb": "512",
        "ephemeral_mb": 0.0,
        "ephemeral_format": "ext4",
        "configdrive": "H4sIAAAAAAAAA2NgGAWjYBSMglEwCgAAAP//AwBb7WYwAAQAAA==",
        "preserve_ephemeral": "False",
        "image_type": "partition",
        "deploy_boot_mode": "uefi",
        "boot_option": "local",
        "disk_label": "gpt",
        "something_new": {"x": 1},
    }
    seed("image_info", "trace-write-image", compact(IMAGE_INFO))
    seed("image_info", "every-key", compact(full))
    md5 = dict(IMAGE_INFO, os_hash_algo=None, os_hash_value=None,
               checksum="d41d8cd98f00b204e9800998ecf8427e")
    seed("image_info", "md5", compact(md5))
    sums = "\n".join([
        "# SHA256 checksums",
        f"{SHA256}  img.raw",
        f"{'0' * 64} *other.qcow2",
        f"SHA256 (img.raw) = {SHA256}",
    ])
    url = dict(IMAGE_INFO, os_hash_algo=None, os_hash_value=None,
               checksum="http://127.0.0.1:46380/SHA256SUMS")
    seed("image_info", "checksum-file", compact(url) + "\0" + sums + "\n")
    seed("image_info", "checksum-file-bsd",
         compact(dict(url, urls=["http://x/dir/img%20one.raw?x=1#f"])) + "\0"
         + f"SHA512 (img one.raw) = {'ab' * 64}\n")
    sha512 = dict(IMAGE_INFO, os_hash_algo="SHA-512", os_hash_value="AB" * 64)
    seed("image_info", "sha512", compact(sha512))
    iso = gzip.compress(b"\0" * 32768 + b"\x01CD001\x01" + b"\0" * 2040)
    cd = dict(IMAGE_INFO, configdrive=base64.b64encode(iso).decode())
    seed("image_info", "configdrive-gzip", compact(cd))
    seed("image_info", "missing-urls", compact({"id": "x", "checksum": SHA256}))


# ---- root_device_hints ---------------------------------------------------------------------

def root_device_hints():
    hints = [
        {"size": 10},
        {"size": ">= 10", "rotational": True},
        {"size": "<or> 1000 <or> 10"},
        {"size": "<range-in> [ 10 20 )"},
        {"size": "<range-in> [ 20.4 20.6 ]"},
        {"model": "s== samsung ssd 860", "vendor": "<in> at"},
        {"model": "<all-in> samsung pro"},
        {"serial": ["<in> QM", "S5GXNF0R123456"]},
        {"wwn": "0x5000c500a1b2c3d4", "wwn_with_extension": "s!= x", "wwn_vendor_extension": "0xabcdef"},
        {"name": "sda", "hctl": "0:0:0:0"},
        {"by_path": "/dev/disk/by-path/pci-0000:00:1f.2-ata-1", "tran": "sata"},
        {"name": "/dev/md0", "rotational": "false"},
        {"unknown": 1, "size": "s== 10"},
    ]
    for i, h in enumerate(hints):
        seed("root_device_hints", f"hints-{i:02d}", compact(h))
    seed("root_device_hints", "as-string", json.dumps(compact({"size": "> 5", "model": "qemu"})))
    skip = [{"name": "/dev/sda"}, {"volume_name": "md-root"}, {"serial": "<in> S5G", "size": "<= 1000"}]
    seed("root_device_hints", "skip-list", compact(skip))


# ---- plugin_protocol -----------------------------------------------------------------------

def plugin_protocol():
    example = json.loads((SPEC / "ipa-13-get-hardware-info-example.json").read_text())
    inv = example["command_result"]
    answers = [
        3,
        inv["interfaces"],
        inv["cpu"],
        inv["memory"],
        inv["disks"],
        inv.get("bmc_address"),
        inv.get("bmc_v6address"),
        inv.get("bmc_mac"),
        inv["system_vendor"],
        inv["boot"],
        inv["hostname"],
        [
            {"step": "update_firmware", "priority": 0, "interface": "management",
             "reboot_requested": True, "abortable": False,
             "argsinfo": {"url": {"description": "firmware URL", "required": True}}},
            {"step": "erase_devices_metadata", "priority": 100, "interface": "deploy",
             "reboot_requested": False},
        ],
        "/dev/sda",
        {"updated": ["bios"]},
    ]
    seed("plugin_protocol", "ipa13-inventory",
         "\n---\n".join(json.dumps({"result": a}) for a in answers) + "\n")
    mixed = [
        "loading vendor tools...\n" + json.dumps({"result": 2}),
        json.dumps({"error": {"type": "IncompatibleHardwareMethodError", "message": ""}}),
        json.dumps({"error": {"type": "HardwareManagerMethodNotFound"}}),
        "not json at all",
        json.dumps({"result": {"total": 8589934592, "physical_mb": 8192}}),
        "",
        json.dumps({"error": {"type": "BlockDeviceError", "message": "boom"}}),
        json.dumps({"result": None}),
        json.dumps({"answer": 1}),
        json.dumps({"result": {"current_boot_mode": "bios", "pxe_interface": None}}),
        json.dumps({"result": "plugin-host"}),
        json.dumps({"result": [{"step": "erase_devices", "priority": 5, "interface": "deploy"}]}),
    ]
    seed("plugin_protocol", "mixed-answers", "\n---\n".join(mixed) + "\n")
    seed("plugin_protocol", "support-only", json.dumps({"result": 1}) + "\n")
    seed("plugin_protocol", "ipa13-example-verbatim",
         (SPEC / "ipa-13-get-hardware-info-example.json").read_bytes())


# ---- superblock_probe ----------------------------------------------------------------------

def have(tool):
    return shutil.which(tool) is not None


def run(*args, stdin=None):
    subprocess.run(args, check=True, input=stdin, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def head(path, n, trim=True):
    """The first `n` bytes of `path`; with `trim`, trailing zeros are dropped (kept up to the
    next 512-byte boundary), which keeps the committed corpus small."""
    with open(path, "rb") as f:
        data = f.read(n)
    if trim:
        end = len(data.rstrip(b"\0"))
        data = data[: min(len(data), (end + 511) // 512 * 512)]
    return data


def superblock_probe(tmp):
    t = "superblock_probe"
    notes = []

    def mk(name, tool, args, size, keep=64 * KIB):
        if not have(tool):
            notes.append(f"{tool} missing: no {name} seed")
            return
        p = sparse(tmp / name, size)
        try:
            run(tool, *args, str(p))
        except subprocess.CalledProcessError:
            notes.append(f"{tool} failed: no {name} seed")
            return
        seed(t, name, head(p, keep))

    mk("ext4", "mkfs.ext4", ["-q", "-F", "-L", "root", "-U", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"], 8 * MIB)
    mk("ext2", "mkfs.ext2", ["-q", "-F", "-L", "config-2"], 2 * MIB)
    mk("xfs", "mkfs.xfs", ["-q", "-f", "-L", "xfsroot"], 320 * MIB)
    mk("btrfs", "mkfs.btrfs", ["-q", "-f", "-L", "btr"], 128 * MIB, keep=132 * KIB)
    mk("vfat12", "mkfs.vfat", ["-n", "CONFIG-2"], 1 * MIB)
    mk("vfat16", "mkfs.vfat", ["-F", "16", "-n", "ESP"], 32 * MIB)
    mk("vfat32", "mkfs.vfat", ["-F", "32", "-n", "EFI"], 40 * MIB)
    mk("swap", "mkswap", ["-L", "swap1"], 1 * MIB, keep=8 * KIB)

    if have("genisoimage"):
        src = tmp / "iso-src"
        (src / "openstack" / "latest").mkdir(parents=True)
        (src / "openstack" / "latest" / "meta_data.json").write_text('{"uuid": "x"}')
        iso = tmp / "config.iso"
        run("genisoimage", "-quiet", "-o", str(iso), "-V", "config-2", "-J", "-r", str(src))
        seed(t, "iso9660-config-2", head(iso, 64 * KIB))
    else:
        notes.append("genisoimage missing: no iso seed")

    # MD RAID 1.2 superblock at 4 KiB (mdadm needs a block device; the fields blkid reads).
    sb = bytearray(256)
    struct.pack_into("<IIII", sb, 0, 0xA92B4EFC, 1, 0, 0)
    sb[16:32] = uuid.UUID("6e3b2f1a-0c4d-4e5f-8a9b-0c1d2e3f4a5b").bytes
    sb[32:64] = b"host:md-root".ljust(32, b"\0")
    struct.pack_into("<Q", sb, 64, 1_700_000_000)
    struct.pack_into("<I", sb, 72, 1)  # level
    struct.pack_into("<Q", sb, 128, 2048)  # data_offset
    struct.pack_into("<Q", sb, 144, 4096 // 512)  # super_offset: where it sits, in sectors
    md = bytearray(4608)
    md[4096:4096 + 256] = sb
    seed(t, "md-1.2", bytes(md))
    # MD 0.90: the superblock sits 64 KiB before the 64 KiB-aligned end of the device.
    sb90 = bytearray(4096)
    struct.pack_into("<IIII", sb90, 0, 0xA92B4EFC, 0, 90, 0)
    struct.pack_into("<I", sb90, 20, 0x1A2B3C4D)  # set_uuid0
    struct.pack_into("<III", sb90, 52, 0x5E6F7081, 0x92A3B4C5, 0xD6E7F809)  # set_uuid1..3
    md90 = bytearray(128 * KIB)
    md90[64 * KIB:64 * KIB + 4096] = sb90
    seed(t, "md-0.90-at-end", bytes(md90))

    # LVM2 PV label in sector 1 (pvcreate needs a block device).
    lvm = bytearray(8 * KIB)
    label = bytearray(512)
    label[0:8] = b"LABELONE"
    struct.pack_into("<Q", label, 8, 1)
    struct.pack_into("<I", label, 20, 32)
    label[24:32] = b"LVM2 001"
    label[32:64] = b"Fj3kL0pQ9rS2tU5vW8xY1zA4bC7dE0fG"
    label[16:20] = struct.pack("<I", zlib.crc32(bytes(label[20:])) & 0xFFFFFFFF)
    lvm[512:1024] = label
    seed(t, "lvm2-pv", bytes(lvm))

    if have("sfdisk"):
        # A small DOS disk whose extended partition chain lies inside the head.
        dos = sparse(tmp / "dos.img", 128 * KIB)
        script = (
            "label: dos\nlabel-id: 0x1234abcd\nunit: sectors\n"
            "start=4, size=20, type=83, bootable\n"
            "start=24, size=20, type=82\n"
            "start=44, size=200, type=5\n"
            "start=46, size=40, type=83\n"
            "start=88, size=40, type=ef\n"
        )
        try:
            run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(dos), stdin=script.encode())
            seed(t, "mbr-extended", head(dos, 128 * KIB))
        except subprocess.CalledProcessError:
            notes.append("sfdisk failed on the DOS seed")
        # A GPT disk: a config-2 vfat partition at 64 KiB (head keeps its boot sector and root
        # directory), an ESP, a BIOS boot partition; backup header at the end of 8 MiB.
        gpt = sparse(tmp / "gpt.img", 8 * MIB)
        script = (
            "label: gpt\nlabel-id: 3F2504E0-4F89-41D3-9A0C-0305E82C3301\nunit: sectors\n"
            "first-lba: 34\n"
            "start=128, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=config-2\n"
            "start=4224, size=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\n"
            "start=6272, size=2048, type=21686148-6270-6E6F-744E-656564454649, name=bios\n"
        )
        try:
            run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(gpt), stdin=script.encode())
            if have("mkfs.vfat"):
                part = sparse(tmp / "part.img", 2 * MIB)
                run("mkfs.vfat", "-n", "config-2", str(part))
                with open(gpt, "r+b") as f, open(part, "rb") as p:
                    f.seek(128 * 512)
                    f.write(p.read(32 * KIB))
            seed(t, "gpt-config-2", head(gpt, 96 * KIB))
            # The whole GPT disk shrunk to 160 KiB with its backup header at the new end.
            with open(gpt, "rb") as f:
                whole = bytearray(f.read())
            small = bytearray(whole[:160 * KIB - 33 * 512]) + whole[-33 * 512:]
            seed(t, "gpt-with-backup", bytes(small))
        except subprocess.CalledProcessError:
            notes.append("sfdisk failed on the GPT seed")
    else:
        notes.append("sfdisk missing: no partition-table seeds")

    if have("qemu-img"):
        def img(name, fmt, opts=(), keep=64 * KIB, size="64M", extra=(), trim=True):
            p = tmp / name
            try:
                run("qemu-img", "create", "-q", *extra, "-f", fmt, *opts, str(p), size)
            except subprocess.CalledProcessError:
                notes.append(f"qemu-img could not create {name}")
                return
            seed(t, name, head(p, keep, trim))

        img("qcow2-v3", "qcow2")
        img("qcow2-v2", "qcow2", ["-o", "compat=0.10"])
        base = tmp / "base.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M")
        img("qcow2-backing", "qcow2", ["-o", f"backing_file={base},backing_fmt=qcow2"])
        img("qcow2-data-file", "qcow2", ["-o", f"data_file={tmp / 'data.raw'}"])
        img("vmdk-monolithic-sparse", "vmdk")
        img("vmdk-stream-optimized", "vmdk", ["-o", "subformat=streamOptimized"])
        img("vmdk-monolithic-flat", "vmdk", ["-o", "subformat=monolithicFlat"], keep=4 * KIB)
        img("vhd-dynamic", "vpc")
        img("vhd-fixed", "vpc", ["-o", "subformat=fixed"], size="64K", keep=128 * KIB,
            trim=False)
        img("vhdx", "vhdx", keep=260 * KIB, trim=False)
        img("vdi", "vdi")
        img("luks", "luks", ["--object", "secret,id=sec0,data=fuzz", "-o", "key-secret=sec0"],
            keep=8 * KIB, size="1M")
    else:
        notes.append("qemu-img missing: no image-format seeds")
    return notes


def lldp():
    def tlv(t, v):
        return bytes([(t << 1) | (len(v) >> 8), len(v) & 0xFF]) + v

    def vlan(vid, name):
        return tlv(127, b"\x00\x80\xc2\x03" + vid.to_bytes(2, "big") + bytes([len(name)]) + name)

    base = (
        tlv(1, b"\x04\x52\x54\x00\x12\x34\x56")
        + tlv(2, b"\x05Ethernet1/7")
        + tlv(3, b"\x00\x78")
        + tlv(5, b"tor-1")
    )
    seed("lldp", "switch", base + vlan(100, b"provisioning") + vlan(200, b"tenant") + tlv(0, b""))
    seed("lldp", "padded", base + tlv(0, b"") + bytes(20))
    seed("lldp", "no-end", base + b"\x01")
    seed("lldp", "org", base + tlv(127, b"\x00\x12\x0f\x01\x03\x6c\x03\x00\x10") + tlv(0, b""))
# ---- mdns_message --------------------------------------------------------------------------

def _dns_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _dns_rr(name, rtype, rdata, cls=0x8001, ttl=120):
    return name + struct.pack(">HHIH", rtype, cls, ttl, len(rdata)) + rdata


def mdns_message():
    """Answers as an mDNS responder (e.g. Ironic's or avahi) sends them: uncompressed and
    with compression pointers, IPv4 and IPv6, a hostname outside .local, and a query."""
    inst = _dns_name("baremetal._openstack._tcp.local")
    host = _dns_name("ironic.local")
    txt = b"".join(bytes([len(s)]) + s for s in
                   [b"path=/baremetal", b"protocol=http", b"ipa_ntp_server=192.0.2.1", b"flag"])
    srv = struct.pack(">HHH", 0, 0, 6385) + host
    head = struct.pack(">HHHHHH", 0, 0x8400, 0, 3, 0, 2)
    seed("mdns_message", "plain", head
         + _dns_rr(_dns_name("_openstack._tcp.local"), 12, inst, cls=1)
         + _dns_rr(inst, 33, srv) + _dns_rr(inst, 16, txt)
         + _dns_rr(host, 1, bytes([192, 0, 2, 10]))
         + _dns_rr(host, 28, bytes.fromhex("20010db8000000000000000000000010")))
    # Compressed: the question at offset 12 names the instance; records point back to it.
    q = inst + struct.pack(">HH", 33, 0x8001)
    ptr_inst = b"\xc0\x0c"
    ptr_local = bytes([0xc0, 12 + 1 + len("baremetal") + 1 + len("_openstack") + 1 + len("_tcp")])
    named = b"\x06ironic" + ptr_local
    srv_c = struct.pack(">HHH", 0, 0, 80) + named
    seed("mdns_message", "compressed", struct.pack(">HHHHHH", 0x1234, 0x8400, 1, 2, 0, 1) + q
         + _dns_rr(ptr_inst, 33, srv_c) + _dns_rr(ptr_inst, 16, b"\x05path=")
         + _dns_rr(b"\x06ironic" + ptr_local, 1, bytes([192, 0, 2, 11])))
    srv_n = struct.pack(">HHH", 0, 0, 443) + _dns_name("ironic.example.com")
    seed("mdns_message", "named-host", struct.pack(">HHHHHH", 0, 0x8400, 0, 3, 0, 0)
         + _dns_rr(inst, 33, srv_n) + _dns_rr(inst, 16, b"\x00")
         + _dns_rr(_dns_name("ironic.example.com"), 1, bytes([192, 0, 2, 12])))
    seed("mdns_message", "query", struct.pack(">HHHHHH", 7, 0, 3, 0, 0, 0)
         + _dns_name("_openstack._tcp.local") + struct.pack(">HH", 12, 0x8001)
         + inst + struct.pack(">HH", 33, 0x8001)
         + bytes([0xc0, 12 + len(_dns_name("_openstack._tcp.local")) + 4])
         + struct.pack(">HH", 16, 0x8001))


# ---- vpd, dmidecode_text, smbios, ipmitool_lan, ethtool_text -------------------------------

HM = FUZZ.parent / "hardware-managers"


def _vpd_page(code, body):
    return bytes([0, code]) + len(body).to_bytes(2, "big") + body


def _designator(code_set, assoc_type, ident):
    return bytes([code_set, assoc_type, 0, len(ident)]) + ident


def _vpd_input(vendor, model, p80, p83, flags=0):
    return bytes([flags, len(vendor), len(model), len(p80)]) + vendor + model + p80 + p83


def _identify(serial, model, wwn):
    ident = bytearray(512)

    def put(word, text):
        for k in range(0, len(text), 2):
            ident[2 * word + k] = text[k + 1]
            ident[2 * word + k + 1] = text[k]

    put(10, serial)
    put(27, model)
    for k, w in enumerate(wwn):
        ident[2 * (108 + k):2 * (108 + k) + 2] = w.to_bytes(2, "little")
    return bytes(ident)


def vpd():
    """The devices of hardware-managers/src/generic/vpd_tests.rs: QEMU scsi-hd, a Seagate SAS
    disk, an HP Smart Array logical drive, T10/EUI-64 ids, an ATA disk through libata's SAT
    pages and page 0x89, a SCSI-2 style page 0x83 and a device without page 0x83."""
    qv, qm = b"QEMU    ", b"QEMU HARDDISK   "
    seed("vpd", "qemu-scsi-hd", _vpd_input(
        qv, qm, _vpd_page(0x80, b"QM00002"),
        _vpd_page(0x83, _designator(0x02, 0x00, b"drive-scsi0-0-0-0"))))
    naa = bytes([0x50, 0x00, 0xC5, 0x00, 0xA1, 0xB2, 0xC3, 0xD4])
    sas = (_designator(0x01, 0x03, naa) + _designator(0x61, 0x93, naa[:7] + b"\xd5")
           + _designator(0x61, 0x94, bytes([0, 0, 0, 1])))
    seed("vpd", "sas-naa5", _vpd_input(b"SEAGATE ", b"ST600MM0006     ",
                                       _vpd_page(0x80, b"Z1Z0ABCD0000C123ABCD"),
                                       _vpd_page(0x83, sas)))
    raid = (_designator(0x02, 0x01, b"HP      LOGICAL VOLUME  PDNLH0BRH9V0BG")
            + _designator(0x01, 0x03, bytes.fromhex("600508b1001c4d0c1f2e3d4c5b6a7980")))
    seed("vpd", "raid-naa6", _vpd_input(b"HP      ", b"LOGICAL VOLUME  ", b"",
                                        _vpd_page(0x83, raid), flags=2))
    seed("vpd", "t10", _vpd_input(qv, qm, b"", _vpd_page(
        0x83, _designator(0x02, 0x01, b"ATA     QEMU HARDDISK  QM00001")), flags=2))
    seed("vpd", "eui64", _vpd_input(qv, qm, b"", _vpd_page(
        0x83, _designator(0x01, 0x02, bytes([0x00, 0x25, 0x38, 0x8B, 1, 2, 3, 4]))), flags=2))
    seed("vpd", "page80-only", _vpd_input(qv, qm, _vpd_page(0x80, b"  AB12  "), b"", flags=1))
    seed("vpd", "scsi2-page83", _vpd_input(
        b"EMC     ", b"SYMMETRIX       ", b"",
        bytes([0, 0x83, 0, 12, 0x60, 0x06, 0x04, 0x80]) + bytes(range(1, 9)), flags=2))
    serial, model = b"    S3Z9NB0K123456A ", b"Samsung SSD 860 EVO 500GB               "
    sat = (_designator(0x02, 0x00, serial)
           + _designator(0x02, 0x01, b"ATA     " + model + serial[4:])
           + _designator(0x01, 0x03, bytes.fromhex("5002538e40123456")))
    seed("vpd", "ata-sat", _vpd_input(b"ATA     ", b"Samsung SSD 860 ",
                                      _vpd_page(0x80, serial), _vpd_page(0x83, sat)))
    p89 = bytes([0, 0x89, 0x02, 0x38]) + bytes(56) + _identify(
        serial, model, [0x5002, 0x538E, 0x4012, 0x3456])
    seed("vpd", "ata-page89", _vpd_input(b"ATA     ", b"Samsung SSD 860 ",
                                         _vpd_page(0x80, serial), p89))


def dmidecode_text():
    """The dmidecode captures of hardware-managers/testdata/dmidecode, and a short one whose
    memory array lacks a numeric `Number Of Devices`."""
    for f in sorted((HM / "testdata/dmidecode").glob("*.txt")):
        seed("dmidecode_text", f.stem, f.read_bytes())
    seed("dmidecode_text", "bad-count",
         "# dmidecode 3.5\n\nHandle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n"
         "\tLocation: System Board Or Motherboard\n\tNumber Of Devices: many\n\n"
         "Handle 0x1100, DMI type 17, 40 bytes\nMemory Device\n\tSize: 16 GB\n"
         "\tFlags:\n\t\tSynchronous\n\t\tRegistered (Buffered)\n\n")


def _smbios_structure(kind, handle, body, strings):
    out = bytes([kind, 4 + len(body)]) + handle.to_bytes(2, "little") + body
    out += b"".join(s + b"\0" for s in strings) or b"\0"
    return out + b"\0"


def _smbios_dimm(array, size, speed, strings, ext=0):
    body = bytearray(0x28 - 4)
    body[0:2] = array.to_bytes(2, "little")
    body[0x0C - 4:0x0E - 4] = size.to_bytes(2, "little")
    body[0x0E - 4] = 0x09                                   # DIMM
    body[0x10 - 4], body[0x11 - 4] = 1, 2                   # locator strings
    body[0x12 - 4] = 0x1A                                   # DDR4
    body[0x13 - 4:0x15 - 4] = (0x0080 | 0x2000).to_bytes(2, "little")
    body[0x15 - 4:0x17 - 4] = speed.to_bytes(2, "little")
    body[0x17 - 4], body[0x18 - 4], body[0x19 - 4], body[0x1A - 4] = 3, 4, 5, 6
    body[0x1C - 4:0x20 - 4] = ext.to_bytes(4, "little")
    return _smbios_structure(17, 0x1100 + array, bytes(body), strings)


def smbios():
    """SMBIOS tables like those of hardware-managers/src/extra/{smbios,memory}.rs's tests: BIOS,
    a memory array with two DIMMs (one empty), an extended-size DIMM in a second array, and
    the end-of-table structure."""
    bios = _smbios_structure(0, 0, bytes([1, 2, 0, 0xF0, 3]), [b"Vendor", b"1.2.3", b"01/02/2020"])
    array = _smbios_structure(16, 0x1000, bytes([3, 3, 6, 0, 0, 0, 0x80, 0, 0, 0, 0, 2, 0]), [])
    dimm = _smbios_dimm(0x1000, 16384, 2666,
                        [b"DIMM_A1", b"NODE 1", b"Samsung", b"12345678", b"  ", b"M393A2K43BB1-CTD"])
    empty = _smbios_dimm(0x1000, 0, 0, [b"DIMM_A2", b"NODE 1", b"NO DIMM", b"NO DIMM", b"", b"NO DIMM"])
    array2 = _smbios_structure(16, 0x1001, bytes([3, 3, 6, 0, 0, 0, 0x80, 0, 0, 0, 0, 1, 0]), [])
    big = _smbios_dimm(0x1001, 0x7FFF, 3200, [b"DIMM_B1", b"NODE 2", b"Micron", b"ABCDEF01",
                                              b"", b"36ASF8G72PZ-3G2E1"], ext=65536)
    end = _smbios_structure(127, 0xFEFF, b"", [])
    seed("smbios", "two-arrays", bios + array + dimm + empty + array2 + big + end)
    seed("smbios", "one-dimm", array + dimm + end)
    seed("smbios", "truncated", bios + array + dimm[:30])


def ipmitool_lan():
    """The captured ipmitool answers of hardware-managers/tests/fixtures/bmc (real iDRAC, iLO
    and other servers): per case the `lan print N` answers of channels 1 to the last one
    captured, then the `lan6 print` ones (enables, dynamic_addr, static_addr, plain)."""
    for case in sorted((HM / "tests/fixtures/bmc").iterdir()):
        outs = {f.name[:-4]: f for f in case.glob("*.out")}
        if not outs:
            continue

        def answer(name):
            f = case / f"{name}.out"
            text = f.read_text() if f.exists() else ""
            err = case / f"{name}.err"
            if err.exists() and err.read_text():
                text += "\0" + err.read_text()
            return text

        lan = sorted(int(n.split("_")[2]) for n in outs if n.startswith("lan_print_"))
        records = [answer(f"lan_print_{c}") for c in range(1, max(lan, default=1) + 1)]
        for c in sorted({int(n.split("_")[2]) for n in outs if n.startswith("lan6_print_")}):
            for tail in ("_enables", "_dynamic_addr", "_static_addr", ""):
                records.append(answer(f"lan6_print_{c}{tail}"))
        seed("ipmitool_lan", case.name, "\n---\n".join(records))


def ethtool_text():
    """`ethtool -k` and `ethtool -a` outputs as in hardware-managers/src/extra/ethtool.rs's
    tests, with and without an interface name."""
    seed("ethtool_text", "features",
         "eth0\0Features for eth0:\nrx-checksumming: on [fixed]\ntx-checksumming: on\n"
         "\ttx-checksum-ipv4: off [fixed]\n\ttx-checksum-ip-generic: on\nhighdma: on [fixed]\n"
         "rx-vlan-filter: on\nvlan-challenged: off [fixed]\n")
    seed("ethtool_text", "pause",
         "eno1\0Pause parameters for eno1:\nAutonegotiate:\ton\nRX:\t\toff\nTX:\t\toff\n")
    seed("ethtool_text", "default-name", "Features for eth0:\nscatter-gather: on\n"
         "\ttx-scatter-gather: on\n\ttx-scatter-gather-fraglist: off [fixed]\n")


def main():
    if not SPEC.is_dir():
        sys.exit(f"{SPEC} not found (set SPEC_DIR)")
    api_request()
    kernel_cmdline()
    image_info()
    root_device_hints()
    plugin_protocol()
    inject_walker()
    lldp()
    network_data()
    mdns_message()
    vpd()
    dmidecode_text()
    smbios()
    ipmitool_lan()
    ethtool_text()
    with tempfile.TemporaryDirectory(prefix="fuzz-seeds-") as tmp:
        notes = superblock_probe(Path(tmp))
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    for d in sorted(CORPUS.iterdir()):
        files = [f for f in d.iterdir() if f.name.startswith("seed-")]
        size = sum(f.stat().st_size for f in files)
        print(f"{d.name}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
