use super::*;
use hardware_managers::IpaClass;

// ---- validation, templates, step catalogue (no disks) ----------------------------------

#[test]
fn bad_items_are_all_reported_as_invalid_args() -> anyhow::Result<()> {
    let ok = b64(b"x");
    let files = json!([
        {"content": ok},
        {"path": "etc/relative", "content": ok},
        {"path": "/../x", "content": ok},
        {"path": "/etc/../../x", "content": ok},
        {"path": "/etc/\u{0}x", "content": ok},
        {"path": "/etc/", "content": ok},
        {"path": "/rootfile", "content": ok},
        {"path": "/etc/a", "content": "%%% not base64 %%%"},
        {"path": "/etc/a", "content": ok, "deleted": true},
        {"path": "/etc/a", "content": ok, "mode": "0644"},
        {"path": "/etc/a", "content": ok, "owner": true},
        {"path": "/etc/a", "content": ok, "dirmode": 70000},
        {"path": "/etc/a", "content": ok, "bogus": 1},
        {"path": "/etc/nocontent"},
        {"path": "/etc/a", "content": ok, "partition": 0},
        {"path": "/etc/a", "content": ok, "partition": "sda1"},
        {"path": "/etc/a", "content": "http://h/{nope}"},
        {"path": "/etc/a", "content": "ftp://h/x"},
        42
    ]);
    let err = validate_files(&node(json!({})), &ports(), Some(&files)).err();
    let Some(HardwareError::InvalidArgs(msg)) = err else {
        anyhow::bail!("expected InvalidArgs, got {err:?}");
    };
    assert!(msg.starts_with("Validation of files failed: "), "{msg}");
    for needle in [
        "files[0]: expected a path",
        "files[1] (etc/relative): the path must be absolute",
        "files[2] (/../x): `..` is not allowed",
        "files[3] (/etc/../../x): `..` is not allowed",
        "files[4]",
        "NUL byte",
        "files[5] (/etc/): directories not supported",
        "files[6] (/rootfile): files in the root directory require \"partition\"",
        "files[7] (/etc/a): content is neither a URL (with ://) nor valid base64",
        "files[8] (/etc/a): content cannot be used with deleted",
        "files[9] (/etc/a): mode must be a number",
        "files[10] (/etc/a): owner must be a number",
        "files[11] (/etc/a): dirmode must be between 0 and 4095",
        "files[12] (/etc/a): unexpected fields: bogus",
        "files[13] (/etc/nocontent): content is required unless deleted is true",
        "files[14] (/etc/a): partition numbers start at 1",
        "files[15] (/etc/a): partition must be a number or a block device path under /dev/",
        "files[16] (/etc/a): content URL `http://h/{nope}`: `{nope}`: unknown name `nope`",
        "files[17] (/etc/a): content URL `ftp://h/x`: only http:// and https://",
        "files[18] must be an object, got number",
    ] {
        assert!(msg.contains(needle), "missing `{needle}` in: {msg}");
    }

    let e = validate_files(&node(json!({"inject_files": {"path": "/x"}})), &[], None).err();
    assert!(
        matches!(&e, Some(HardwareError::InvalidArgs(m)) if m.contains("The `inject_files` node property must be a list, got object")),
        "{e:?}"
    );
    let e = validate_files(&node(json!({})), &[], Some(&json!("x"))).err();
    assert!(
        matches!(&e, Some(HardwareError::InvalidArgs(m)) if m.contains("The `files` argument must be a list")),
        "{e:?}"
    );
    assert!(matches!(
        parse_verify_ca(Some(&json!("perhaps"))),
        Err(HardwareError::InvalidArgs(_))
    ));
    assert!(!parse_verify_ca(Some(&json!(false))).map_err(anyhow::Error::msg)?);
    assert!(!parse_verify_ca(Some(&json!("no"))).map_err(anyhow::Error::msg)?);
    assert!(parse_verify_ca(None).map_err(anyhow::Error::msg)?);
    Ok(())
}

#[test]
fn items_are_merged_and_normalised() -> anyhow::Result<()> {
    let n = node(json!({"inject_files": [
        {"path": "/etc/from-props", "content": b64(b"p"), "deleted": null}
    ]}));
    let files = json!([
        {"path": "//etc/./sysctl.d//my.conf", "content": b64(b"x=1\n"), "mode": 420,
         "dirmode": 448, "owner": -1, "group": 0, "partition": " 2 "},
        {"path": "/boot.cfg", "deleted": true, "content": "", "partition": "/dev/disk/by-partlabel/boot"},
        {"path": "/etc/url", "content": "https://h/{node[uuid]}/{ports[1][address]}"}
    ]);
    let specs = validate_files(&n, &ports(), Some(&files)).map_err(anyhow::Error::msg)?;
    assert_eq!(specs.len(), 4);
    assert_eq!(specs[0].label, "node.properties.inject_files[0]");
    assert_eq!(specs[0].action, Action::Inline(b"p".to_vec()));
    assert_eq!(specs[1].label, "files[0]");
    assert_eq!(specs[1].components, ["etc", "sysctl.d", "my.conf"]);
    assert_eq!(specs[1].partition, Some(PartitionRef::Number(2)));
    assert_eq!(
        (
            specs[1].mode,
            specs[1].dirmode,
            specs[1].owner,
            specs[1].group
        ),
        (Some(0o644), Some(0o700), None, Some(0))
    );
    assert_eq!(specs[2].action, Action::Delete);
    assert_eq!(
        specs[2].partition,
        Some(PartitionRef::Device("/dev/disk/by-partlabel/boot".into()))
    );
    assert_eq!(
        specs[3].action,
        Action::Url(format!("https://h/{NODE_UUID}/52:54:00:ab:cd:ef"))
    );
    // Nothing at all: success without touching any disk.
    let never = || -> HardwareResult<PathBuf> {
        Err(HardwareError::DeviceNotFound("must not be asked".into()))
    };
    let env = Environment {
        root_device: &never,
        guard: DiskGuard::new(Vec::new(), Path::new("/")),
        download: DownloadSettings::default(),
    };
    assert_eq!(
        inject_files(&node(json!({})), &[], &Map::new(), &env).map_err(anyhow::Error::msg)?,
        Value::Null
    );
    Ok(())
}

#[test]
fn url_templates_follow_python_format() -> anyhow::Result<()> {
    let n = serde_json::to_value(node(json!({"flag": true, "n": 3})))?;
    let p = serde_json::to_value(ports())?;
    let f = |t: &str| format_url(t, &n, &p);
    assert_eq!(
        f("http://h/{node}/{ports}").map_err(anyhow::Error::msg)?,
        format!("http://h/{NODE_UUID}/port-a,port-b")
    );
    assert_eq!(
        f("http://h/{node[uuid]}?mac={ports[0][address]}&f={node[properties][flag]}&n={node[properties][n]}")
            .map_err(anyhow::Error::msg)?,
        format!("http://h/{NODE_UUID}?mac=52:54:00:12:34:56&f=True&n=3")
    );
    assert_eq!(
        f("http://h/{{literal}}").map_err(anyhow::Error::msg)?,
        "http://h/{literal}"
    );
    for (t, needle) in [
        ("http://h/{node[nope]}", "no key `nope`"),
        ("http://h/{ports[5][uuid]}", "no item `5` in a list of 2"),
        ("http://h/{node.uuid}", "attribute access is not supported"),
        ("http://h/{0}", "unknown name `0`"),
        ("http://h/{}", "positional fields are not supported"),
        (
            "http://h/{node[uuid]!r}",
            "conversions and format specifications",
        ),
        ("http://h/{node", "unmatched `{`"),
        ("http://h/}", "single `}`"),
        (
            "http://h/{node[properties]}",
            "is a object, not a single value",
        ),
        ("file:///etc/passwd", "only http:// and https://"),
    ] {
        match f(t) {
            Err(m) => assert!(m.to_string().contains(needle), "{t}: {m}"),
            Ok(u) => anyhow::bail!("{t} formatted to {u}"),
        }
    }
    Ok(())
}

#[test]
fn priority_comes_from_the_kernel_command_line() {
    let p = |s: &str| priority(&KernelParams::parse(s));
    assert_eq!(p(""), 0);
    assert_eq!(p("ipa-inject-files-priority=55"), 55);
    assert_eq!(p("ipa-inject-files-priority=99"), 99);
    assert_eq!(p("ipa-inject-files-priority=100"), 0);
    assert_eq!(p("ipa-inject-files-priority=-1"), 0);
    assert_eq!(p("ipa-inject-files-priority=soon"), 0);
}

#[test]
fn offered_as_deploy_and_service_step() -> anyhow::Result<()> {
    let steps = crate::deploy::steps::AgentSteps::new();
    for kind in [StepKind::Deploy, StepKind::Service] {
        let all = steps.steps(kind);
        let s = all
            .iter()
            .find(|s| s.step == "inject_files")
            .ok_or_else(|| anyhow::anyhow!("no inject_files in {kind:?}"))?;
        assert_eq!((s.interface.as_str(), s.priority), ("deploy", 0));
        assert!(!s.reboot_requested && s.abortable.is_none());
        let info = s.argsinfo.clone().unwrap_or_default();
        assert_eq!(
            info.keys().map(String::as_str).collect::<Vec<_>>(),
            ["files", "verify_ca"]
        );
        assert!(info.values().all(|a| !a.required));
    }
    assert!(
        !steps
            .steps(StepKind::Clean)
            .iter()
            .any(|s| s.step == "inject_files")
    );
    Ok(())
}

#[test]
fn url_content_verifies_certificates() -> anyhow::Result<()> {
    let server = crate::tls::testing::https_server(b"from https".to_vec())?;
    let dir = tempfile::tempdir()?;
    let ca = server.ca_file(dir.path())?;
    let url = format!("{}/file", server.url);
    let mut item = spec("/etc/x")?;
    item.action = Action::Url(url.clone());
    let strict = DownloadSettings {
        retries: 3,
        retry_interval: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        ..DownloadSettings::default()
    };
    let started = std::time::Instant::now();
    let e = fetch_all(std::slice::from_ref(&item), &strict).err();
    assert!(
        matches!(&e, Some(HardwareError::Ipa(i))
            if i.is(IpaClass::CommandExecutionError)
                && i.details().contains(&format!("Unable to read data from {url}"))
                && i.details().contains("TLS certificate verification failed (UnknownIssuer)")),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "a refused certificate is not retried ({:?})",
        started.elapsed()
    );
    for settings in [
        DownloadSettings {
            cafile: Some(ca.clone()),
            ..strict.clone()
        },
        DownloadSettings {
            insecure: true,
            ..strict.clone()
        },
    ] {
        let got = fetch_all(std::slice::from_ref(&item), &settings).map_err(anyhow::Error::msg)?;
        assert_eq!(got, vec![Some(b"from https".to_vec())]);
    }
    Ok(())
}
