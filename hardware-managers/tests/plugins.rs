//! Executable plug-ins (real POSIX sh scripts) in a chain with the generic manager.
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{args, ctx};
use hardware_managers::plugin::{self, PluginConfig};
use hardware_managers::{Chain, HardwareError, StepKind};
use serde_json::{Map, json};

mod common;

/// The service-provider plug-in (support 3).
const VENDOR_THREE: &str = r#"#!/bin/sh
req=$(cat)
case "$IRONIC_AGENT_METHOD" in
support) echo '{"result": 3}' ;;
version) echo '{"result": {"name": "vendor_three", "version": "3.1", "class_name": "VendorThreeManager"}}' ;;
initialize) echo '{"result": null}' ;;
get_cpus)
    echo '{"result": {"model_name": "Vendor3 CPU", "frequency": "", "count": 3,
           "architecture": "x86_64", "flags": ["v3"]}}' ;;
steps)
    kind=$(printf '%s' "$req" | sed -n 's/.*"kind":"\([a-z]*\)".*/\1/p')
    printf '{"result": [
      {"step": "shared_step", "priority": 30, "interface": "deploy", "abortable": true},
      {"step": "echo_step", "priority": 0, "interface": "deploy",
       "argsinfo": {"message": {"description": "%s", "required": true}}}]}\n' "$kind" ;;
echo_step)
    msg=$(printf '%s' "$req" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p')
    uuid=$(printf '%s' "$req" | sed -n 's/.*"uuid":"\([^"]*\)".*/\1/p')
    printf '{"result": {"echo": "%s", "node": "%s"}}\n' "$msg" "$uuid" ;;
fail_step) echo '{"error": {"type": "BlockDeviceEraseError", "message": "disk on fire"}}' ;;
crash_step) echo 'vendor tool: segmentation fault' >&2; exit 1 ;;
garbage_step) echo 'this is not json' ;;
hang_step) echo 'hanging now' >&2; sleep 60 ;;
*) echo '{"error": {"type": "IncompatibleHardwareMethodError", "message": "not mine"}}' ;;
esac
"#;

/// The mainline plug-in (support 2); its class name is its file name.
const MAINLINE_TWO: &str = r#"#!/bin/sh
cat >/dev/null
case "$IRONIC_AGENT_METHOD" in
support) echo '{"result": 2}' ;;
version) echo '{"result": {"name": "mainline_two", "version": "2.0"}}' ;;
get_cpus)
    echo '{"result": {"model_name": "Mainline2 CPU", "frequency": "", "count": 2,
           "architecture": "x86_64", "flags": []}}' ;;
get_memory) echo '{"result": {"total": 2048, "physical_mb": 2}}' ;;
steps)
    echo '{"result": [{"step": "shared_step", "priority": 99, "interface": "deploy"},
                      {"step": "only_two_step", "priority": 0, "interface": "raid"}]}' ;;
shared_step) echo '{"result": "mainline ran"}' ;;
collect_system_logs) echo '{"result": [{"name": "vendor.log", "content": "aGVsbG8="}]}' ;;
*) echo '{"error": {"type": "IncompatibleHardwareMethodError", "message": "not mine"}}' ;;
esac
"#;

fn write(dir: &Path, name: &str, text: &str, mode: u32) {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A plug-in directory with the two good plug-ins and some that must be ignored or skipped.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "10-vendor", VENDOR_THREE, 0o755);
    write(d, "20-mainline", MAINLINE_TWO, 0o755);
    write(d, "30-not-executable", VENDOR_THREE, 0o644);
    fs::create_dir(d.join("40-subdir")).unwrap();
    write(
        d,
        "50-broken-support",
        "#!/bin/sh\necho 'no BMC driver' >&2\nexit 1\n",
        0o755,
    );
    write(
        d,
        "60-unsupported",
        "#!/bin/sh\ncat >/dev/null\necho '{\"result\": 0}'\n",
        0o755,
    );
    write(
        d,
        "70-bad-version",
        "#!/bin/sh\ncase \"$IRONIC_AGENT_METHOD\" in support) echo '{\"result\": 5}';; \
         *) echo '{\"result\": {\"name\": 1}}';; esac\n",
        0o755,
    );
    dir
}

/// A fake root for the generic manager: just enough for CPU, memory and host name.
fn fake_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("proc/sys/kernel")).unwrap();
    fs::write(
        r.join("proc/cpuinfo"),
        "processor\t: 0\nmodel name\t: Generic CPU\n",
    )
    .unwrap();
    fs::write(r.join("proc/meminfo"), "MemTotal: 1024 kB\n").unwrap();
    fs::write(r.join("proc/sys/kernel/hostname"), "fake-host\n").unwrap();
    root
}

fn test_config() -> PluginConfig {
    PluginConfig {
        query_timeout: Duration::from_secs(20),
        step_timeout: Duration::from_millis(500),
        ..PluginConfig::default()
    }
}

/// The plug-ins of `plugins` ahead of the generic manager over `root`.
fn chain(plugins: &Path, root: &Path) -> Chain {
    common::chain(plugins, test_config(), root).unwrap()
}

#[test]
fn chain_of_plugins_and_generic() {
    let (plugins, root) = (plugin_dir(), fake_root());
    let chain = chain(plugins.path(), root.path());

    // Order by support; misbehaving, unsupported and non-executable entries are gone.
    let order: Vec<(String, i64)> = chain
        .managers()
        .map(|(m, s)| (m.class_name(), s.0))
        .collect();
    assert_eq!(
        order,
        vec![
            ("VendorThreeManager".to_string(), 3),
            ("20-mainline".to_string(), 2),
            ("GenericHardwareManager".to_string(), 1)
        ]
    );

    // Both plug-ins answer get_cpus: the level-3 one wins.
    assert_eq!(
        chain
            .dispatch("get_cpus", |m| m.get_cpus())
            .unwrap()
            .model_name,
        "Vendor3 CPU"
    );
    // Level 3 says incompatible for get_memory: level 2 answers.
    assert_eq!(
        chain
            .dispatch("get_memory", |m| m.get_memory())
            .unwrap()
            .total,
        2048
    );
    // Both plug-ins say incompatible for get_hostname: the generic manager answers.
    assert_eq!(
        chain
            .dispatch("get_hostname", |m| m.get_hostname())
            .unwrap(),
        "fake-host"
    );

    // Versions of everyone.
    let versions = chain.versions();
    assert_eq!(
        versions.get("vendor_three").map(String::as_str),
        Some("3.1")
    );
    assert_eq!(
        versions.get("mainline_two").map(String::as_str),
        Some("2.0")
    );
    assert_eq!(
        versions.get("generic_hardware_manager").map(String::as_str),
        Some("1.2")
    );
    assert_eq!(versions.len(), 3);

    // Logs from the plug-in that has some, base64-decoded.
    let logs = chain
        .dispatch_all("collect_system_logs", |m| m.collect_system_logs())
        .unwrap();
    let vendor_logs = logs
        .iter()
        .find(|(class, _)| class == "20-mainline")
        .unwrap();
    assert_eq!(
        vendor_logs.1,
        vec![("vendor.log".to_string(), b"hello".to_vec())]
    );
}

#[test]
fn steps_are_deduplicated_across_plugins() {
    let (plugins, root) = (plugin_dir(), fake_root());
    let chain = chain(plugins.path(), root.path());
    let steps = chain.steps(StepKind::Clean, &ctx(StepKind::Clean)).unwrap();
    let names =
        |class: &str| -> Vec<String> { steps[class].iter().map(|s| s.step.clone()).collect() };
    // shared_step: level 3 wins over level 2's higher priority.
    assert_eq!(
        names("VendorThreeManager"),
        vec!["shared_step", "echo_step"]
    );
    assert_eq!(names("20-mainline"), vec!["only_two_step"]);
    assert!(steps["GenericHardwareManager"].is_empty());
    let shared = &steps["VendorThreeManager"][0];
    assert_eq!((shared.priority, shared.abortable), (30, Some(true)));
    // The plug-in saw the kind it was asked for.
    let echo = &steps["VendorThreeManager"][1];
    assert_eq!(
        echo.argsinfo.as_ref().unwrap()["message"].description,
        "clean"
    );
}

#[test]
fn execute_step_results_and_errors() {
    let (plugins, root) = (plugin_dir(), fake_root());
    let chain = chain(plugins.path(), root.path());
    let ctx = ctx(StepKind::Clean);

    let result = chain
        .execute_step("echo_step", &ctx, &args(json!({"message": "hi there"})))
        .unwrap();
    assert_eq!(
        result,
        json!({"echo": "hi there", "node": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"})
    );

    // Level 3 lists shared_step but does not run it (answers incompatible): level 2 does.
    let result = chain
        .execute_step("shared_step", &ctx, &Map::new())
        .unwrap();
    assert_eq!(result, json!("mainline ran"));

    match chain.execute_step("fail_step", &ctx, &Map::new()) {
        Err(HardwareError::Ipa(e)) => {
            let (kind, message) = (e.name().to_string(), e.details().to_string());
            assert_eq!(
                (kind.as_str(), message.as_str()),
                ("BlockDeviceEraseError", "disk on fire")
            );
        }
        other => panic!("expected an IPA error, got {other:?}"),
    }

    match chain.execute_step("crash_step", &ctx, &Map::new()) {
        Err(e @ HardwareError::Plugin { .. }) => {
            let text = e.to_string();
            assert!(text.contains("vendor tool: segmentation fault"), "{text}");
            assert!(text.contains("exit status: 1"), "{text}");
            assert!(text.contains("10-vendor"), "{text}");
        }
        other => panic!("expected Plugin, got {other:?}"),
    }

    match chain.execute_step("garbage_step", &ctx, &Map::new()) {
        Err(e @ HardwareError::Plugin { .. }) => assert!(e.to_string().contains("not JSON"), "{e}"),
        other => panic!("expected Plugin, got {other:?}"),
    }

    let start = Instant::now();
    match chain.execute_step("hang_step", &ctx, &Map::new()) {
        Err(e @ HardwareError::Plugin { .. }) => {
            let text = e.to_string();
            assert!(text.contains("timed out"), "{text}");
            assert!(text.contains("hanging now"), "{text}");
        }
        other => panic!("expected Plugin, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );

    // Nobody implements it.
    assert!(matches!(
        chain.execute_step("no_such_step", &ctx, &Map::new()),
        Err(HardwareError::MethodNotFound(_))
    ));
    // Reserved protocol methods are not steps.
    assert!(matches!(
        chain.execute_step("support", &ctx, &Map::new()),
        Err(HardwareError::MethodNotFound(_))
    ));
}

#[test]
fn discovery_edge_cases() {
    // A missing directory means no plug-ins.
    let missing = plugin::discover(Path::new("/nonexistent/ironic-agent/plugins")).unwrap();
    assert!(missing.is_empty());

    // A plug-in hanging on `support` is killed and skipped.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hangs", "#!/bin/sh\nsleep 60\n", 0o755);
    write(dir.path(), "ok", MAINLINE_TWO, 0o755);
    write(dir.path(), "vendor-a", VENDOR_THREE, 0o755);
    write(dir.path(), "vendor-b", VENDOR_THREE, 0o755);
    let config = PluginConfig {
        query_timeout: Duration::from_millis(500),
        ..test_config()
    };
    let start = Instant::now();
    let found = plugin::discover_with(dir.path(), config).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    let classes: Vec<String> = found.iter().map(|m| m.class_name()).collect();
    // Class names default to file names; a repeated class name is skipped.
    assert_eq!(classes, vec!["ok", "VendorThreeManager"]);
}

/// The `sh` block of the README, so the documented example keeps working.
fn readme_example() -> String {
    let readme = include_str!("../README.md");
    let start = readme.find("```sh\n").map(|i| i + "```sh\n".len()).unwrap();
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_string()
}

#[test]
fn readme_example_plugin_works() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "50-example", &readme_example(), 0o755);
    let found = plugin::discover_with(dir.path(), test_config()).unwrap();
    assert_eq!(found.len(), 1);
    let example = &found[0];
    assert_eq!(example.class_name(), "ExampleHardwareManager");
    assert_eq!(example.evaluate_hardware_support().0, 2);
    example.initialize().unwrap();

    let clean = example
        .get_steps(StepKind::Clean, &ctx(StepKind::Clean))
        .unwrap();
    assert_eq!(clean.len(), 1);
    assert_eq!(
        (clean[0].step.as_str(), clean[0].reboot_requested),
        ("update_firmware", true)
    );
    assert!(
        example
            .get_steps(StepKind::Deploy, &ctx(StepKind::Clean))
            .unwrap()
            .is_empty()
    );

    let url = json!({"url": "http://192.0.2.1/fw.bin"});
    let result = example
        .execute_step("update_firmware", &ctx(StepKind::Clean), &args(url))
        .unwrap();
    assert_eq!(result, json!({"flashed": "http://192.0.2.1/fw.bin"}));
    match example.execute_step("update_firmware", &ctx(StepKind::Clean), &Map::new()) {
        Err(HardwareError::Ipa(e)) => assert_eq!(e.name(), "InvalidCommandParamsError"),
        other => panic!("expected an IPA error, got {other:?}"),
    }
    assert!(example.get_cpus().unwrap_err().is_incompatible());
}
