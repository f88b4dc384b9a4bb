//! The block devices the agent's steps and commands work on: listed through the hardware
//! chain, admitted by the disk guard, and the install device the chain chooses.
//!
//! A [`Devices`] handle is what a step is given instead of the whole agent: the deploy, the
//! cleaning steps and the bootloader installation all go through it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use hardware_managers::guard::{DiskGuard, GuardError};
use hardware_managers::{BlockDevice, Chain, HardwareError, HardwareResult, Node};

/// The hardware chain to ask about devices, and the devices that may be written.
#[derive(Debug, Clone, Default)]
pub struct Devices {
    /// Weak: the agent's steps live inside the chain they ask (see [`Chain::new_cyclic`]).
    chain: Weak<Chain>,
    /// `--allow-device`.
    allowed: Vec<PathBuf>,
}

/// Why no install device could be used.
#[derive(Debug, thiserror::Error)]
pub enum InstallDeviceError {
    /// The chain found none (or failed).
    #[error(transparent)]
    Hardware(#[from] HardwareError),
    /// The disk guard refused the device it chose.
    #[error(transparent)]
    Guard(#[from] GuardError),
}

impl Devices {
    /// Devices of `chain`, writable within `allowed` (`--allow-device`).
    pub fn new(chain: Weak<Chain>, allowed: Vec<PathBuf>) -> Self {
        Devices { chain, allowed }
    }

    /// The disk guard every write passes.
    pub fn guard(&self) -> DiskGuard {
        DiskGuard::new(self.allowed.clone(), Path::new("/"))
    }

    /// The hardware chain.
    ///
    /// # Errors
    /// `Configuration` when the chain is gone (only for a handle made without one).
    pub fn chain(&self) -> HardwareResult<Arc<Chain>> {
        self.chain.upgrade().ok_or_else(|| {
            HardwareError::Configuration("no hardware manager chain behind these devices".into())
        })
    }

    /// `list_block_devices` through the chain.
    ///
    /// # Errors
    /// The chain's.
    pub fn list(&self, include_partitions: bool) -> HardwareResult<Vec<BlockDevice>> {
        self.chain()?.dispatch("list_block_devices", |m| {
            m.list_block_devices(include_partitions)
        })
    }

    /// The install device chosen by the chain for `node`, after the disk guard accepted it.
    ///
    /// # Errors
    /// No device, or the guard refused it.
    pub fn install_device(&self, node: Option<&Node>) -> Result<PathBuf, InstallDeviceError> {
        let dev = self
            .chain()?
            .dispatch("get_os_install_device", |m| m.get_os_install_device(node))?;
        let dev = PathBuf::from(dev);
        self.guard().check_writable(&dev)?;
        Ok(dev)
    }
}

#[cfg(test)]
mod tests {
    use hardware_managers::{HardwareManager, SupportLevel};

    use super::*;

    /// Lists fixed disks and picks the first as install device.
    struct Listed(Vec<BlockDevice>);

    impl HardwareManager for Listed {
        fn class_name(&self) -> String {
            "Listed".into()
        }
        fn evaluate_hardware_support(&self) -> SupportLevel {
            SupportLevel::GENERIC
        }
        fn list_block_devices(&self, _partitions: bool) -> HardwareResult<Vec<BlockDevice>> {
            Ok(self.0.clone())
        }
        fn get_os_install_device(&self, _node: Option<&Node>) -> HardwareResult<String> {
            self.0
                .first()
                .map(|d| d.name.clone())
                .ok_or_else(|| HardwareError::DeviceNotFound("no disk".into()))
        }
    }

    fn disk(name: &str) -> anyhow::Result<BlockDevice> {
        Ok(serde_json::from_value(
            serde_json::json!({"name": name, "size": 1u64 << 30, "rotational": false}),
        )?)
    }

    #[test]
    fn a_handle_made_with_the_chain_reaches_it() -> anyhow::Result<()> {
        let listed = vec![disk("/dev/no-such-disk-a")?, disk("/dev/no-such-disk-b")?];
        let mut handle = None;
        let chain = Chain::new_cyclic(|me| {
            handle = Some(Devices::new(
                me.clone(),
                vec![PathBuf::from("/dev/no-such-disk-a")],
            ));
            vec![Arc::new(Listed(listed)) as Arc<dyn HardwareManager>]
        })?;
        let devices = handle.ok_or_else(|| anyhow::anyhow!("no handle"))?;
        let names: Vec<String> = devices.list(false)?.into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["/dev/no-such-disk-a", "/dev/no-such-disk-b"]);
        assert_eq!(
            devices.install_device(None)?,
            PathBuf::from("/dev/no-such-disk-a")
        );
        drop(chain);
        assert!(matches!(
            devices.list(false),
            Err(HardwareError::Configuration(_))
        ));
        Ok(())
    }

    #[test]
    fn the_guard_refuses_an_install_device_outside_the_allow_list() -> anyhow::Result<()> {
        let chain = Arc::new(Chain::new(vec![
            Arc::new(Listed(vec![disk("/dev/no-such-disk-b")?])) as Arc<dyn HardwareManager>,
        ])?);
        let devices = Devices::new(
            Arc::downgrade(&chain),
            vec![PathBuf::from("/dev/no-such-disk-a")],
        );
        assert!(matches!(
            devices.install_device(None),
            Err(InstallDeviceError::Guard(_))
        ));
        assert!(matches!(
            Devices::default().install_device(None),
            Err(InstallDeviceError::Hardware(HardwareError::Configuration(
                _
            )))
        ));
        Ok(())
    }
}
