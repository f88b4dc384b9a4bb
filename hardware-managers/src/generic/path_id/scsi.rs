//! The SCSI part of the `path_id` walk: one handler per transport (Fibre Channel, SAS,
//! iSCSI, libata, Hyper-V, and the plain `scsi-H:B:T:L` fallback), each prepending its
//! component for a `scsi_device` and telling the walk where to continue.

use super::{Composer, ancestor_with, prepend, skip_subsystem};
use crate::generic::sysdev::{SysDevice, SysTree};

/// `lun-<L>` for the LUN of SCSI device `dev` (the trailing number of `h:b:t:l`), in udev's
/// format: decimal below 256, else the 8-byte SCSI LUN layout.
fn lun_component(dev: &SysDevice) -> Option<String> {
    let lun: u64 = dev.sysnum()?.parse().ok()?;
    Some(if lun < 256 {
        format!("lun-{lun}")
    } else {
        format!(
            "lun-0x{:04x}{:04x}00000000",
            lun & 0xffff,
            (lun >> 16) & 0xffff
        )
    })
}

/// Prepends `component` followed by the LUN of `dev` (udev drops the LUN part, keeping the
/// dash, when it cannot be formatted).
fn prepend_with_lun(c: &mut Composer, component: &str, dev: &SysDevice) {
    let lun = lun_component(dev).unwrap_or_else(|| "(null)".to_string());
    c.prepend(&format!("{component}-{lun}"));
}

/// The four numbers of a SCSI device name `h:b:t:l`.
fn hbtl(name: &str) -> Option<[u32; 4]> {
    let mut it = name.split(':').map(|p| p.parse::<u32>().ok());
    let out = [it.next()??, it.next()??, it.next()??, it.next()??];
    it.next().is_none().then_some(out)
}

pub(super) fn handle_scsi(
    tree: &SysTree,
    parent: SysDevice,
    c: &mut Composer,
    supported_parent: &mut bool,
) -> Option<SysDevice> {
    if parent.devtype().as_deref() != Some("scsi_device") {
        return Some(parent);
    }
    if let Some(id) = parent.attr("ieee1394_id") {
        c.prepend(&format!("ieee1394-0x{id}"));
        *supported_parent = true;
        return Some(skip_subsystem(tree, parent, "scsi"));
    }
    let syspath = tree.syspath(&parent);
    if syspath.contains("/rport-") {
        *supported_parent = true;
        handle_fibre_channel(tree, parent, c)
    } else if syspath.contains("/end_device-") {
        *supported_parent = true;
        handle_sas(tree, parent, c)
    } else if syspath.contains("/session") {
        *supported_parent = true;
        handle_iscsi(tree, parent, c)
    } else if syspath.contains("/ata") {
        handle_ata(tree, parent, c)
    } else if syspath.contains("/vmbus_") {
        handle_hyperv(tree, parent, c, 37)
    } else if syspath.contains("/VMBUS") {
        handle_hyperv(tree, parent, c, 38)
    } else {
        handle_scsi_default(tree, parent, c)
    }
}

fn handle_fibre_channel(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let target = ancestor_with(tree, &parent, "scsi", "scsi_target")?;
    let fc = tree.by_subsystem_sysname("fc_transport", &target.sysname())?;
    let port = fc.attr("port_name")?;
    prepend_with_lun(c, &format!("fc-{port}"), &parent);
    Some(parent)
}

fn handle_sas(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let target = ancestor_with(tree, &parent, "scsi", "scsi_target")?;
    let end_device = tree.parent(&target)?;
    let target_sas = tree.by_subsystem_sysname("sas_device", &end_device.sysname())?;
    let port = tree.parent(&end_device)?;
    let port_sas = tree.by_subsystem_sysname("sas_port", &port.sysname())?;
    let phys = port_sas.attr("num_phys")?;
    if phys != "1" {
        // A wide port: named by the end device's SAS address.
        let address = target_sas.attr("sas_address")?;
        prepend_with_lun(c, &format!("sas-{address}"), &parent);
        return Some(parent);
    }
    let phy = target_sas.attr("phy_identifier")?;
    let expander = tree.parent(&port)?;
    let component = match tree.by_subsystem_sysname("sas_device", &expander.sysname()) {
        Some(exp) => format!("sas-exp{}-phy{phy}", exp.attr("sas_address")?),
        None => format!("sas-phy{phy}"),
    };
    prepend_with_lun(c, &component, &parent);
    Some(parent)
}

fn handle_iscsi(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let mut session = tree.parent(&parent)?;
    while !session.sysname().starts_with("session") {
        session = tree.parent(&session)?;
    }
    let session_dev = tree.by_subsystem_sysname("iscsi_session", &session.sysname())?;
    let target = session_dev.attr("targetname")?;
    let num = session.sysnum()?;
    let conn = tree.by_subsystem_sysname("iscsi_connection", &format!("connection{num}:0"))?;
    let addr = conn.attr("persistent_address")?;
    let port = conn.attr("persistent_port")?;
    prepend_with_lun(c, &format!("ip-{addr}:{port}-iscsi-{target}"), &parent);
    Some(parent)
}

fn handle_ata(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let [_, bus, target, _] = hbtl(&parent.sysname())?;
    let host = ancestor_with(tree, &parent, "scsi", "scsi_host")?;
    let ata = tree.parent(&host)?;
    let port = tree
        .by_subsystem_sysname("ata_port", &ata.sysname())?
        .attr("port_no")?;
    if bus != 0 {
        // Behind a port multiplier.
        c.prepend(&format!("ata-{port}.{bus}.0"));
    } else {
        // Master/slave told apart by the target id.
        c.prepend(&format!("ata-{port}.{target}"));
    }
    prepend(&mut c.compat, &format!("ata-{port}"));
    Some(parent)
}

fn handle_scsi_default(tree: &SysTree, parent: SysDevice, c: &mut Composer) -> Option<SysDevice> {
    let host = ancestor_with(tree, &parent, "scsi", "scsi_host")?;
    let name = parent.sysname();
    let mut it = name.split(':').map(|p| p.parse::<i64>().ok());
    let (Some(Some(h)), Some(Some(b)), Some(Some(t)), Some(Some(l))) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return None;
    };
    // udev rebases the host number on the lowest `hostN` under the same controller.
    let base = host.path().parent()?;
    let lowest = std::fs::read_dir(base)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()))
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let digits = n.strip_prefix("host")?;
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<i64>().ok())
                .flatten()
        })
        .min();
    let Some(lowest) = lowest else {
        return Some(host);
    };
    c.prepend(&format!("scsi-{}:{b}:{t}:{l}", h - lowest));
    Some(host)
}

fn handle_hyperv(
    tree: &SysTree,
    parent: SysDevice,
    c: &mut Composer,
    guid_len: usize,
) -> Option<SysDevice> {
    let host = ancestor_with(tree, &parent, "scsi", "scsi_host")?;
    let vmbus = tree.parent(&host)?;
    let guid = vmbus.attr("device_id")?;
    let bytes = guid.as_bytes();
    if bytes.len() < guid_len || bytes[0] != b'{' || bytes[guid_len - 1] != b'}' {
        return None;
    }
    let compact: String = bytes[1..guid_len - 1]
        .iter()
        .filter(|&&b| b != b'-')
        .map(|&b| char::from(b))
        .collect();
    prepend_with_lun(c, &format!("vmbus-{compact}"), &parent);
    Some(parent)
}
