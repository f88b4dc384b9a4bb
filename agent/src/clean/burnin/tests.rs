//! Burn-in tests: step metadata, settings, and real stress-ng / fio runs (fio only on loop
//! devices these tests create).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hardware_managers::{HardwareError, Node, StepContext, StepKind};
use serde_json::{Map, Value, json};

use super::disk::{self, DiskPlan, SmartPolling};
use super::settings::{self, Stressor};
use super::tool::{self, Toolbox};
use super::{execute, steps};
use crate::clean::testing;
use crate::context::AgentContext;
use crate::testutil::LoopDevice;

/// An agent context whose only disks are `disks` (of 16 MiB) and whose allow-list is `allow`.
fn context(dir: &Path, allow: &[&Path], disks: &[&Path]) -> AgentContext {
    let disks = disks
        .iter()
        .map(|d| testing::device(&d.display().to_string(), 16 << 20).unwrap())
        .collect();
    testing::agent(dir, allow, disks).unwrap()
}

fn step_context(driver_info: Value, properties: Value) -> StepContext {
    let node: Node = serde_json::from_value(json!({
        "uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
        "driver_info": driver_info,
        "properties": properties,
    }))
    .unwrap();
    StepContext {
        kind: Some(StepKind::Clean),
        node,
        ports: Vec::new(),
    }
}

fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn node(driver_info: Value) -> Node {
    step_context(driver_info, json!({})).node
}

/// Writes an executable script `name` into `dir`.
fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Step metadata and settings

#[test]
fn steps_with_argsinfo() {
    let names = |kind| -> Vec<String> { steps(kind).into_iter().map(|s| s.step).collect() };
    assert_eq!(
        names(StepKind::Clean),
        ["burnin_cpu", "burnin_disk", "burnin_memory"]
    );
    assert_eq!(names(StepKind::Service), ["burnin_cpu", "burnin_memory"]);
    assert!(names(StepKind::Deploy).is_empty());

    let want_args = [
        ("burnin_cpu", vec!["cpu", "outputfile", "timeout"]),
        (
            "burnin_disk",
            vec!["loops", "outputfile", "runtime", "smart_test"],
        ),
        (
            "burnin_memory",
            vec!["outputfile", "timeout", "vm", "vm_bytes"],
        ),
    ];
    for (step, (name, want)) in steps(StepKind::Clean).iter().zip(want_args) {
        assert_eq!(step.step, name);
        assert_eq!(
            (
                step.interface.as_str(),
                step.priority,
                step.reboot_requested
            ),
            ("deploy", 0, false)
        );
        assert_eq!(step.abortable, Some(true));
        let info = step.argsinfo.as_ref().unwrap();
        assert_eq!(info.keys().map(String::as_str).collect::<Vec<_>>(), want);
        assert!(info.values().all(|a| !a.required), "{name}: all optional");
        assert!(
            info.values()
                .all(|a| a.description.contains("agent_burnin_"))
        );
    }
    // On the wire, as Ironic sees it.
    let cpu = serde_json::to_value(&steps(StepKind::Service)[0]).unwrap();
    assert_eq!(cpu["argsinfo"]["timeout"]["required"], json!(false));
    assert!(
        cpu["argsinfo"]["timeout"]["description"]
            .as_str()
            .unwrap()
            .contains("agent_burnin_cpu_timeout")
    );
}

#[test]
fn settings_from_driver_info_and_args() {
    // IPA's defaults.
    let s = settings::stress("burnin_memory", Stressor::Vm, &node(json!({})), &Map::new()).unwrap();
    assert_eq!(
        (s.workers, s.timeout_s, s.vm_bytes.as_deref(), s.log_file),
        (0, 86_400, Some("98%"), None)
    );
    let f = settings::fio("burnin_disk", &node(json!({})), &Map::new()).unwrap();
    assert_eq!(
        (f.loops, f.runtime_s, f.output_file, f.smart_test),
        (4, 0, None, false)
    );

    // driver_info as Ironic stores CLI input (strings), overridden by step arguments.
    let info = json!({
        "agent_burnin_cpu_cpu": "2",
        "agent_burnin_cpu_timeout": "1h",
        "agent_burnin_cpu_outputfile": "/run/cpu.log",
        "agent_burnin_vm_vm-bytes": "512m",
        "agent_burnin_fio_disk_loops": 2,
        "agent_burnin_fio_disk_smart_test": "True",
    });
    let s = settings::stress(
        "burnin_cpu",
        Stressor::Cpu,
        &node(info.clone()),
        &Map::new(),
    )
    .unwrap();
    assert_eq!((s.workers, s.timeout_s), (2, 3600));
    assert_eq!(s.log_file, Some(PathBuf::from("/run/cpu.log")));
    assert_eq!(s.vm_bytes, None);
    let s = settings::stress(
        "burnin_cpu",
        Stressor::Cpu,
        &node(info.clone()),
        &args(json!({"timeout": 5, "cpu": null})),
    )
    .unwrap();
    assert_eq!((s.workers, s.timeout_s), (2, 5), "null = not given");
    let s = settings::stress(
        "burnin_memory",
        Stressor::Vm,
        &node(info.clone()),
        &Map::new(),
    )
    .unwrap();
    assert_eq!(s.vm_bytes.as_deref(), Some("512m"));
    let f = settings::fio(
        "burnin_disk",
        &node(info),
        &args(json!({"runtime": "2m", "outputfile": "/tmp/fio.json"})),
    )
    .unwrap();
    assert_eq!(
        (f.loops, f.runtime_s, f.smart_test),
        (2, 120, true),
        "{f:?}"
    );
    assert_eq!(f.output_file, Some(PathBuf::from("/tmp/fio.json")));
}

#[test]
fn bad_settings_are_invalid_args() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), &[], &[]);
    let sctx = step_context(
        json!({"agent_burnin_cpu_cpu": "many", "agent_burnin_cpu_timeout": 0}),
        json!({}),
    );
    let err = execute(
        &ctx.devices(),
        "burnin_cpu",
        &sctx,
        &args(json!({"outputfile": 5})),
    )
    .unwrap_err();
    assert!(matches!(err, HardwareError::InvalidArgs(_)), "{err:?}");
    assert_eq!(
        (err.ipa_type(), err.code()),
        ("InvalidCommandParamsError", 400)
    );
    let text = err.to_string();
    for want in [
        "burnin_cpu",
        "driver_info `agent_burnin_cpu_cpu` must be a non-negative integer, got \"many\"",
        "driver_info `agent_burnin_cpu_timeout` must be a positive number of seconds",
        "step argument `outputfile` must be a file path",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }

    let bad = [
        ("burnin_memory", json!({"vm_bytes": "lots"}), "`vm_bytes`"),
        ("burnin_memory", json!({"vm_bytes": "150%"}), "`vm_bytes`"),
        ("burnin_memory", json!({"vm": true}), "`vm`"),
        ("burnin_memory", json!({"timeout": "10x"}), "`timeout`"),
        ("burnin_cpu", json!({"timeout": "10é"}), "`timeout`"),
        ("burnin_cpu", json!({"timeout": "h"}), "`timeout`"),
        ("burnin_cpu", json!({"cpu": 1.5}), "`cpu`"),
        ("burnin_memory", json!({"vm_bytes": "1é"}), "`vm_bytes`"),
        ("burnin_disk", json!({"loops": 0}), "`loops`"),
        ("burnin_disk", json!({"runtime": -1}), "`runtime`"),
        (
            "burnin_disk",
            json!({"smart_test": "maybe"}),
            "`smart_test`",
        ),
        ("burnin_disk", json!({"outputfile": ""}), "`outputfile`"),
    ];
    for (step, a, want) in bad {
        let err = execute(
            &ctx.devices(),
            step,
            &step_context(json!({}), json!({})),
            &args(a.clone()),
        )
        .unwrap_err();
        assert!(
            matches!(&err, HardwareError::InvalidArgs(m) if m.contains(want)),
            "{step} {a}: {err:?}"
        );
    }
    // Not ours.
    assert!(
        execute(&ctx.devices(), "erase_devices", &sctx, &Map::new())
            .unwrap_err()
            .is_incompatible()
    );
}

#[test]
fn command_lines() {
    let s = settings::stress(
        "burnin_memory",
        Stressor::Vm,
        &node(json!({})),
        &args(json!({"vm": 1, "timeout": 3, "outputfile": "/run/vm.log"})),
    )
    .unwrap();
    let line: Vec<String> = super::stress_args(&s)
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        line.join(" "),
        "--vm 1 --timeout 3 --vm-bytes 98% --metrics-brief --log-file /run/vm.log"
    );
    let f = settings::fio(
        "burnin_disk",
        &node(json!({})),
        &args(json!({"runtime": 9})),
    )
    .unwrap();
    let line: Vec<String> = disk::fio_args(&f, &[PathBuf::from("/dev/sda")])
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        line.join(" "),
        "--rw readwrite --bs 4k --direct 1 --ioengine libaio --iodepth 32 --verify crc32c \
         --verify_dump 1 --continue_on_error verify --loops 4 --runtime 9 --time_based \
         --output-format json --name /dev/sda --filename /dev/sda"
    );
}

// ---------------------------------------------------------------------------------------------
// Tools and the runner

#[test]
fn missing_tool_names_the_package() {
    let empty = tempfile::tempdir().unwrap();
    let tools = Toolbox::only(vec![empty.path().to_path_buf()]);
    let s = settings::stress("burnin_cpu", Stressor::Cpu, &node(json!({})), &Map::new()).unwrap();
    let err = super::run_stress(&tools, &s).unwrap_err();
    assert_eq!(err.ipa_type(), "CommandExecutionError");
    assert!(
        err.to_string().contains(
            "stress-ng is not installed in the ramdisk (install the `stress-ng` package)"
        ),
        "{err}"
    );
    let err = tools.find(tool::SMARTCTL).unwrap_err();
    assert!(err.to_string().contains("`smartmontools`"), "{err}");
}

#[test]
fn tool_failure_carries_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "stress-ng",
        "#!/bin/sh\necho 'stress-ng: info:  [1] dispatching hogs: 1 cpu' >&2\n\
         echo 'stress-ng: fail:  [1] cpu: out of bogons' >&2\nexit 2\n",
    );
    let tools = Toolbox::only(vec![dir.path().to_path_buf()]);
    let s = settings::stress("burnin_cpu", Stressor::Cpu, &node(json!({})), &Map::new()).unwrap();
    let err = super::run_stress(&tools, &s).unwrap_err();
    assert_eq!(err.ipa_type(), "CommandExecutionError");
    let text = err.to_string();
    assert!(
        text.starts_with("stress-ng (cpu) failed with error: "),
        "{text}"
    );
    assert!(text.contains("exit status: 2"), "{text}");
    assert!(text.contains("cpu: out of bogons"), "{text}");
}

#[test]
fn deadline_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("worker.pid");
    let tool = script(
        dir.path(),
        "hangs",
        &format!(
            "#!/bin/sh\nsleep 60 &\necho $! > {}\necho 'hog started' >&2\nwait\n",
            pidfile.display()
        ),
    );
    let start = Instant::now();
    let err = tool::run(&tool, &[], None, Duration::from_millis(500)).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains("killed") && text.contains("hog started"),
        "{text}"
    );
    // The forked worker went with the group.
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let gone = (0..100).any(|_| {
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for a reaper.
        let dead = state.is_empty() || state.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'));
        if !dead {
            std::thread::sleep(Duration::from_millis(20));
        }
        dead
    });
    assert!(gone, "worker {pid} survived the deadline");
}

#[test]
fn reports_are_parsed() {
    let log = "stress-ng: info:  [17775] setting to a 1 second run per stressor\n\
        stress-ng: metrc: [17775] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s\n\
        stress-ng: metrc: [17775]                           (secs)    (secs)    (secs)   (real time) (usr+sys time)\n\
        stress-ng: metrc: [17775] cpu                1584      1.00      0.99      0.00      1583.83        1606.46\n\
        stress-ng: info:  [17775] successful run completed in 1.00s\n";
    let r = super::report::stress_report(log);
    assert_eq!(r.metrics.len(), 1);
    assert_eq!(r.metrics[0].stressor, "cpu");
    assert_eq!(r.metrics[0].bogo_ops, 1584.0);
    assert_eq!(r.metrics[0].bogo_ops_per_s_cpu, 1606.46);
    assert_eq!(
        r.summary.as_deref(),
        Some("successful run completed in 1.00s")
    );

    let text = "note: a warning first\n{\"jobs\": [{\"jobname\": \"/dev/sdb\", \"error\": 0, \
                \"total_err\": 3, \"first_error\": 84, \"read\": {\"io_bytes\": 10}}]}\n";
    let f = super::report::fio_report(text).unwrap();
    assert_eq!(f.jobs[0].result().read_bytes, 10);
    let problem = f.jobs[0].problem().unwrap();
    assert!(
        problem.starts_with("/dev/sdb: 3 error(s), first: "),
        "{problem}"
    );
    assert!(super::report::fio_report("no json").is_err());
}

#[test]
fn smart_self_test() {
    let dir = tempfile::tempdir().unwrap();
    // /dev/good passes, /dev/slow is "in progress" once, /dev/quiet reports no status (left
    // out, as IPA does), /dev/bad fails.
    script(
        dir.path(),
        "smartctl",
        &format!(
            r#"#!/bin/sh
for dev; do :; done
name=$(basename "$dev")
if [ "$1" = "-t" ]; then exit 0; fi
seen={dir}/$name.seen
case $name in
quiet) echo '{{}}' ;;
bad) echo '{{"ata_smart_data": {{"self_test": {{"status": {{"string": "completed: read failure"}}}}}}}}'; exit 64 ;;
slow) if [ -e "$seen" ]; then
        echo '{{"ata_smart_data": {{"self_test": {{"status": {{"string": "completed without error"}}}}}}}}'
      else
        touch "$seen"
        echo '{{"ata_smart_data": {{"self_test": {{"status": {{"string": "in progress, 90% remaining"}}}}}}}}'
      fi ;;
*) echo '{{"ata_smart_data": {{"self_test": {{"status": {{"string": "completed without error"}}}}}}}}' ;;
esac
"#,
            dir = dir.path().display()
        ),
    );
    let tools = Toolbox::only(vec![dir.path().to_path_buf()]);
    let polling = SmartPolling {
        interval: Duration::from_millis(10),
        ceiling: Duration::from_secs(30),
    };
    let ok = disk::run_smart_test(
        &tools,
        &[
            PathBuf::from("/dev/good"),
            PathBuf::from("/dev/slow"),
            PathBuf::from("/dev/quiet"),
        ],
        &polling,
    )
    .unwrap();
    assert_eq!(ok["/dev/good"], "completed without error");
    assert_eq!(ok["/dev/slow"], "completed without error");
    assert!(dir.path().join("slow.seen").exists(), "polled twice");
    assert_eq!(ok["/dev/quiet"], "no self-test status reported");
    let err = disk::run_smart_test(
        &tools,
        &[PathBuf::from("/dev/good"), PathBuf::from("/dev/bad")],
        &polling,
    )
    .unwrap_err();
    assert_eq!(err.ipa_type(), "CleaningError");
    assert!(
        err.to_string()
            .contains("SMART test failed for /dev/bad (completed: read failure)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Real tools

#[test]
fn burnin_cpu_runs_stress_ng() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), &[], &[]);
    let log = dir.path().join("cpu.log");
    let sctx = step_context(
        json!({"agent_burnin_cpu_cpu": "1", "agent_burnin_cpu_timeout": "60"}),
        json!({}),
    );
    // The step argument wins over driver_info's 60 s.
    let result = execute(
        &ctx.devices(),
        "burnin_cpu",
        &sctx,
        &args(json!({"timeout": 1, "outputfile": log.display().to_string()})),
    )
    .unwrap();
    assert_eq!(result["tool"], "stress-ng");
    assert_eq!(
        (result["stressor"].as_str(), result["timeout"].as_u64()),
        (Some("cpu"), Some(1))
    );
    assert!(result["elapsed_s"].as_f64().unwrap() < 30.0, "{result}");
    assert_eq!(result["metrics"][0]["stressor"], "cpu", "{result}");
    assert!(
        result["metrics"][0]["bogo_ops"].as_f64().unwrap() > 0.0,
        "{result}"
    );
    assert!(
        result["summary"]
            .as_str()
            .unwrap()
            .contains("successful run completed"),
        "{result}"
    );
    assert!(fs::read_to_string(&log).unwrap().contains("metrc"));
}

#[test]
fn burnin_memory_runs_stress_ng() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), &[], &[]);
    let sctx = step_context(
        json!({"agent_burnin_vm_vm": 1, "agent_burnin_vm_timeout": "1s",
               "agent_burnin_vm_vm-bytes": "16m"}),
        json!({}),
    );
    let result = execute(&ctx.devices(), "burnin_memory", &sctx, &Map::new()).unwrap();
    assert_eq!(result["stressor"], "vm");
    assert_eq!(result["vm_bytes"], "16m");
    assert_eq!(result["metrics"][0]["stressor"], "vm", "{result}");
}

/// Whether every byte of `file` is zero.
fn all_zero(file: &Path) -> bool {
    fs::read(file).unwrap().iter().all(|b| *b == 0)
}

#[test]
fn burnin_disk_writes_only_allowed_disks() {
    let dir = tempfile::tempdir().unwrap();
    let burn = LoopDevice::create(&dir.path().join("burn.img"), 16 << 20).unwrap();
    let other = LoopDevice::create(&dir.path().join("other.img"), 16 << 20).unwrap();
    let listed = LoopDevice::create(&dir.path().join("skipped.img"), 16 << 20).unwrap();
    // `other` is not on the allow-list; `listed` is, but skip_block_devices names it.
    let ctx = context(
        dir.path(),
        &[&burn.path, &listed.path],
        &[&burn.path, &other.path, &listed.path],
    );
    let skip = json!({"skip_block_devices": [{"name": listed.path.display().to_string()}]});
    let report = dir.path().join("fio.json");
    let sctx = step_context(json!({"agent_burnin_fio_disk_loops": "1"}), skip.clone());
    let result = execute(
        &ctx.devices(),
        "burnin_disk",
        &sctx,
        &args(json!({"outputfile": report.display().to_string()})),
    )
    .unwrap();

    let burned = burn.path.display().to_string();
    assert_eq!(result["tool"], "fio");
    assert_eq!(result["loops"], 1);
    assert_eq!(result["disks"].as_array().unwrap().len(), 1, "{result}");
    assert_eq!(result["disks"][0]["device"], burned.as_str());
    assert!(
        result["disks"][0]["write_bytes"].as_u64().unwrap() > 0,
        "{result}"
    );
    assert!(
        result["disks"][0]["read_bytes"].as_u64().unwrap() > 0,
        "{result}"
    );
    assert_eq!(result["disks"][0]["errors"], 0);
    let skipped = result["skipped"].as_object().unwrap();
    assert!(
        skipped[&other.path.display().to_string()]
            .as_str()
            .unwrap()
            .contains("--allow-device"),
        "{result}"
    );
    assert_eq!(
        skipped[&listed.path.display().to_string()],
        "listed in skip_block_devices"
    );
    assert!(fs::read_to_string(&report).unwrap().contains("\"jobs\""));
    assert!(!all_zero(&burn.file), "fio wrote the allowed disk");
    assert!(all_zero(&other.file), "the refused disk is untouched");
    assert!(all_zero(&listed.file), "the skipped disk is untouched");

    // Only refused disks: nothing runs, nothing is written.
    let ctx = context(dir.path(), &[&burn.path], &[&other.path]);
    let err = execute(
        &ctx.devices(),
        "burnin_disk",
        &sctx,
        &args(json!({"loops": 1})),
    )
    .unwrap_err();
    assert_eq!(err.ipa_type(), "CommandExecutionError");
    let text = err.to_string();
    assert!(text.contains("no disk to burn in"), "{text}");
    assert!(text.contains(&other.path.display().to_string()), "{text}");
    assert!(all_zero(&other.file));
}

#[test]
fn empty_plan_fails_before_looking_for_fio() {
    let empty = tempfile::tempdir().unwrap();
    let tools = Toolbox::only(vec![empty.path().to_path_buf()]);
    let f = settings::fio("burnin_disk", &node(json!({})), &Map::new()).unwrap();
    let err = disk::run(&tools, &f, &DiskPlan::default(), &SmartPolling::default()).unwrap_err();
    assert!(err.to_string().contains("no disk to burn in"), "{err}");
}
