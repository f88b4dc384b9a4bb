//! The RAID steps through the agent: bad configurations and unusable disks are refused with
//! clear errors before anything is written. (Building arrays needs the md driver, which the
//! host lacks: the QEMU test `vm_clean` covers that.)

use std::path::Path;

use hardware_managers::{HardwareError, StepContext, StepKind};
use serde_json::{Map, Value, json};

use super::execute;
use crate::clean::testing::{agent, device};
use crate::disk::table::{self, PartitionKind, PartitionSpec, TableKind};
use crate::testutil::LoopDevice;

const MIB: u64 = 1 << 20;

fn step_ctx(node: Value) -> anyhow::Result<StepContext> {
    Ok(StepContext {
        kind: Some(StepKind::Clean),
        node: serde_json::from_value(node)?,
        ports: vec![],
    })
}

fn file_bytes(p: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(p)?)
}

#[test]
fn steps_as_ipa_offers_them() {
    let names = |k| {
        super::steps(k)
            .into_iter()
            .map(|s| (s.step, s.interface, s.priority, s.abortable))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(StepKind::Clean),
        vec![
            ("delete_configuration".into(), "raid".into(), 0, Some(true)),
            ("create_configuration".into(), "raid".into(), 0, Some(true)),
        ]
    );
    let deploy = super::steps(StepKind::Deploy);
    assert_eq!(deploy.len(), 1);
    assert_eq!(deploy[0].step, "apply_configuration");
    let args = deploy[0].argsinfo.clone().unwrap_or_default();
    assert!(args["raid_config"].required && !args["delete_existing"].required);
    assert_eq!(super::steps(StepKind::Service).len(), 3);
}

#[test]
fn bad_configurations_are_refused_before_any_write() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let lo = LoopDevice::create(&dir.path().join("d.img"), 64 * MIB)?;
    let name = lo.path.display().to_string();
    let ctx = agent(dir.path(), &[&lo.path], vec![device(&name, 64 * MIB)?])?;
    let before = file_bytes(&lo.file)?;
    let cases = [
        (
            json!({"logical_disks": [{"size_gb": "MAX", "raid_level": "5", "controller": "software"}]}),
            vec![
                "Could not validate Software RAID config for n1",
                "the first logical disk must be RAID-1",
                "RAID 5 needs at least 3 disks, the machine has 1",
            ],
        ),
        (
            json!({"logical_disks": "all"}),
            vec!["`logical_disks` must be a list"],
        ),
    ];
    for (config, wants) in cases {
        let sctx = step_ctx(json!({"uuid": "n1", "target_raid_config": config}))?;
        let e = execute(
            &ctx.devices(),
            &ctx.state.raid,
            "create_configuration",
            &sctx,
            &Map::new(),
        )
        .err()
        .ok_or_else(|| anyhow::anyhow!("{config} accepted"))?;
        assert!(matches!(e, HardwareError::InvalidArgs(_)), "{e:?}");
        assert_eq!(e.code(), 400);
        for want in wants {
            assert!(e.to_string().contains(want), "{e}");
        }
        // apply_configuration validates before deleting anything.
        let mut args = Map::new();
        args.insert("raid_config".into(), config.clone());
        let e = execute(
            &ctx.devices(),
            &ctx.state.raid,
            "apply_configuration",
            &step_ctx(json!({"uuid": "n1"}))?,
            &args,
        )
        .err()
        .ok_or_else(|| anyhow::anyhow!("{config} applied"))?;
        assert_eq!(e.code(), 400, "{e}");
    }
    let e = execute(
        &ctx.devices(),
        &ctx.state.raid,
        "apply_configuration",
        &step_ctx(json!({}))?,
        &Map::new(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("needs the argument raid_config"), "{e}");
    let mut args = Map::new();
    args.insert("raid_config".into(), json!({}));
    args.insert("delete_existing".into(), json!("perhaps"));
    let e = execute(
        &ctx.devices(),
        &ctx.state.raid,
        "apply_configuration",
        &step_ctx(json!({}))?,
        &args,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("delete_existing must be a boolean"), "{e}");
    assert_eq!(
        file_bytes(&lo.file)?,
        before,
        "a refused configuration wrote to the disk"
    );
    Ok(())
}

#[test]
fn nothing_to_do_without_software_raid() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let lo = LoopDevice::create(&dir.path().join("d.img"), 16 * MIB)?;
    let ctx = agent(dir.path(), &[&lo.path], vec![])?;
    for node in [
        json!({}),
        json!({"target_raid_config": {}}),
        json!({"target_raid_config": {"logical_disks": [
            {"size_gb": 10, "raid_level": "5", "controller": "megaraid"}]}}),
    ] {
        let r = execute(
            &ctx.devices(),
            &ctx.state.raid,
            "create_configuration",
            &step_ctx(node.clone())?,
            &Map::new(),
        )?;
        assert_eq!(r, json!({}), "{node}");
    }
    assert!(
        execute(
            &ctx.devices(),
            &ctx.state.raid,
            "erase_devices",
            &step_ctx(json!({}))?,
            &Map::new()
        )
        .is_err_and(|e| e.is_incompatible())
    );
    Ok(())
}

#[test]
fn disks_with_partitions_or_too_small_are_refused_untouched() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a = LoopDevice::create(&dir.path().join("a.img"), 64 * MIB)?;
    let b = LoopDevice::create(&dir.path().join("b.img"), 64 * MIB)?;
    table::write_table(
        &b.path,
        TableKind::Gpt,
        &[PartitionSpec {
            size_mib: 8,
            kind: PartitionKind::Linux,
            name: "old".into(),
            bootable: false,
        }],
    )?;
    let (an, bn) = (a.path.display().to_string(), b.path.display().to_string());
    // Only `a` is allowed: `b` is neither chosen by default nor writable.
    let ctx = agent(
        dir.path(),
        &[&a.path],
        vec![device(&an, 64 * MIB)?, device(&bn, 64 * MIB)?],
    )?;
    let (a0, b0) = (file_bytes(&a.file)?, file_bytes(&b.file)?);
    let raid1 = |disks: Value| {
        json!({"uuid": "n1", "properties": {"capabilities": "boot_mode:bios"},
               "target_raid_config": {"logical_disks": [
            {"size_gb": 1, "raid_level": "1", "controller": "software", "physical_disks": disks}]}})
    };
    // By hints naming both: b is not allowed and has partitions.
    let e = execute(
        &ctx.devices(),
        &ctx.state.raid,
        "create_configuration",
        &step_ctx(raid1(json!([{"name": an}, {"name": bn}])))?,
        &Map::new(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.contains("SoftwareRAIDError") || e.contains("Cannot create"),
        "{e}"
    );
    assert!(e.contains("not in the --allow-device list"), "{e}");
    // A hint matching nothing.
    let e = execute(
        &ctx.devices(),
        &ctx.state.raid,
        "create_configuration",
        &step_ctx(raid1(json!([{"name": an}, {"name": "/dev/sdzz"}])))?,
        &Map::new(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("no disk matches physical_disks entry"), "{e}");
    // Without hints the one allowed disk is all there is: RAID-1 needs two.
    let no_hints = json!({"uuid": "n1", "target_raid_config": {"logical_disks": [
        {"size_gb": 1, "raid_level": "1", "controller": "software"}]}});
    let e = execute(
        &ctx.devices(),
        &ctx.state.raid,
        "create_configuration",
        &step_ctx(no_hints)?,
        &Map::new(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.contains("RAID 1 needs at least 2 disks, the machine has 1"),
        "{e}"
    );
    assert_eq!(file_bytes(&a.file)?, a0);
    assert_eq!(file_bytes(&b.file)?, b0);
    Ok(())
}
