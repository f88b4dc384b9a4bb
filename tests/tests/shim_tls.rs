//! End-to-end: the conductor shim serving its Ironic API over HTTPS (`serve --tls-cert
//! --tls-key [--tls-client-ca]`, certificates from `conductor-shim pki`), and the real agent
//! trusting it through `--cafile`, or refusing it without.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::{Shim, dii, free_port, shim_pki, start_agent, wait_for};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const T: Duration = Duration::from_secs(60);

/// Agent flags: its API on `127.0.0.1:port` (auto-TLS), advertised as 127.0.0.1.
fn agent_flags(port: u16) -> Vec<String> {
    vec![
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--advertise-host".into(),
        "127.0.0.1".into(),
    ]
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The shim's log without the terminal colours of its `tracing` output.
fn shim_log(shim: &Shim) -> String {
    let raw = shim.proc.output();
    let mut plain = String::with_capacity(raw.len());
    let mut rest = raw.as_str();
    while let Some(start) = rest.find('\x1b') {
        plain.push_str(&rest[..start]);
        rest = &rest[start..];
        // `ESC [ ... m`
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    plain.push_str(rest);
    plain
}

/// The lines of the shim's request log containing `path` (e.g. `path=/v1/lookup`) that
/// answered `status`.
fn requests(shim: &Shim, path: &str, status: u16) -> usize {
    shim_log(shim)
        .lines()
        .filter(|l| l.contains(path) && l.contains(&format!("status={status}")))
        .count()
}

/// A client trusting `ca`, presenting `client.crt`/`client.key` of the directory `client`.
fn https_client(ca: &Path, client: Option<&Path>) -> anyhow::Result<reqwest::blocking::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let config = match client {
        Some(dir) => {
            let chain = CertificateDer::pem_file_iter(dir.join("client.crt"))?
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(dir.join("client.key"))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_backend_preconfigured(config)
        .build()?)
}

/// The whole cause chain of `e` on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(e), |c| c.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[test]
fn agent_with_the_ca_looks_up_and_heartbeats_over_https() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = shim_pki(dir.path(), false)?;
    let shim = Shim::start_https(dir.path(), &pki, &["--heartbeat-timeout", "4"])?;
    assert!(shim.url.starts_with("https://127.0.0.1:"), "{}", shim.url);
    assert!(
        shim.proc
            .output()
            .contains(&format!("conductor-shim listening on {}", shim.url))
    );
    assert!(
        shim.lookup_cmdline()
            .contains(&format!("ipa-api-url={}", shim.url))
    );
    shim.create_host_node("n1", "manageable")?;
    let port = free_port();
    let ca = pki.join("ca.crt").display().to_string();
    let mut flags = agent_flags(port);
    flags.extend(["--api-url".into(), shim.url.clone(), "--cafile".into(), ca]);
    let agent = start_agent(
        dir.path(),
        "agent",
        "ipa-lookup-timeout=30",
        &as_strs(&flags),
    )?;
    let n = shim.wait_first_heartbeat("n1", T)?;
    // Auto-TLS: the agent's own API is https too, its certificate stored by the shim.
    assert_eq!(
        dii(&n, "agent_url").and_then(|u| u.as_str()),
        Some(format!("https://127.0.0.1:{port}").as_str()),
        "{n}"
    );
    assert!(dii(&n, "agent_verify_ca").is_some(), "{n}");
    assert_eq!(requests(&shim, "path=/v1/lookup", 200), 1);
    // It goes on heartbeating (timeout 4 s: every 1.2–2 s).
    wait_for(T, "a second heartbeat", || {
        (requests(&shim, "path=/v1/heartbeat/", 202) >= 2).then_some(())
    })?;
    assert!(
        !agent
            .output()
            .contains("TLS certificate verification failed"),
        "{}",
        agent.output()
    );
    Ok(())
}

#[test]
fn agent_without_the_ca_refuses_the_certificate_and_never_looks_up() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = shim_pki(dir.path(), false)?;
    let shim = Shim::start_https(dir.path(), &pki, &[])?;
    shim.create_host_node("n1", "manageable")?;
    let port = free_port();
    // The https URL of the kernel command line, and no `--cafile`.
    let agent = start_agent(
        dir.path(),
        "agent",
        &shim.lookup_cmdline(),
        &as_strs(&agent_flags(port)),
    )?;
    let line = wait_for(T, "the agent's certificate error", || {
        agent
            .output()
            .lines()
            .find(|l| l.contains("TLS certificate verification failed (UnknownIssuer)"))
            .map(str::to_string)
    })?;
    assert!(
        line.contains("--cafile") && line.contains("ipa-insecure"),
        "{line}"
    );
    // The shim saw the handshake fail, and no request.
    wait_for(T, "the shim's handshake failure", || {
        shim.proc
            .output()
            .contains("TLS handshake failed")
            .then_some(())
    })?;
    let log = shim_log(&shim);
    assert!(!log.contains("/v1/lookup"), "{log}");
    assert!(!log.contains("status="), "{log}");
    assert!(dii(&shim.node("n1")?, "agent_url").is_none());
    Ok(())
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate_of_the_ca() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = shim_pki(dir.path(), true)?;
    let client_ca = pki.join("ca.crt").display().to_string();
    let shim = Shim::start_https(dir.path(), &pki, &["--tls-client-ca", &client_ca])?;
    let root = format!("{}/", shim.url);

    let ca = pki.join("ca.crt");

    let refused = https_client(&ca, None)?
        .get(&root)
        .send()
        .and_then(|r| r.error_for_status().map(drop));
    let err = refused.expect_err("no client certificate, yet the request went through");
    assert!(err.is_connect() || err.is_request(), "{}", chain(&err));
    wait_for(T, "the shim's handshake failure", || {
        shim.proc
            .output()
            .contains("TLS handshake failed")
            .then_some(())
    })?;
    assert_eq!(requests(&shim, "path=/ ", 200), 0);

    // A client certificate of another CA is refused too.
    let stranger = shim_pki(&dir.path().join("other"), true)?;
    let refused = https_client(&ca, Some(&stranger))?.get(&root).send();
    assert!(
        refused.is_err(),
        "a client certificate of another CA was accepted"
    );
    assert_eq!(requests(&shim, "path=/ ", 200), 0);

    let resp = https_client(&ca, Some(&pki))?.get(&root).send()?;
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json()?;
    assert_eq!(body["name"], "OpenStack Ironic API", "{body}");
    // Links name the scheme the client used.
    assert_eq!(
        body["default_version"]["links"][0]["href"],
        format!("{}/v1/", shim.url),
        "{body}"
    );
    assert_eq!(requests(&shim, "path=/ ", 200), 1);
    Ok(())
}

/// IPA's `certfile`/`keyfile`/`cafile` from a configuration file (as Ironic's virtual-media
/// `ironic-tls.conf` gives `cafile`): the agent presents its client certificate to an Ironic
/// API that requires one, and looks up; without `certfile`/`keyfile` the API refuses it.
#[test]
fn agent_presents_its_client_certificate_from_a_config_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = shim_pki(dir.path(), true)?;
    let client_ca = pki.join("ca.crt").display().to_string();
    let shim = Shim::start_https(
        dir.path(),
        &pki,
        &["--heartbeat-timeout", "4", "--tls-client-ca", &client_ca],
    )?;
    shim.create_host_node("n1", "manageable")?;
    let conf = |name: &str, with_cert: bool| -> anyhow::Result<String> {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d)?;
        let mut text = format!(
            "[DEFAULT]\napi_url = {}\ncafile = {}\n",
            shim.url,
            pki.join("ca.crt").display()
        );
        if with_cert {
            text.push_str(&format!(
                "certfile = {}\nkeyfile = {}\n",
                pki.join("client.crt").display(),
                pki.join("client.key").display()
            ));
        }
        std::fs::write(d.join("ironic-tls.conf"), text)?;
        Ok(d.display().to_string())
    };

    // Without a client certificate: the handshake is refused, no lookup.
    let refused_dir = conf("refused.d", false)?;
    let mut flags = agent_flags(free_port());
    flags.extend(["--config-dir".into(), refused_dir]);
    let refused = start_agent(
        dir.path(),
        "refused",
        "ipa-lookup-timeout=30",
        &as_strs(&flags),
    )?;
    wait_for(T, "the shim refusing a client without certificate", || {
        shim_log(&shim)
            .lines()
            .any(|l| l.contains("TLS handshake failed"))
            .then_some(())
    })?;
    assert_eq!(requests(&shim, "path=/v1/lookup", 200), 0);
    drop(refused);

    // With certfile/keyfile: lookup and heartbeats.
    let accepted_dir = conf("accepted.d", true)?;
    let port = free_port();
    let mut flags = agent_flags(port);
    flags.extend(["--config-dir".into(), accepted_dir]);
    let agent = start_agent(
        dir.path(),
        "agent",
        "ipa-lookup-timeout=30",
        &as_strs(&flags),
    )?;
    let n = shim.wait_first_heartbeat("n1", T)?;
    assert_eq!(
        dii(&n, "agent_url").and_then(|u| u.as_str()),
        Some(format!("https://127.0.0.1:{port}").as_str()),
        "{n}\n{}",
        agent.output()
    );
    assert_eq!(requests(&shim, "path=/v1/lookup", 200), 1);
    Ok(())
}
