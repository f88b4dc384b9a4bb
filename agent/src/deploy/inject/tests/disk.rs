use super::*;
use hardware_managers::IpaClass;

// ---- on loop devices ----------------------------------------------------------------------

enum Fs<'a> {
    Ext4(&'a Path),
    Swap,
}

/// A 64 MiB loop disk with a GPT of 16 MiB partitions formatted as asked (ext4 filled
/// from a directory with `mkfs.ext4 -d`).
fn test_disk(dir: &Path, parts: &[Fs<'_>]) -> anyhow::Result<LoopDevice> {
    let lo = LoopDevice::create(&dir.join("disk.img"), 64 << 20)?;
    let specs: Vec<PartitionSpec> = (1..=parts.len())
        .map(|i| PartitionSpec {
            size_mib: 16,
            kind: PartitionKind::Linux,
            name: format!("p{i}"),
            bootable: false,
        })
        .collect();
    table::write_table(&lo.path, TableKind::Gpt, &specs)?;
    let numbers: Vec<u32> = (1..=parts.len() as u32).collect();
    blockdev::reread_partitions(&lo.path, &numbers)?;
    for (n, fs) in numbers.iter().zip(parts) {
        let dev = lo.partition(*n);
        match fs {
            Fs::Ext4(src) => run_cmd(
                Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-d"])
                    .arg(src)
                    .arg(&dev),
            )?,
            Fs::Swap => run_cmd(Command::new("mkswap").arg(&dev))?,
        }
    }
    Ok(lo)
}

/// A source tree for `mkfs.ext4 -d`.
fn tree(dir: &Path, name: &str, dirs: &[&str], files: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let root = dir.join(name);
    std::fs::create_dir_all(&root)?;
    for d in dirs {
        std::fs::create_dir_all(root.join(d))?;
    }
    for (f, body) in files {
        std::fs::write(root.join(f), body)?;
    }
    Ok(root)
}

/// Lines of /proc/self/mounts whose source is `lo` or one of its partitions.
fn mounts_of(lo: &LoopDevice) -> anyhow::Result<Vec<String>> {
    let disk = lo.path.display().to_string();
    Ok(std::fs::read_to_string("/proc/self/mounts")?
        .lines()
        .filter(|l| {
            let src = l.split_whitespace().next().unwrap_or("");
            src == disk
                || src
                    .strip_prefix(disk.as_str())
                    .and_then(|r| r.strip_prefix('p'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(String::from)
        .collect())
}

/// Mounts partition `dev` read-only and runs `check` on its mount point.
fn inspect<T>(dev: &Path, check: impl FnOnce(&Path) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let m = Mounted::new(dev, false).map_err(anyhow::Error::msg)?;
    check(&m.dir)
}

fn run_on(lo: &LoopDevice, n: &Node, a: &Map<String, Value>) -> HardwareResult<Value> {
    let dev = lo.path.clone();
    let root = move || -> HardwareResult<PathBuf> { Ok(dev.clone()) };
    let env = Environment {
        root_device: &root,
        guard: DiskGuard::new(Vec::new(), Path::new("/")),
        download: DownloadSettings {
            retries: 0,
            ..DownloadSettings::default()
        },
    };
    inject_files(n, &ports(), a, &env)
}

#[test]
fn file_goes_to_the_partition_holding_etc_with_mode_and_owner() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let boot = tree(dir.path(), "boot", &["grub"], &[])?;
    let rootfs = tree(
        dir.path(),
        "rootfs",
        &["etc", "usr/bin"],
        &[("etc/hostname", "old\n")],
    )?;
    let lo = test_disk(dir.path(), &[Fs::Ext4(&boot), Fs::Swap, Fs::Ext4(&rootfs)])?;
    let files = json!([
        {"path": "/etc/sysctl.d/my.conf", "content": b64(b"x=1\n"), "mode": 0o640,
         "dirmode": 0o700, "owner": 1000, "group": 1001},
        {"path": "/usr/bin/tool", "content": b64(b"#!/bin/sh\n"), "mode": 0o4755, "owner": 1000},
        {"path": "/etc/hostname", "content": b64(b"new\n")}
    ]);
    assert_eq!(
        run_on(&lo, &node(json!({})), &args(files)).map_err(anyhow::Error::msg)?,
        Value::Null
    );
    assert!(mounts_of(&lo)?.is_empty(), "{:?}", mounts_of(&lo)?);

    inspect(&lo.partition(3), |m| {
        let conf = m.join("etc/sysctl.d/my.conf");
        assert_eq!(std::fs::read(&conf)?, b"x=1\n");
        let meta = std::fs::metadata(&conf)?;
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (0o640, 1000, 1001)
        );
        let d = std::fs::metadata(m.join("etc/sysctl.d"))?;
        assert_eq!((d.mode() & 0o7777, d.uid()), (0o700, 0));
        // chown before chmod: the set-uid bit survives.
        let tool = std::fs::metadata(m.join("usr/bin/tool"))?;
        assert_eq!(
            (tool.mode() & 0o7777, tool.uid(), tool.gid()),
            (0o4755, 1000, 0)
        );
        assert_eq!(std::fs::read(m.join("etc/hostname"))?, b"new\n");
        Ok(())
    })?;
    inspect(&lo.partition(1), |m| {
        assert!(!m.join("etc").exists() && !m.join("usr").exists());
        Ok(())
    })?;
    assert!(mounts_of(&lo)?.is_empty());
    Ok(())
}

#[test]
fn explicit_partition_by_number_and_device_path() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let empty = tree(dir.path(), "empty", &[], &[])?;
    let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
    let lo = test_disk(dir.path(), &[Fs::Ext4(&empty), Fs::Ext4(&rootfs)])?;
    let p2 = lo.partition(2).display().to_string();
    let files = json!([
        {"path": "/hello.txt", "partition": 1, "content": b64(b"hello")},
        {"path": "/sub/dir/x", "partition": "2", "content": b64(b"x"), "dirmode": 0o750},
        {"path": "/etc/y", "partition": p2, "content": b64(b"y")},
        {"path": "/top", "partition": p2, "content": b64(b"top")}
    ]);
    run_on(&lo, &node(json!({})), &args(files)).map_err(anyhow::Error::msg)?;
    assert!(mounts_of(&lo)?.is_empty());
    inspect(&lo.partition(1), |m| {
        assert_eq!(std::fs::read(m.join("hello.txt"))?, b"hello");
        assert!(!m.join("sub").exists());
        Ok(())
    })?;
    inspect(&lo.partition(2), |m| {
        assert_eq!(std::fs::read(m.join("sub/dir/x"))?, b"x");
        assert_eq!(std::fs::metadata(m.join("sub"))?.mode() & 0o7777, 0o755);
        assert_eq!(std::fs::metadata(m.join("sub/dir"))?.mode() & 0o7777, 0o750);
        assert_eq!(std::fs::read(m.join("etc/y"))?, b"y");
        assert_eq!(std::fs::read(m.join("top"))?, b"top");
        Ok(())
    })?;

    let e = run_on(
        &lo,
        &node(json!({})),
        &args(json!([
            {"path": "/a", "partition": 9, "content": b64(b"a")}
        ])),
    )
    .err();
    assert!(
        matches!(&e, Some(HardwareError::DeviceNotFound(m)) if m.contains("partition 9 does not exist") && m.contains("partitions: 1, 2")),
        "{e:?}"
    );
    let e = run_on(
        &lo,
        &node(json!({})),
        &args(json!([
            {"path": "/a", "partition": "/dev/null", "content": b64(b"a")}
        ])),
    )
    .err();
    assert!(
        matches!(&e, Some(HardwareError::DeviceNotFound(m)) if m.contains("/dev/null is not a block device")),
        "{e:?}"
    );
    assert!(mounts_of(&lo)?.is_empty());
    Ok(())
}

#[test]
fn deleted_files_are_removed_and_absent_ones_ignored() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rootfs = tree(
        dir.path(),
        "rootfs",
        &["etc"],
        &[("etc/existing", "bye"), ("etc/keep", "stay")],
    )?;
    symlink("keep", rootfs.join("etc/link"))?;
    let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs)])?;
    let files = json!([
        {"path": "/etc/existing", "deleted": true},
        {"path": "/etc/absent", "deleted": true},
        {"path": "/nodir/x", "deleted": true, "partition": 1},
        {"path": "/etc/link", "deleted": true}
    ]);
    run_on(&lo, &node(json!({})), &args(files)).map_err(anyhow::Error::msg)?;
    assert!(mounts_of(&lo)?.is_empty());
    inspect(&lo.partition(1), |m| {
        assert!(!m.join("etc/existing").exists());
        assert!(m.join("etc/link").symlink_metadata().is_err());
        assert_eq!(std::fs::read(m.join("etc/keep"))?, b"stay");
        assert!(!m.join("nodir").exists());
        Ok(())
    })
}
#[test]
fn url_content_and_node_property_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
    let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs)])?;
    let base = crate::testutil::serve_routes(HashMap::from([
        (
            format!("/n/{NODE_UUID}/52:54:00:12:34:56"),
            (200, b"per-node".to_vec()),
        ),
        ("/p/port-a,port-b".to_string(), (200, b"per-ports".to_vec())),
    ]))?;
    let n = node(json!({"inject_files": [
        {"path": "/etc/a", "content": format!("{base}/n/{{node[uuid]}}/{{ports[0][address]}}")},
        {"path": "/etc/b", "content": b64(b"props-b")}
    ]}));
    let mut a = args(json!([
        {"path": "/etc/b", "content": b64(b"args-b")},
        {"path": "/etc/c", "content": format!("{base}/p/{{ports}}")},
        {"path": "/etc/d", "content": format!("{base}/n/{{node}}/{{ports[0][address]}}"), "mode": 0o600}
    ]));
    a.insert("verify_ca".into(), json!(false));
    run_on(&lo, &n, &a).map_err(anyhow::Error::msg)?;
    inspect(&lo.partition(1), |m| {
        assert_eq!(std::fs::read(m.join("etc/a"))?, b"per-node");
        // node.properties first, then the argument: the argument's /etc/b wins.
        assert_eq!(std::fs::read(m.join("etc/b"))?, b"args-b");
        assert_eq!(std::fs::read(m.join("etc/c"))?, b"per-ports");
        assert_eq!(std::fs::read(m.join("etc/d"))?, b"per-node");
        assert_eq!(std::fs::metadata(m.join("etc/d"))?.mode() & 0o7777, 0o600);
        Ok(())
    })?;

    // A failed download writes nothing, not even the items before it.
    let e = run_on(
        &lo,
        &node(json!({})),
        &args(json!([
            {"path": "/etc/first", "content": b64(b"1")},
            {"path": "/etc/second", "content": format!("{base}/missing")}
        ])),
    )
    .err();
    assert!(
        matches!(&e, Some(HardwareError::Ipa(i))
            if i.is(IpaClass::CommandExecutionError)
                && i.details().contains("Unable to read data from")
                && i.details().contains("404")),
        "{e:?}"
    );
    inspect(&lo.partition(1), |m| {
        assert!(!m.join("etc/first").exists());
        Ok(())
    })?;
    assert!(mounts_of(&lo)?.is_empty());
    Ok(())
}

#[test]
fn traversal_is_refused_or_contained_on_a_real_filesystem() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let u = unique();
    let rootfs = tree(dir.path(), "rootfs", &["tmp", "conf"], &[])?;
    symlink("/", rootfs.join("etc"))?;
    symlink(format!("/tmp/{u}-c"), rootfs.join("conf/abs"))?;
    symlink("loop", rootfs.join("conf/loop"))?;
    let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs)])?;
    let host = |p: String| Path::new(&p).symlink_metadata().is_ok();

    // `/etc` is a link to `/` in the image: found as a directory, written inside the image.
    run_on(
        &lo,
        &node(json!({})),
        &args(json!([
            {"path": format!("/etc/{u}-a"), "content": b64(b"a")},
            {"path": "/conf/abs", "content": b64(b"c")}
        ])),
    )
    .map_err(anyhow::Error::msg)?;
    assert!(!host(format!("/{u}-a")) && !host(format!("/tmp/{u}-c")));
    assert!(!host(format!("{}/{u}-a", std::env::temp_dir().display())));
    inspect(&lo.partition(1), |m| {
        assert_eq!(std::fs::read(m.join(format!("{u}-a")))?, b"a");
        assert_eq!(std::fs::read(m.join(format!("tmp/{u}-c")))?, b"c");
        Ok(())
    })?;

    let e = run_on(
        &lo,
        &node(json!({})),
        &args(json!([
            {"path": "/conf/loop", "content": b64(b"x")}
        ])),
    )
    .err();
    assert!(
        matches!(&e, Some(HardwareError::Ipa(i))
            if i.is(IpaClass::CommandExecutionError) && i.details().contains("too many levels of symbolic links")),
        "{e:?}"
    );
    for path in ["/../x", "/etc/../../x", "/conf/../../../x"] {
        let e = run_on(
            &lo,
            &node(json!({})),
            &args(json!([
                {"path": path, "partition": 1, "content": b64(b"x")}
            ])),
        )
        .err();
        assert!(
            matches!(&e, Some(HardwareError::InvalidArgs(m)) if m.contains("`..` is not allowed")),
            "{path}: {e:?}"
        );
    }
    assert!(mounts_of(&lo)?.is_empty(), "{:?}", mounts_of(&lo)?);
    Ok(())
}

#[test]
fn a_mounted_image_cannot_reach_the_host_and_a_bad_item_writes_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside)?;
    std::fs::write(outside.join("sentinel"), b"host")?;
    let before = snapshot(&outside)?;
    let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
    // In the mounted image these point at the host's `outside` (absolute), or climb out
    // of the mount point (relative).
    symlink(&outside, rootfs.join("etc/abs"))?;
    symlink("../../../../../../../../../..", rootfs.join("etc/up"))?;
    symlink(outside.join("sentinel"), rootfs.join("etc/final"))?;
    let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs)])?;
    let outside_in_image = outside.display().to_string();
    let outside_in_image = outside_in_image.trim_start_matches('/');

    // One bad item (`..`) refuses the whole request before anything is mounted.
    let e = run_on(
        &lo,
        &node(json!({})),
        &args(json!([
            {"path": "/etc/fine", "content": b64(b"x")},
            {"path": "/etc/up/../../x", "content": b64(b"x")}
        ])),
    )
    .err();
    assert!(
        matches!(&e, Some(HardwareError::InvalidArgs(m)) if m.contains("`..` is not allowed")),
        "{e:?}"
    );
    inspect(&lo.partition(1), |m| {
        assert!(!m.join("etc/fine").exists());
        Ok(())
    })?;

    run_on(
        &lo,
        &node(json!({})),
        &args(json!([
            {"path": "/etc/abs/a", "content": b64(b"a")},
            {"path": format!("/etc/up{}/b", outside.display()), "content": b64(b"b")},
            {"path": "/etc/final", "content": b64(b"c")}
        ])),
    )
    .map_err(anyhow::Error::msg)?;
    assert_eq!(snapshot(&outside)?, before, "the host directory changed");
    inspect(&lo.partition(1), |m| {
        let at = m.join(outside_in_image);
        assert_eq!(std::fs::read(at.join("a"))?, b"a");
        assert_eq!(std::fs::read(at.join("b"))?, b"b");
        assert_eq!(std::fs::read(at.join("sentinel"))?, b"c");
        Ok(())
    })?;
    assert!(mounts_of(&lo)?.is_empty(), "{:?}", mounts_of(&lo)?);
    Ok(())
}

#[test]
fn nothing_is_written_when_a_path_has_no_partition() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
    let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs), Fs::Swap])?;
    let e = run_on(
        &lo,
        &node(json!({})),
        &args(json!([
            {"path": "/etc/a", "content": b64(b"a")},
            {"path": "/nope/b", "content": b64(b"b")}
        ])),
    )
    .err();
    assert!(
        matches!(&e, Some(HardwareError::DeviceNotFound(m))
            if m.contains("No partition found with path /nope (for files[1] (/nope/b))")
                && m.contains("swap, skipped")),
        "{e:?}"
    );
    assert!(mounts_of(&lo)?.is_empty());
    inspect(&lo.partition(1), |m| {
        assert!(!m.join("etc/a").exists());
        Ok(())
    })
}

#[test]
fn the_disk_guard_refuses_a_disk_in_use() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let empty = tree(dir.path(), "empty", &[], &[])?;
    let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
    let lo = test_disk(dir.path(), &[Fs::Ext4(&empty), Fs::Ext4(&rootfs)])?;
    let p2 = lo.partition(2).display().to_string();
    {
        // Someone else has partition 1 mounted: no partition of this disk may be written.
        let _busy = Mounted::new(&lo.partition(1), false).map_err(anyhow::Error::msg)?;
        for files in [
            json!([{"path": "/etc/x", "partition": p2, "content": b64(b"x")}]),
            json!([{"path": "/etc/x", "content": b64(b"x")}]),
        ] {
            let e = run_on(&lo, &node(json!({})), &args(files)).err();
            assert!(
                matches!(&e, Some(HardwareError::Ipa(i))
                    if i.is(IpaClass::ProtectedDeviceError) && i.details().contains("mounted")),
                "{e:?}"
            );
        }
    }
    assert!(mounts_of(&lo)?.is_empty());
    inspect(&lo.partition(2), |m| {
        assert!(!m.join("etc/x").exists());
        Ok(())
    })
}

#[test]
fn mounts_are_always_undone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rootfs = tree(dir.path(), "rootfs", &["etc"], &[])?;
    let lo = test_disk(dir.path(), &[Fs::Ext4(&rootfs), Fs::Swap])?;
    let mount_dir;
    {
        let m = Mounted::new(&lo.partition(1), true).map_err(anyhow::Error::msg)?;
        mount_dir = m.dir.clone();
        assert!(is_mountpoint(&m.dir));
        assert_eq!(std::fs::metadata(&m.dir)?.mode() & 0o777, 0o755);
        assert_eq!(mounts_of(&lo)?.len(), 1);
        assert!(
            mounts_of(&lo)?[0].contains("nosuid,nodev,noexec"),
            "{:?}",
            mounts_of(&lo)?
        );
        // Busy (a file is open inside) when dropped: detached lazily, still gone.
        let _open = File::open(m.dir.join("etc"))?;
        drop(m);
        assert!(mounts_of(&lo)?.is_empty());
    }
    assert!(!mount_dir.exists(), "mount point left behind");
    // A swap partition does not mount; nothing is left either.
    assert!(Mounted::new(&lo.partition(2), false).is_err());
    assert!(mounts_of(&lo)?.is_empty());
    Ok(())
}
