//! End-to-end: IPA's configuration files given to the real agent with `--config-dir`, against
//! the real conductor shim on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use e2e_tests::{Shim, dii, free_port, start_agent, wait_for};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

#[test]
fn config_dir_values_are_used_and_unknown_options_logged() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The shim supports auto-TLS but does not require it: `enable_auto_tls = false` in the
    // file must make the agent call back over plain HTTP.
    let shim = Shim::start(
        dir.path(),
        &["--no-require-tls", "--heartbeat-timeout", "4"],
    )?;
    shim.create_host_node("cf1", "wait call-back")?;
    let ca = dir.path().join("ironic.crt");
    let cert = ironic_agent::tls::generate_cert(IpAddr::V4(Ipv4Addr::LOCALHOST), "ca")?;
    std::fs::write(&ca, &cert.pem)?;
    let conf_dir = dir.path().join("ironic-python-agent.d");
    std::fs::create_dir_all(&conf_dir)?;
    // Read in name order: the second file overrides the first one's api_url.
    std::fs::write(
        conf_dir.join("00-first.conf"),
        "[DEFAULT]\napi_url = http://127.0.0.1:1\n",
    )?;
    std::fs::write(
        conf_dir.join("ironic-tls.conf"),
        format!(
            "# as Ironic's virtual-media ISO, plus more\n[DEFAULT]\napi_url = {}\n\
             cafile = {}\nenable_auto_tls = false\nno_such_option = 1\n\n[mdns]\nuse_mdns = true\n",
            shim.url,
            ca.display()
        ),
    )?;
    std::fs::write(conf_dir.join("ignored.txt"), "not a conf file")?;
    let port = free_port();
    let conf_dir_s = conf_dir.display().to_string();
    // The kernel's URL is wrong: the file's value must win over it.
    let agent = start_agent(
        dir.path(),
        "cfagent",
        "ipa-api-url=http://127.0.0.1:2 ipa-lookup-timeout=30",
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise-host",
            "127.0.0.1",
            "--config-dir",
            &conf_dir_s,
        ],
    )?;
    let n = shim.wait_first_heartbeat("cf1", T)?;
    assert_eq!(
        dii(&n, "agent_url"),
        Some(&json!(format!("http://127.0.0.1:{port}"))),
        "enable_auto_tls = false: plain HTTP callback"
    );
    let log = agent.output();
    let tls_conf = conf_dir.join("ironic-tls.conf");
    for want in [
        format!(
            "{}:6: [DEFAULT] no_such_option is not an ironic-python-agent option; ignored",
            tls_conf.display()
        ),
        format!(
            "{}:4: [DEFAULT] cafile = {}",
            tls_conf.display(),
            ca.display()
        ),
        format!("configuration read from {}", tls_conf.display()),
        format!(
            "configuration read from {}",
            conf_dir.join("00-first.conf").display()
        ),
    ] {
        assert!(
            log.contains(&want),
            "missing `{want}` in the agent log:\n{log}"
        );
    }
    assert!(!log.contains("ignored.txt"), "{log}");
    Ok(())
}

#[test]
fn cafile_from_a_file_reaches_the_conductor_client() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let shim = Shim::start(dir.path(), &["--no-require-tls"])?;
    let bad_ca = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad_ca, "not a certificate")?;
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\napi_url = {}\ncafile = {}\n",
            shim.url,
            bad_ca.display()
        ),
    )?;
    let conf_s = conf.display().to_string();
    let agent = start_agent(
        dir.path(),
        "badca",
        "ipa-lookup-timeout=5",
        &[
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--config-file",
            &conf_s,
        ],
    )?;
    wait_for(T, "the agent to refuse the CA file", || {
        let log = agent.output();
        (log.contains("CA file") && log.contains(&bad_ca.display().to_string())).then_some(())
    })?;
    Ok(())
}

#[test]
fn malformed_file_exits_2_naming_file_and_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let conf_dir = dir.path().join("conf.d");
    std::fs::create_dir_all(&conf_dir)?;
    let bad = conf_dir.join("broken.conf");
    std::fs::write(
        &bad,
        "[DEFAULT]\n# fine so far\nthis line has no separator\n",
    )?;
    let conf_dir_s = conf_dir.display().to_string();
    let mut agent = start_agent(
        dir.path(),
        "malformed",
        "",
        &[
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--config-dir",
            &conf_dir_s,
        ],
    )?;
    assert_eq!(agent.wait_exit(T)?, Some(2));
    let log = agent.output();
    assert!(
        log.contains(&format!("{}:3: ", bad.display())) && log.contains("configuration error"),
        "{log}"
    );
    // A missing --config-file is an error too, as in oslo.
    let mut agent = start_agent(
        dir.path(),
        "missing",
        "",
        &["--config-file", "/nonexistent/ironic-python-agent.conf"],
    )?;
    assert_eq!(agent.wait_exit(T)?, Some(2));
    assert!(
        agent
            .output()
            .contains("/nonexistent/ironic-python-agent.conf not found")
    );
    Ok(())
}
