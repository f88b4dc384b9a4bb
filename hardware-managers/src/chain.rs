//! The ordered chain of managers and IPA's dispatch rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

use tracing::{debug, info};

use crate::error::{HardwareError, HardwareResult};
use crate::inventory::{Inventory, NetworkInterface};
use crate::manager::{HardwareManager, StepContext};
use crate::step::{Step, StepKind};
use crate::support::SupportLevel;

/// One member of the chain with the support level it claimed at start-up.
#[derive(Clone)]
struct Member {
    manager: Arc<dyn HardwareManager>,
    support: SupportLevel,
}

/// The managers that support this machine, ordered by support level (highest first; equal
/// levels keep their discovery order).
#[derive(Clone)]
pub struct Chain {
    members: Vec<Member>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self
            .members
            .iter()
            .map(|m| format!("{}({})", m.manager.class_name(), m.support.0))
            .collect();
        f.debug_struct("Chain").field("managers", &names).finish()
    }
}

impl Chain {
    /// Evaluates every candidate, drops those at support ≤ 0, orders the rest by support
    /// (descending, stable) and initialises them in that order.
    pub fn new(candidates: Vec<Arc<dyn HardwareManager>>) -> HardwareResult<Self> {
        let mut members: Vec<Member> = candidates
            .into_iter()
            .filter_map(|manager| {
                let support = manager.evaluate_hardware_support();
                debug!(manager = %manager.class_name(), support = support.0, "evaluated hardware support");
                support.is_supported().then_some(Member { manager, support })
            })
            .collect();
        if members.is_empty() {
            return Err(HardwareError::NoManager);
        }
        members.sort_by_key(|m| std::cmp::Reverse(m.support));
        for m in &members {
            m.manager.initialize()?;
            info!(manager = %m.manager.class_name(), support = m.support.0, "hardware manager ready");
        }
        Ok(Chain { members })
    }

    /// [`Chain::new`] for managers that need to reach the chain they belong to (a step backend
    /// listing devices through every manager): `candidates` receives the chain's weak handle,
    /// which upgrades once this returns and for as long as the chain lives. No manager may
    /// upgrade it while `candidates` runs.
    ///
    /// # Errors
    /// As [`Chain::new`].
    pub fn new_cyclic(
        candidates: impl FnOnce(&Weak<Chain>) -> Vec<Arc<dyn HardwareManager>>,
    ) -> HardwareResult<Arc<Self>> {
        let mut failure = None;
        let chain = Arc::new_cyclic(|me| match Chain::new(candidates(me)) {
            Ok(chain) => chain,
            Err(e) => {
                failure = Some(e);
                Chain {
                    members: Vec::new(),
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(chain),
        }
    }

    /// The managers in dispatch order with their support levels.
    pub fn managers(&self) -> impl Iterator<Item = (&dyn HardwareManager, SupportLevel)> {
        self.members.iter().map(|m| (m.manager.as_ref(), m.support))
    }

    /// IPA's `dispatch_to_managers`: asks each manager in order; an `Incompatible` answer passes
    /// the call on, any other error stops dispatch, the first answer wins. Nobody answering
    /// gives [`HardwareError::MethodNotFound`].
    pub fn dispatch<T>(
        &self,
        method: &str,
        mut call: impl FnMut(&dyn HardwareManager) -> HardwareResult<T>,
    ) -> HardwareResult<T> {
        for m in &self.members {
            match call(m.manager.as_ref()) {
                Err(e) if e.is_incompatible() => {
                    debug!(manager = %m.manager.class_name(), method, "incompatible, trying next manager");
                }
                other => return other,
            }
        }
        Err(HardwareError::MethodNotFound(method.to_string()))
    }

    /// IPA's `dispatch_to_all_managers`: calls every manager, skipping `Incompatible`, stopping
    /// at any other error; returns `class name → result` in chain order. Empty →
    /// [`HardwareError::MethodNotFound`].
    pub fn dispatch_all<T>(
        &self,
        method: &str,
        mut call: impl FnMut(&dyn HardwareManager) -> HardwareResult<T>,
    ) -> HardwareResult<Vec<(String, T)>> {
        let mut out = Vec::new();
        for m in &self.members {
            match call(m.manager.as_ref()) {
                Ok(v) => out.push((m.manager.class_name(), v)),
                Err(e) if e.is_incompatible() => {}
                Err(e) => return Err(e),
            }
        }
        if out.is_empty() {
            return Err(HardwareError::MethodNotFound(method.to_string()));
        }
        Ok(out)
    }

    /// `hardware_manager_version`: `{name: version}` over all managers.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.members
            .iter()
            .map(|m| {
                let v = m.manager.version();
                (v.name, v.version)
            })
            .collect()
    }

    /// The steps of `kind` from every manager, de-duplicated by step name: the step of the
    /// manager with the highest support wins, then the highest priority, then the
    /// alphabetically first manager class name. Returned as `{class name: [steps]}`.
    pub fn steps(
        &self,
        kind: StepKind,
        ctx: &StepContext,
    ) -> HardwareResult<BTreeMap<String, Vec<Step>>> {
        // (support, priority, class name, step)
        let mut best: HashMap<String, (SupportLevel, i64, String, Step)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut result: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for m in &self.members {
            let class = m.manager.class_name();
            result.entry(class.clone()).or_default();
            let steps = match m.manager.get_steps(kind, ctx) {
                Ok(s) => s,
                Err(e) if e.is_incompatible() => continue,
                Err(e) => return Err(e),
            };
            for step in steps {
                let candidate = (m.support, step.priority, class.clone(), step);
                match best.get(&candidate.3.step) {
                    None => {
                        order.push(candidate.3.step.clone());
                        best.insert(candidate.3.step.clone(), candidate);
                    }
                    Some(current) if beats(&candidate, current) => {
                        best.insert(candidate.3.step.clone(), candidate);
                    }
                    Some(_) => {}
                }
            }
        }
        for name in order {
            if let Some((_, _, class, step)) = best.remove(&name) {
                result.entry(class).or_default().push(step);
            }
        }
        Ok(result)
    }

    /// Runs step `name` on the first manager that implements it.
    pub fn execute_step(
        &self,
        name: &str,
        ctx: &StepContext,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> HardwareResult<serde_json::Value> {
        self.dispatch(name, |m| m.execute_step(name, ctx, args))
    }

    /// IPA's `list_network_interfaces`: the interfaces the first answering manager lists,
    /// each replaced by the first manager's `get_interface_info` answer for it (a vendor
    /// manager's InfiniBand view, say), with the listing's `lldp` kept.
    ///
    /// # Errors
    /// As [`Chain::dispatch`]; an error other than `Incompatible` from `get_interface_info`
    /// fails the listing, as in IPA.
    pub fn list_network_interfaces(&self) -> HardwareResult<Vec<NetworkInterface>> {
        let listed = self.dispatch("list_network_interfaces", |m| m.list_network_interfaces())?;
        listed
            .into_iter()
            .map(|base| {
                match self.dispatch("get_interface_info", |m| m.get_interface_info(&base)) {
                    Ok(mut own) => {
                        own.lldp = base.lldp;
                        Ok(own)
                    }
                    Err(HardwareError::MethodNotFound(_)) => Ok(base),
                    Err(e) => Err(e),
                }
            })
            .collect()
    }

    /// Builds the inventory by dispatching each part through the chain. With `skip_bmc`
    /// (lookup's `agent_skip_bmc_detect`) the BMC fields are null and `bmc_mac` is omitted.
    pub fn inventory(&self, skip_bmc: bool) -> HardwareResult<Inventory> {
        let optional = |r: HardwareResult<Option<String>>| match r {
            Ok(v) => Ok(v),
            Err(HardwareError::MethodNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        let (bmc_address, bmc_v6address, bmc_mac) = if skip_bmc {
            (None, None, None)
        } else {
            (
                optional(self.dispatch("get_bmc_address", |m| m.get_bmc_address()))?,
                optional(self.dispatch("get_bmc_v6address", |m| m.get_bmc_v6address()))?,
                optional(self.dispatch("get_bmc_mac", |m| m.get_bmc_mac()))?,
            )
        };
        Ok(Inventory {
            interfaces: self.list_network_interfaces()?,
            cpu: self.dispatch("get_cpus", |m| m.get_cpus())?,
            disks: self.dispatch("list_block_devices", |m| m.list_block_devices(false))?,
            memory: self.dispatch("get_memory", |m| m.get_memory())?,
            bmc_address,
            bmc_v6address,
            system_vendor: self
                .dispatch("get_system_vendor_info", |m| m.get_system_vendor_info())?,
            boot: self.dispatch("get_boot_info", |m| m.get_boot_info())?,
            hostname: self.dispatch("get_hostname", |m| m.get_hostname())?,
            bmc_mac,
        })
    }
}

/// Whether `a` should replace `b` as the kept copy of a duplicated step.
fn beats(a: &(SupportLevel, i64, String, Step), b: &(SupportLevel, i64, String, Step)) -> bool {
    (a.0, a.1, std::cmp::Reverse(&a.2)) > (b.0, b.1, std::cmp::Reverse(&b.2))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::inventory::Cpu;

    /// A manager defined entirely by closures' worth of data, for exercising the rules.
    struct Fake {
        class: &'static str,
        support: i64,
        cpu_model: Option<&'static str>,
        fail_cpu: bool,
        steps: Vec<Step>,
        init_calls: Arc<AtomicUsize>,
    }

    impl Fake {
        fn new(class: &'static str, support: i64) -> Self {
            Fake {
                class,
                support,
                cpu_model: None,
                fail_cpu: false,
                steps: vec![],
                init_calls: Arc::new(AtomicUsize::new(0)),
            }
        }
    }

    impl HardwareManager for Fake {
        fn class_name(&self) -> String {
            self.class.to_string()
        }
        fn evaluate_hardware_support(&self) -> SupportLevel {
            SupportLevel(self.support)
        }
        fn initialize(&self) -> HardwareResult<()> {
            self.init_calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn get_cpus(&self) -> HardwareResult<Cpu> {
            if self.fail_cpu {
                return Err(HardwareError::ipa(
                    crate::ipa_error::IpaClass::BlockDeviceError,
                    "boom",
                ));
            }
            match self.cpu_model {
                Some(m) => Ok(Cpu {
                    model_name: m.into(),
                    frequency: String::new(),
                    count: 1,
                    architecture: "x86_64".into(),
                    flags: vec![],
                    socket_count: None,
                }),
                None => Err(HardwareError::incompatible("get_cpus")),
            }
        }
        fn get_steps(&self, _: StepKind, _: &StepContext) -> HardwareResult<Vec<Step>> {
            Ok(self.steps.clone())
        }
    }

    fn chain(fakes: Vec<Fake>) -> HardwareResult<Chain> {
        Chain::new(
            fakes
                .into_iter()
                .map(|f| Arc::new(f) as Arc<dyn HardwareManager>)
                .collect(),
        )
    }

    #[test]
    fn orders_by_support_and_drops_unsupported() -> HardwareResult<()> {
        let dropped = Fake::new("Dropped", 0);
        let dropped_init = dropped.init_calls.clone();
        let c = chain(vec![
            Fake::new("Generic", 1),
            dropped,
            Fake::new("Vendor", 3),
        ])?;
        let names: Vec<_> = c.managers().map(|(m, _)| m.class_name()).collect();
        assert_eq!(names, vec!["Vendor", "Generic"]);
        assert_eq!(
            dropped_init.load(Ordering::SeqCst),
            0,
            "dropped manager must not be initialised"
        );
        Ok(())
    }

    #[test]
    fn empty_chain_is_an_error() {
        assert!(matches!(
            chain(vec![Fake::new("X", 0)]),
            Err(HardwareError::NoManager)
        ));
    }

    #[test]
    fn dispatch_skips_incompatible_and_first_answer_wins() -> HardwareResult<()> {
        let mut generic = Fake::new("Generic", 1);
        generic.cpu_model = Some("generic cpu");
        let vendor = Fake::new("Vendor", 3); // incompatible for get_cpus
        let c = chain(vec![generic, vendor])?;
        assert_eq!(
            c.dispatch("get_cpus", |m| m.get_cpus())?.model_name,
            "generic cpu"
        );

        let mut generic = Fake::new("Generic", 1);
        generic.cpu_model = Some("generic cpu");
        let mut vendor = Fake::new("Vendor", 3);
        vendor.cpu_model = Some("vendor cpu");
        let c = chain(vec![generic, vendor])?;
        assert_eq!(
            c.dispatch("get_cpus", |m| m.get_cpus())?.model_name,
            "vendor cpu"
        );
        Ok(())
    }

    #[test]
    fn dispatch_stops_on_real_error_and_reports_not_found() -> HardwareResult<()> {
        let mut generic = Fake::new("Generic", 1);
        generic.cpu_model = Some("generic cpu");
        let mut vendor = Fake::new("Vendor", 3);
        vendor.fail_cpu = true;
        let c = chain(vec![generic, vendor])?;
        let err = c.dispatch("get_cpus", |m| m.get_cpus()).err();
        assert!(matches!(err, Some(HardwareError::Ipa(_))));

        let c = chain(vec![Fake::new("Generic", 1)])?;
        let err = c.dispatch("get_memory", |m| m.get_memory()).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("Could not find method: get_memory".into())
        );
        let err = c.dispatch_all("get_memory", |m| m.get_memory()).err();
        assert!(matches!(err, Some(HardwareError::MethodNotFound(_))));
        Ok(())
    }

    #[test]
    fn dispatch_all_collects_in_chain_order() -> HardwareResult<()> {
        let mut a = Fake::new("A", 1);
        a.cpu_model = Some("a");
        let b = Fake::new("B", 2);
        let mut c3 = Fake::new("C", 3);
        c3.cpu_model = Some("c");
        let c = chain(vec![a, b, c3])?;
        let all = c.dispatch_all("get_cpus", |m| m.get_cpus())?;
        let got: Vec<_> = all
            .iter()
            .map(|(n, cpu)| (n.as_str(), cpu.model_name.as_str()))
            .collect();
        assert_eq!(got, vec![("C", "c"), ("A", "a")]);
        Ok(())
    }

    #[test]
    fn step_dedup_by_support_then_priority_then_name() -> HardwareResult<()> {
        let mut generic = Fake::new("GenericHardwareManager", 1);
        generic.steps = vec![
            Step::new("erase_devices", "deploy", 10),
            Step::new("erase_devices_metadata", "deploy", 99),
        ];
        let mut vendor = Fake::new("VendorManager", 3);
        vendor.steps = vec![
            Step::new("erase_devices", "deploy", 5),
            Step::new("update_firmware", "management", 0),
        ];
        // Same support: higher priority wins; then alphabetical class name.
        let mut zeta = Fake::new("ZetaManager", 2);
        zeta.steps = vec![
            Step::new("tie", "deploy", 1),
            Step::new("prio", "deploy", 50),
        ];
        let mut alpha = Fake::new("AlphaManager", 2);
        alpha.steps = vec![
            Step::new("tie", "deploy", 1),
            Step::new("prio", "deploy", 10),
        ];
        let c = chain(vec![generic, vendor, zeta, alpha])?;
        let steps = c.steps(StepKind::Clean, &StepContext::default())?;
        let names = |k: &str| -> Vec<String> {
            steps
                .get(k)
                .map(|v| v.iter().map(|s| s.step.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            names("VendorManager"),
            vec!["erase_devices", "update_firmware"]
        );
        assert_eq!(
            names("GenericHardwareManager"),
            vec!["erase_devices_metadata"]
        );
        assert_eq!(names("AlphaManager"), vec!["tie"]);
        assert_eq!(names("ZetaManager"), vec!["prio"]);
        Ok(())
    }

    #[test]
    fn versions_map() -> HardwareResult<()> {
        let c = chain(vec![Fake::new("A", 1), Fake::new("B", 2)])?;
        let v = c.versions();
        assert_eq!(v.get("A").map(String::as_str), Some("1.0"));
        assert_eq!(v.len(), 2);
        Ok(())
    }

    #[test]
    fn new_cyclic_hands_managers_a_handle_to_their_chain() -> HardwareResult<()> {
        let mut handle = None;
        let chain = Chain::new_cyclic(|me| {
            assert!(me.upgrade().is_none(), "no chain before construction ends");
            handle = Some(me.clone());
            vec![Arc::new(Fake::new("A", 1)) as Arc<dyn HardwareManager>]
        })?;
        let handle = handle.ok_or(HardwareError::NoManager)?;
        assert!(handle.upgrade().is_some_and(|c| Arc::ptr_eq(&c, &chain)));
        drop(chain);
        assert!(handle.upgrade().is_none());
        let none =
            Chain::new_cyclic(|_| vec![Arc::new(Fake::new("B", 0)) as Arc<dyn HardwareManager>]);
        assert!(matches!(none, Err(HardwareError::NoManager)));
        Ok(())
    }
}
