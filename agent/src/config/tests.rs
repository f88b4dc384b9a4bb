//! Tests of `Config`: kernel parameters, flags, configuration files and their precedence.

use super::*;

fn flags(args: &[&str]) -> Flags {
    let mut v = vec!["ironic-agent"];
    v.extend_from_slice(args);
    Flags::parse_from(v)
}

#[test]
fn kernel_params_become_config() -> anyhow::Result<()> {
    let k = KernelParams::parse(
        "ipa-api-url=http://a:6385/,http://b:6385 ipa-agent-token=tok ipa-listen-port=9998 \
         ipa-lookup-timeout=5 ipa-global-request-id=req-1 BOOTIF=01-aa ipa-insecure=1 \
         ipa-inspection-callback-url=http://a:6385/v1/continue_inspection",
    );
    let c = Config::from_parts(&flags(&[]), k)?;
    assert_eq!(c.api_urls, vec!["http://a:6385", "http://b:6385"]);
    assert_eq!(c.agent_token.as_deref(), Some("tok"));
    assert_eq!(c.listen, "[::]:9998".parse::<SocketAddr>()?);
    assert_eq!(c.lookup_timeout, Duration::from_secs(5));
    assert_eq!(c.bootif.as_deref(), Some("01-aa"));
    assert!(c.insecure);
    assert_eq!(
        c.inspection_urls(),
        vec!["http://a:6385/v1/continue_inspection"]
    );
    assert_eq!(c.inspection_collectors, vec!["default", "logs"]);
    Ok(())
}

#[test]
fn debug_never_shows_the_token() -> anyhow::Result<()> {
    let token = "tok-0123456789abcdef0123456789abcdef-x";
    let c = Config::from_parts(
        &flags(&[]),
        KernelParams::parse(&format!("ipa-agent-token={token} ipa-debug=1")),
    )?;
    assert_eq!(c.agent_token.as_deref(), Some(token));
    for shown in [format!("{c:?}"), format!("{c:#?}")] {
        assert!(!shown.contains("tok-0123"), "{shown}");
        assert!(shown.contains("ipa-debug"), "{shown}");
    }
    assert!(
        format!("{c:?}").contains(r#"agent_token: Some("***")"#),
        "{c:?}"
    );
    Ok(())
}

#[test]
fn flags_override_kernel() -> anyhow::Result<()> {
    let k = KernelParams::parse("ipa-api-url=http://a:1 ipa-advertise-host=1.1.1.1");
    let c = Config::from_parts(
        &flags(&[
            "--api-url",
            "http://127.0.0.1:6385",
            "--listen",
            "127.0.0.1:0",
            "--advertise-host",
            "127.0.0.1",
            "--allow-device",
            "/dev/loop7",
            "--no-auto-tls",
            "--power",
            "record:/tmp/p",
        ]),
        k,
    )?;
    assert_eq!(c.api_urls, vec!["http://127.0.0.1:6385"]);
    assert_eq!(c.advertise_host.as_deref(), Some("127.0.0.1"));
    assert_eq!(c.allow_devices, vec![PathBuf::from("/dev/loop7")]);
    assert!(!c.auto_tls);
    assert_eq!(c.power, PowerMode::Record(PathBuf::from("/tmp/p")));
    Ok(())
}

#[test]
fn bad_values_are_clear_errors() {
    let bad = |cmd: &str| Config::from_parts(&flags(&[]), KernelParams::parse(cmd)).err();
    assert!(bad("ipa-api-url=ftp://x").is_some());
    assert!(bad("ipa-api-url=mdns,http://a:1").is_some());
    assert!(bad("ipa-ip-lookup-attempts=0").is_some());
    assert!(bad("ipa-disk-wait-attempts=many").is_some());
    assert!(bad("ipa-listen-port=99999").is_some());
    assert!(bad("ipa-lookup-timeout=soon").is_some());
    // Past Duration's range, infinite or NaN: errors, never a panic (fuzz/kernel_cmdline).
    for v in ["1.611e300", "1e20", "inf", "NaN", "-1"] {
        assert!(bad(&format!("ipa-lookup-interval={v}")).is_some(), "{v}");
    }
    let c = Config::from_parts(&flags(&[]), KernelParams::parse("ipa-lookup-interval=-0"));
    assert_eq!(c.ok().map(|c| c.lookup_interval), Some(Duration::ZERO));
    assert!(bad("ipa-ironic-api-version=abc").is_some());
    assert!(Flags::try_parse_from(["a", "--power", "record:"]).is_err());
}

#[test]
fn advertise_port_follows_listen_unless_set() -> anyhow::Result<()> {
    let c = Config::from_parts(&flags(&[]), KernelParams::parse("ipa-listen-port=9998"))?;
    assert_eq!(
        c.advertise_port, None,
        "resolved to the bound port at start"
    );
    let c = Config::from_parts(&flags(&[]), KernelParams::parse("ipa-advertise-port=443"))?;
    assert_eq!(c.advertise_port, Some(443));
    let c = Config::from_parts(
        &flags(&["--advertise-port", "8443"]),
        KernelParams::parse("ipa-advertise-port=443"),
    )?;
    assert_eq!(c.advertise_port, Some(8443));
    Ok(())
}

#[test]
fn network_and_rescue_root_flags() -> anyhow::Result<()> {
    let c = Config::from_parts(&flags(&[]), KernelParams::parse(""))?;
    assert_eq!(c.network, NetworkMode::System);
    assert_eq!(c.rescue_root, PathBuf::from("/"));
    let c = Config::from_parts(
        &flags(&["--network", "record:/tmp/n", "--rescue-root", "/tmp/r"]),
        KernelParams::parse(""),
    )?;
    assert_eq!(c.network, NetworkMode::Record(PathBuf::from("/tmp/n")));
    assert_eq!(c.rescue_root, PathBuf::from("/tmp/r"));
    assert!(Flags::try_parse_from(["a", "--network", "record:"]).is_err());
    assert!(Flags::try_parse_from(["a", "--network", "off"]).is_err());
    Ok(())
}

#[test]
fn mdns_api_url_is_a_flag_not_an_error() -> anyhow::Result<()> {
    let c = Config::from_parts(&flags(&[]), KernelParams::parse("ipa-api-url=mdns"))?;
    assert!(c.api_url_mdns);
    assert!(c.api_urls.is_empty());
    let c = Config::from_parts(&flags(&[]), KernelParams::parse("ipa-api-url=http://a:1"))?;
    assert!(!c.api_url_mdns);
    Ok(())
}

#[test]
fn ipa_defaults_of_the_new_options() -> anyhow::Result<()> {
    let c = Config::from_parts(&flags(&[]), KernelParams::parse(""))?;
    assert_eq!(c.certfile, None);
    assert_eq!(c.keyfile, None);
    assert!(c.ntp_server.is_empty());
    assert!(!c.fail_if_clock_not_set);
    assert_eq!(c.disk_wait_attempts, 10);
    assert_eq!(c.disk_wait_delay, Duration::from_secs(3));
    assert_eq!(c.ip_lookup_attempts, 6);
    assert_eq!(c.ip_lookup_sleep, Duration::from_secs(10));
    assert!(!c.inspection_dhcp_all_interfaces);
    assert_eq!(c.lldp_timeout, Duration::from_secs(30));
    assert!(!c.collect_lldp);
    assert_eq!(c.enable_vlan_interfaces, None);
    assert!(!c.boot_method_vmedia);
    assert!(c.auto_tls);
    let c = Config::from_parts(
        &flags(&[]),
        KernelParams::parse(
            "ipa-ntp-server=10.0.0.1,ntp.example.org ipa-disk-wait-attempts=2 \
             ipa-disk-wait-delay=1 ipa-ip-lookup-attempts=3 ipa-ip-lookup-timeout=4 \
             ipa-inspection-dhcp-all-interfaces=1 ipa-lldp-timeout=2.5 ipa-collect-lldp=1 \
             ipa-enable-vlan-interfaces=eth0.100 boot_method=vmedia",
        ),
    )?;
    assert_eq!(c.ntp_server, vec!["10.0.0.1", "ntp.example.org"]);
    assert_eq!(c.disk_wait_attempts, 2);
    assert_eq!(c.disk_wait_delay, Duration::from_secs(1));
    assert_eq!(c.ip_lookup_attempts, 3);
    assert_eq!(c.ip_lookup_sleep, Duration::from_secs(4));
    assert!(c.inspection_dhcp_all_interfaces);
    assert_eq!(c.lldp_timeout, Duration::from_millis(2500));
    assert!(c.collect_lldp);
    assert_eq!(c.enable_vlan_interfaces.as_deref(), Some("eth0.100"));
    assert!(c.boot_method_vmedia);
    Ok(())
}

fn conf(text: &str) -> anyhow::Result<ConfValues> {
    let mut v = ConfValues::default();
    v.apply(Path::new("/test.conf"), text, &mut Vec::new())?;
    Ok(v)
}

/// One option set at every layer: default < kernel < parameters.txt < file < flag.
#[test]
fn precedence_table() -> anyhow::Result<()> {
    let url =
        |kernel: &str, params: &str, file: &str, flag: &[&str]| -> anyhow::Result<Vec<String>> {
            let mut k = KernelParams::parse(kernel);
            k.merge(&KernelParams::parse_params_file(params));
            Ok(Config::from_sources(&flags(flag), k, &conf(file)?)?.api_urls)
        };
    let (k, p, f) = (
        "ipa-api-url=http://kernel:1",
        "ipa-api-url=http://params:1",
        "[DEFAULT]\napi_url = http://file:1\n",
    );
    let flag = ["--api-url", "http://flag:1"];
    assert!(url("", "", "", &[])?.is_empty(), "default: none");
    assert_eq!(url(k, "", "", &[])?, vec!["http://kernel:1"]);
    assert_eq!(url(k, p, "", &[])?, vec!["http://params:1"]);
    assert_eq!(url(k, p, f, &[])?, vec!["http://file:1"]);
    assert_eq!(url(k, p, f, &flag)?, vec!["http://flag:1"]);
    assert_eq!(url("", "", f, &[])?, vec!["http://file:1"]);

    // The same for a number and a boolean.
    let timeout = |kernel: &str, file: &str| -> anyhow::Result<Duration> {
        Ok(
            Config::from_sources(&flags(&[]), KernelParams::parse(kernel), &conf(file)?)?
                .lookup_timeout,
        )
    };
    assert_eq!(timeout("", "")?, Duration::from_secs(600));
    assert_eq!(timeout("ipa-lookup-timeout=5", "")?, Duration::from_secs(5));
    assert_eq!(
        timeout("ipa-lookup-timeout=5", "[DEFAULT]\nlookup_timeout=7\n")?,
        Duration::from_secs(7)
    );
    let insecure = |kernel: &str, file: &str, flag: &[&str]| -> anyhow::Result<bool> {
        Ok(Config::from_sources(&flags(flag), KernelParams::parse(kernel), &conf(file)?)?.insecure)
    };
    assert!(insecure("ipa-insecure=1", "", &[])?);
    assert!(!insecure(
        "ipa-insecure=1",
        "[DEFAULT]\ninsecure = false\n",
        &[]
    )?);
    assert!(insecure(
        "",
        "[DEFAULT]\ninsecure = false\n",
        &["--insecure"]
    )?);
    Ok(())
}

#[test]
fn file_only_options() -> anyhow::Result<()> {
    let c = Config::from_sources(
        &flags(&[]),
        KernelParams::parse(""),
        &conf(
            "[DEFAULT]\ncafile = /etc/ironic-python-agent/ironic.crt\ncertfile = /c.pem\n\
             keyfile = /k.pem\nenable_auto_tls = false\nfail_if_clock_not_set = true\n\
             debug = true\n",
        )?,
    )?;
    assert_eq!(
        c.cafile.as_deref(),
        Some(Path::new("/etc/ironic-python-agent/ironic.crt"))
    );
    assert_eq!(c.certfile.as_deref(), Some(Path::new("/c.pem")));
    assert_eq!(c.keyfile.as_deref(), Some(Path::new("/k.pem")));
    assert!(!c.auto_tls, "enable_auto_tls=false is --no-auto-tls");
    assert!(c.fail_if_clock_not_set);
    assert!(c.debug);
    // The flag's CA wins; ipa-debug=0 on the kernel command line overrides the file's
    // debug (IPA's set_override), --debug overrides both.
    let file = conf("[DEFAULT]\ncafile = /file.crt\ndebug = true\n")?;
    let c = Config::from_sources(
        &flags(&["--cafile", "/flag.crt"]),
        KernelParams::parse("ipa-debug=0"),
        &file,
    )?;
    assert_eq!(c.cafile.as_deref(), Some(Path::new("/flag.crt")));
    assert!(!c.debug);
    let c = Config::from_sources(
        &flags(&["--debug"]),
        KernelParams::parse("ipa-debug=0"),
        &file,
    )?;
    assert!(c.debug);
    Ok(())
}

#[test]
fn load_reads_files_and_reports_them() -> anyhow::Result<()> {
    let t = tempfile::tempdir()?;
    let root = t.path().join("root");
    let dropin = root.join("etc/ironic-python-agent.d");
    std::fs::create_dir_all(&dropin)?;
    std::fs::write(
        dropin.join("ironic-tls.conf"),
        "[DEFAULT]\ncafile = /etc/ironic-python-agent/ironic.crt\nunknown_thing = 1\n",
    )?;
    let cmdline = t.path().join("cmdline");
    std::fs::write(&cmdline, "ipa-api-url=http://k:1 ipa-lookup-timeout=5\n")?;
    let (cmd_s, root_s) = (cmdline.display().to_string(), root.display().to_string());
    let mut early = EarlyLog::default();
    let c = Config::load(
        &flags(&["--cmdline", &cmd_s, "--etc-root", &root_s]),
        &mut early,
    )?;
    assert_eq!(
        c.cafile.as_deref(),
        Some(Path::new("/etc/ironic-python-agent/ironic.crt"))
    );
    assert_eq!(c.api_urls, vec!["http://k:1"]);
    assert_eq!(c.sources.len(), 2, "{:?}", c.sources);
    let shown: Vec<&str> = early.lines().iter().map(|(_, l)| l.as_str()).collect();
    assert!(
        shown.iter().any(|l| l.contains("unknown_thing is not an")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|l| l.contains("configuration read from") && l.contains("ironic-tls.conf")),
        "{shown:?}"
    );

    // An explicit directory replaces the drop-in one; a malformed file is FILE:LINE.
    let dir = t.path().join("conf.d");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("10-bad.conf"),
        "[DEFAULT]\nlisten_port = 9998\nnot an assignment\n",
    )?;
    let dir_s = dir.display().to_string();
    let e = Config::load(
        &flags(&[
            "--cmdline",
            &cmd_s,
            "--etc-root",
            &root_s,
            "--config-dir",
            &dir_s,
        ]),
        &mut EarlyLog::default(),
    )
    .err()
    .map(|e| format!("{e:#}"))
    .unwrap_or_default();
    assert!(
        e.contains(&format!("{}:3: ", dir.join("10-bad.conf").display())),
        "{e}"
    );
    Ok(())
}

#[test]
fn no_urls_means_no_inspection() -> anyhow::Result<()> {
    let c = Config::from_parts(&flags(&[]), KernelParams::parse(""))?;
    assert!(c.api_urls.is_empty());
    assert!(c.inspection_urls().is_empty());
    Ok(())
}
