//! The `firmware-manager` example plug-in, built by cargo and run through the real plug-in
//! discovery, in a chain with the generic manager over a fake root, downloading firmware from
//! an HTTP server on 127.0.0.1.
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use common::{args, ctx};
use hardware_managers::generic::{GenericConfig, GenericHardwareManager};
use hardware_managers::plugin::{self, PluginConfig};
use hardware_managers::{Chain, HardwareError, HardwareManager, StepKind};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

mod common;

/// Builds the example (a no-op when `cargo test` already did) and returns its path.
fn example_binary() -> anyhow::Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // `cargo test` gives us this package's variables; ring's build script tracks them, so left
    // in place they would make the nested build redo ring and everything above it.
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_PKG_") || key.starts_with("CARGO_MANIFEST_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(["build", "--quiet", "--message-format=json"])
        .args(["-p", "hardware-managers", "--example", "firmware-manager"])
        .current_dir(workspace)
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "building the example failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "firmware-manager"
            && let Some(exe) = msg["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo did not report the firmware-manager executable")
}

/// Serves `routes` (path → body) over HTTP/1.1 on 127.0.0.1; other paths are 404.
fn serve(routes: Vec<(&'static str, Vec<u8>)>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(&conn);
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    Ok(base)
}

fn write_exec(path: &Path, text: &str) -> anyhow::Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything one test run needs, in one temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    chain: Chain,
    base_url: String,
    firmware: Vec<u8>,
}

impl Setup {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

fn setup() -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();

    // A fake root with DMI data, for the generic manager and the plug-in alike.
    let dmi = d.join("root/sys/class/dmi/id");
    fs::create_dir_all(&dmi)?;
    for (name, value) in [
        ("product_name", "PowerBox 9000"),
        ("product_serial", "SN-1234"),
        ("sys_vendor", "Example Corp"),
        ("bios_vendor", "Example BIOS Inc."),
        ("bios_version", "DMI-0.9"),
        ("bios_date", "01/02/2025"),
    ] {
        fs::write(dmi.join(name), format!("{value}\n"))?;
    }
    fs::create_dir_all(d.join("root/proc/sys/kernel"))?;
    fs::write(
        d.join("root/proc/cpuinfo"),
        "processor\t: 0\nmodel name\t: Generic CPU\n",
    )?;
    fs::write(d.join("root/proc/meminfo"), "MemTotal: 1024 kB\n")?;

    // The vendor's tools: the flasher records its runs and installs the version the firmware
    // file carries on its first line; version_command prints it.
    let state = d.join("state");
    fs::create_dir_all(&state)?;
    fs::create_dir_all(d.join("downloads"))?;
    fs::write(state.join("version-bios"), "1.0.0\n")?;
    fs::write(state.join("version-bmc"), "7.1\n")?;
    write_exec(
        &d.join("flasher"),
        &format!(
            "#!/bin/sh\n# flasher COMPONENT FILE\necho \"$1 $2\" >> {state}/flasher.log\n\
             echo 'flashing...'\nhead -n 1 \"$2\" > {state}/version-$1\n",
            state = state.display()
        ),
    )?;
    let config = json!({
        "flasher": [d.join("flasher"), "{component}", "{file}"],
        "version_command": ["cat", format!("{}/version-{{component}}", state.display())],
        "download_dir": d.join("downloads"),
        "dmi_dir": dmi,
        "sys_vendors": ["example corp"],
    });
    fs::write(
        d.join("firmware-manager.json"),
        serde_json::to_vec_pretty(&config)?,
    )?;

    // The plug-in directory holds a wrapper that points the example at this configuration.
    let plugins = d.join("hardware-managers.d");
    fs::create_dir_all(&plugins)?;
    write_exec(
        &plugins.join("50-firmware-manager"),
        &format!(
            "#!/bin/sh\nFIRMWARE_MANAGER_CONFIG={} exec {}\n",
            d.join("firmware-manager.json").display(),
            example_binary()?.display()
        ),
    )?;

    let mut firmware = b"2.0.0\n".to_vec();
    firmware.extend((0..200_000u32).map(|i| (i % 251) as u8));
    let base_url = serve(vec![("/fw/bios.bin", firmware.clone())])?;

    let config = PluginConfig {
        query_timeout: Duration::from_secs(30),
        step_timeout: Duration::from_secs(60),
        ..PluginConfig::default()
    };
    let chain = common::chain(&plugins, config, &d.join("root"))?;
    Ok(Setup {
        dir,
        chain,
        base_url,
        firmware,
    })
}

#[test]
fn firmware_manager_example_plugin() -> anyhow::Result<()> {
    let s = setup()?;
    let chain = &s.chain;

    // Discovered at level 3, ahead of the generic manager.
    let order: Vec<(String, i64)> = chain
        .managers()
        .map(|(m, level)| (m.class_name(), level.0))
        .collect();
    assert_eq!(
        order,
        [
            ("FirmwareHardwareManager".to_string(), 3),
            ("GenericHardwareManager".to_string(), 1)
        ]
    );
    assert_eq!(
        chain.versions().get("firmware_manager").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );

    // update_firmware is listed under the plug-in's class name for cleaning and servicing.
    for kind in [StepKind::Clean, StepKind::Service] {
        let steps = chain.steps(kind, &ctx(kind))?;
        let mine = &steps["FirmwareHardwareManager"];
        assert_eq!(mine.len(), 1, "{kind:?}: {mine:?}");
        let step = &mine[0];
        assert_eq!(
            (
                step.step.as_str(),
                step.priority,
                step.interface.as_str(),
                step.reboot_requested,
                step.abortable
            ),
            ("update_firmware", 0, "management", true, Some(false))
        );
        let info = step.argsinfo.as_ref().unwrap();
        assert!(info["url"].required && info["checksum"].required);
        assert!(!info["component"].required);
    }
    let deploy = chain.steps(StepKind::Deploy, &ctx(StepKind::Deploy))?;
    assert!(
        deploy
            .get("FirmwareHardwareManager")
            .is_none_or(|s| s.is_empty())
    );

    // The plug-in's get_system_vendor_info wins over the generic manager's: the same DMI
    // fields, but the firmware version from the vendor tool.
    let generic = GenericHardwareManager::new(GenericConfig {
        root: s.path("root"),
        ..GenericConfig::default()
    })
    .get_system_vendor_info()?;
    assert_eq!(generic.firmware.version, "DMI-0.9");
    let vendor = chain.dispatch("get_system_vendor_info", |m| m.get_system_vendor_info())?;
    assert_eq!(vendor.firmware.version, "1.0.0");
    assert_eq!(
        (
            &vendor.manufacturer,
            &vendor.product_name,
            &vendor.serial_number,
            &vendor.firmware.vendor,
            &vendor.firmware.build_date
        ),
        (
            &generic.manufacturer,
            &generic.product_name,
            &generic.serial_number,
            &generic.firmware.vendor,
            &generic.firmware.build_date
        )
    );
    assert_eq!(generic.manufacturer, "Example Corp");
    // Everything else is the generic manager's.
    assert_eq!(
        chain.dispatch("get_cpus", |m| m.get_cpus())?.model_name,
        "Generic CPU"
    );

    let url = format!("{}/fw/bios.bin", s.base_url);
    let sha256 = hex(&Sha256::digest(&s.firmware));
    let flasher_log = s.path("state/flasher.log");

    // A wrong checksum: refused, the flasher never ran, nothing left behind.
    let wrong = format!("sha256:{}", "0".repeat(64));
    match chain.execute_step(
        "update_firmware",
        &ctx(StepKind::Clean),
        &args(json!({"url": url, "checksum": wrong})),
    ) {
        Err(HardwareError::Ipa(e)) => {
            let (kind, message) = (e.name().to_string(), e.details().to_string());
            assert_eq!(kind, "FirmwareChecksumError");
            assert!(message.contains("checksum mismatch"), "{message}");
            assert!(message.contains(&sha256), "{message}");
            assert!(message.contains("flasher was not run"), "{message}");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert!(!flasher_log.exists(), "the flasher ran");
    assert_eq!(fs::read_dir(s.path("downloads"))?.count(), 0);

    // Bad arguments and a missing file.
    match chain.execute_step(
        "update_firmware",
        &ctx(StepKind::Clean),
        &args(json!({"url": url})),
    ) {
        Err(HardwareError::Ipa(e)) => {
            let (kind, message) = (e.name().to_string(), e.details().to_string());
            assert_eq!(kind, "InvalidCommandParamsError");
            assert!(message.contains("checksum"), "{message}");
        }
        other => panic!("expected invalid args, got {other:?}"),
    }
    match chain.execute_step(
        "update_firmware",
        &ctx(StepKind::Clean),
        &args(json!({"url": url, "checksum": "md5:abc"})),
    ) {
        Err(HardwareError::Ipa(e)) => assert_eq!(e.name(), "InvalidCommandParamsError"),
        other => panic!("expected invalid args, got {other:?}"),
    }
    match chain.execute_step(
        "update_firmware",
        &ctx(StepKind::Clean),
        &args(json!({"url": format!("{}/missing.bin", s.base_url), "checksum": format!("sha256:{sha256}")})),
    ) {
        Err(HardwareError::Ipa(e)) => {
            let (kind, message) = (e.name().to_string(), e.details().to_string());
            assert_eq!(kind, "FirmwareDownloadError");
            assert!(message.contains("404"), "{message}");
        }
        other => panic!("expected a download error, got {other:?}"),
    }
    assert!(!flasher_log.exists());

    // The right checksum: flashed, versions before and after reported.
    let result = chain.execute_step(
        "update_firmware",
        &ctx(StepKind::Clean),
        &args(json!({"url": url, "checksum": format!("sha256:{}", sha256.to_uppercase())})),
    )?;
    assert_eq!(
        result,
        json!({
            "component": "bios",
            "version_before": "1.0.0",
            "version_after": "2.0.0",
            "sha256": sha256,
        })
    );
    let log = fs::read_to_string(&flasher_log)?;
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.starts_with("bios "), "{log}");
    assert_eq!(
        fs::read_dir(s.path("downloads"))?.count(),
        0,
        "file removed"
    );
    // The inventory now shows the new version.
    assert_eq!(
        chain
            .dispatch("get_system_vendor_info", |m| m.get_system_vendor_info())?
            .firmware
            .version,
        "2.0.0"
    );

    // sha512 and another component, as a service step.
    let sha512 = hex(&Sha512::digest(&s.firmware));
    let result = chain.execute_step(
        "update_firmware",
        &ctx(StepKind::Service),
        &args(json!({"url": url, "checksum": format!("sha512:{sha512}"), "component": "bmc"})),
    )?;
    assert_eq!(result["component"], "bmc");
    assert_eq!(
        (&result["version_before"], &result["version_after"]),
        (&json!("7.1"), &json!("2.0.0"))
    );
    assert_eq!(result["sha256"], json!(sha256));
    Ok(())
}

#[test]
fn unconfigured_plugin_opts_out() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    fs::create_dir_all(&plugins)?;
    write_exec(
        &plugins.join("firmware-manager"),
        &format!(
            "#!/bin/sh\nFIRMWARE_MANAGER_CONFIG={} exec {}\n",
            dir.path().join("absent.json").display(),
            example_binary()?.display()
        ),
    )?;
    let found = plugin::discover_with(&plugins, PluginConfig::default())?;
    assert!(found.is_empty(), "support 0 without a configuration");
    Ok(())
}
