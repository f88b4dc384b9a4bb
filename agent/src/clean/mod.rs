//! Cleaning and servicing steps the agent implements for the generic manager: disk erasure
//! (`erase`), burn-in (`burnin`), software RAID (`raid`), the kernel pstore (`pstore`) and
//! UEFI boot entries (`nvram`). Each module lists its own steps
//! with [`Step`] metadata and runs them; `deploy::steps` offers them under the
//! `GenericHardwareManager` name.

pub mod burnin;
pub mod erase;
pub mod nvram;
pub mod pstore;
pub mod raid;
#[cfg(test)]
pub(crate) mod testing;

use hardware_managers::Step;

/// A step on the `deploy` interface (where IPA puts erase and burn-in steps).
pub(crate) fn deploy_step(name: &str, priority: i64, abortable: bool) -> Step {
    let mut s = Step::new(name, "deploy", priority);
    if abortable {
        s.abortable = Some(true);
    }
    s
}
