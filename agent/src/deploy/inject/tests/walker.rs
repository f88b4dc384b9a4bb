use super::*;

// ---- path resolution inside a tree (a plain directory; no mounts) -----------------------

#[test]
fn symlinks_in_the_image_cannot_escape_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let u = unique();
    std::fs::create_dir_all(root.join("conf"))?;
    std::fs::create_dir_all(root.join("tmp"))?;
    std::fs::write(root.join("conf/file"), b"regular")?;
    symlink("/", root.join("etc"))?;
    symlink("../../../..", root.join("conf/up"))?;
    symlink(format!("/tmp/{u}-c"), root.join("conf/abs"))?;
    symlink("loop", root.join("conf/loop"))?;
    symlink("/tmp/", root.join("conf/dirlink"))?;
    symlink("/missing/x", root.join("conf/dangling"))?;
    run_cmd(Command::new("mkfifo").arg(root.join("conf/fifo")))?;
    let host = |p: &str| Path::new(p).symlink_metadata().is_ok();
    assert!(!host(&format!("/{u}-a")) && !host(&format!("/tmp/{u}-c")));

    let write = |path: &str, body: &[u8]| -> anyhow::Result<Result<String, InjectError>> {
        Ok(apply_one(&root, &spec(path)?, Some(body)))
    };
    // `etc -> /` lands in the tree's root, `conf/up` climbs no higher than it.
    write(&format!("/etc/{u}-a"), b"a")?.map_err(anyhow::Error::msg)?;
    write(&format!("/conf/up/{u}-b"), b"b")?.map_err(anyhow::Error::msg)?;
    // A final component linking to an absolute path is followed inside the tree.
    write("/conf/abs", b"c")?.map_err(anyhow::Error::msg)?;
    assert_eq!(std::fs::read(root.join(format!("{u}-a")))?, b"a");
    assert_eq!(std::fs::read(root.join(format!("{u}-b")))?, b"b");
    assert_eq!(std::fs::read(root.join(format!("tmp/{u}-c")))?, b"c");
    assert!(
        root.join("conf/abs")
            .symlink_metadata()?
            .file_type()
            .is_symlink()
    );
    assert!(!host(&format!("/{u}-a")) && !host(&format!("/{u}-b")));
    assert!(!host(&format!("/tmp/{u}-c")));

    for (path, needle) in [
        ("/conf/loop", "too many levels of symbolic links"),
        ("/conf/fifo", "not a regular file"),
        ("/conf/dirlink", "symbolic link to a directory"),
        ("/conf/dangling", "into a directory missing from the image"),
        (
            "/conf/file/x",
            "/conf/file exists in the image and is not a directory",
        ),
        ("/conf", "/conf is a directory"),
    ] {
        match write(path, b"x")? {
            Err(m) => assert!(m.to_string().contains(needle), "{path}: {m}"),
            Ok(m) => anyhow::bail!("{path} was written: {m}"),
        }
    }

    // New directories: 0755, the leaf gets dirmode.
    let mut s = spec(&format!("/etc/new/leaf/{u}-d"))?;
    s.dirmode = Some(0o700);
    apply_one(&root, &s, Some(b"d")).map_err(anyhow::Error::msg)?;
    let mode = |p: &str| -> anyhow::Result<u32> {
        Ok(std::fs::metadata(root.join(p))?.permissions().mode() & 0o7777)
    };
    assert_eq!(mode("new")?, 0o755);
    assert_eq!(mode("new/leaf")?, 0o700);
    assert_eq!(mode(&format!("new/leaf/{u}-d"))?, 0o644);

    // Deleting removes a link itself, never its target; absent is fine; directories are not.
    let del = |path: &str| -> anyhow::Result<Result<String, InjectError>> {
        let mut s = spec(path)?;
        s.action = Action::Delete;
        Ok(apply_one(&root, &s, None))
    };
    assert_eq!(del("/conf/abs")?.map_err(anyhow::Error::msg)?, "deleted");
    assert!(root.join(format!("tmp/{u}-c")).exists());
    assert!(root.join("conf/abs").symlink_metadata().is_err());
    assert_eq!(
        del("/conf/abs")?.map_err(anyhow::Error::msg)?,
        "already absent"
    );
    assert_eq!(
        del("/no/such/dir/x")?.map_err(anyhow::Error::msg)?,
        "already absent"
    );
    assert_eq!(
        del(&format!("/etc/{u}-a"))?.map_err(anyhow::Error::msg)?,
        "deleted"
    );
    assert!(!root.join(format!("{u}-a")).exists());
    assert!(del("/conf")?.is_err_and(|m| m.to_string().contains("is a directory")));
    Ok(())
}

#[test]
fn links_to_real_host_paths_are_resolved_inside_the_image() -> anyhow::Result<()> {
    // `outside` is a real directory next to the image: any link below that the kernel
    // followed would land in it.
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::create_dir_all(&outside)?;
    std::fs::write(outside.join("sentinel"), b"host")?;
    let before = snapshot(&outside)?;
    let abs = outside.display().to_string();
    let abs_in_image = abs.trim_start_matches('/');
    // Parent directories that are links: absolute, relative climbing out of the image,
    // through a link to `/`.
    symlink(&outside, root.join("abs_parent"))?;
    symlink("../outside", root.join("rel_parent"))?;
    symlink("../../../../../../../../outside", root.join("etc/deep_rel"))?;
    symlink("/", root.join("slash"))?;
    // Final components that are links to the host's file.
    symlink(outside.join("sentinel"), root.join("final_abs"))?;
    symlink("../outside/sentinel", root.join("etc/final_rel"))?;

    let write = |path: &str, body: &[u8]| -> anyhow::Result<String> {
        apply_one(&root, &spec(path)?, Some(body)).map_err(anyhow::Error::msg)
    };
    write("/abs_parent/a", b"a")?;
    write("/rel_parent/b", b"b")?;
    write("/etc/deep_rel/c", b"c")?;
    write(&format!("/slash/{abs_in_image}/d"), b"d")?;
    write("/final_abs", b"e")?;
    write("/etc/final_rel", b"f")?;
    let mut del = spec("/abs_parent/sentinel")?;
    del.action = Action::Delete;
    // The image's own copy (just written through /final_abs) goes; the host's stays.
    assert_eq!(
        apply_one(&root, &del, None).map_err(anyhow::Error::msg)?,
        "deleted"
    );

    assert_eq!(snapshot(&outside)?, before, "the host directory changed");
    let inside = |p: &str| std::fs::read(root.join(p)).ok();
    assert_eq!(
        inside(&format!("{abs_in_image}/a")).as_deref(),
        Some(&b"a"[..])
    );
    assert_eq!(inside("outside/b").as_deref(), Some(&b"b"[..]));
    assert_eq!(inside("outside/c").as_deref(), Some(&b"c"[..]));
    assert_eq!(
        inside(&format!("{abs_in_image}/d")).as_deref(),
        Some(&b"d"[..])
    );
    assert_eq!(
        inside(&format!("{abs_in_image}/sentinel")),
        None,
        "deleted in the image"
    );
    assert_eq!(inside("outside/sentinel").as_deref(), Some(&b"f"[..]));
    // The links themselves are untouched.
    for link in [
        "abs_parent",
        "rel_parent",
        "etc/deep_rel",
        "slash",
        "final_abs",
        "etc/final_rel",
    ] {
        assert!(
            root.join(link).symlink_metadata()?.file_type().is_symlink(),
            "{link}"
        );
    }
    Ok(())
}
