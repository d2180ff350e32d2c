//! The in-kernel denies (see `monitor_common::deny`): the cgroup programs that refuse
//! connects, attached to the cgroup v2 root while the agent runs, and their slots.
//!
//! The programs are never pinned: enforcement goes with the agent (fail-open), and a
//! recorder kept across restarts only records.
use std::path::Path;

use anyhow::{Context, Result};
use aya::{
    maps::Array,
    programs::{CgroupAttachMode, CgroupSockAddr},
};
use monitor_common::{DenySlot, deny, filter};

use super::filter::{replace_networks, replace_ports, set_active};
use crate::{responses::PlannedDeny, rules::kernel_filter::PortBound};

/// The programs, one per address family.
const PROGRAMS: [&str; 2] = ["deny_connect4", "deny_connect6"];

impl super::Sensor {
    /// Installs the deny slots: attaches the programs first when there are slots and
    /// they are not attached yet (to the cgroup v2 hierarchy at `cgroup_root`). The
    /// slots are written while none is active; the count of active slots goes last.
    pub fn set_denies(&mut self, denies: &[PlannedDeny], cgroup_root: Option<&Path>) -> Result<()> {
        set_active(&mut self.ebpf, "DENIES_ACTIVE", 0)?;
        if !denies.is_empty() && !self.denies_attached {
            let root = cgroup_root.context(
                "no cgroup v2 hierarchy is mounted, and the deny programs attach to its \
                 root (mount cgroup2, or run on a host with the unified or hybrid layout)",
            )?;
            self.attach_denies(root)?;
        }
        for index in 0..deny::SLOTS {
            let region = denies.get(index).map(|d| &d.region);
            let within = region.and_then(|r| r.within.as_deref()).unwrap_or_default();
            let excluded = region.map_or(&[][..], |r| &r.excluded);
            replace_networks(&mut self.ebpf, deny::within_mark(index), within)?;
            replace_networks(&mut self.ebpf, deny::excluded_mark(index), excluded)?;
            let ports = region.map_or(&PortBound::Any, |r| &r.ports);
            replace_ports(&mut self.ebpf, deny::port_mark(index), &[ports])?;
            let bounded = |yes: bool| if yes { deny::NETS_BOUNDED } else { 0 };
            let written = region.map_or_else(DenySlot::default, |region| DenySlot {
                active: 1,
                scopes: region.scopes,
                families: region.families,
                ports: match region.ports {
                    PortBound::Any => 0,
                    PortBound::Only(_) => filter::PORTS_ONLY,
                    PortBound::Except(_) => filter::PORTS_EXCEPT,
                },
                within: bounded(region.within.is_some()),
                excluded: bounded(!region.excluded.is_empty()),
            });
            let mut slots: Array<_, DenySlot> = Array::try_from(
                self.ebpf
                    .map_mut("DENY_SLOTS")
                    .context("map DENY_SLOTS missing")?,
            )?;
            slots.set(index as u32, written, 0)?;
        }
        set_active(
            &mut self.ebpf,
            "DENIES_ACTIVE",
            denies.len().min(deny::SLOTS) as u32,
        )
    }

    fn attach_denies(&mut self, root: &Path) -> Result<()> {
        let cgroup = std::fs::File::open(root)
            .with_context(|| format!("opening the cgroup v2 root {}", root.display()))?;
        for name in PROGRAMS {
            let program: &mut CgroupSockAddr = self
                .ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing"))?
                .try_into()?;
            program
                .load()
                .with_context(|| format!("loading {name} (cgroup sock_addr programs)"))?;
            // As a bpf link (Linux >= 5.7), which always sits beside the root's other
            // programs (systemd's, a CNI's: each must allow), and takes no mode flag:
            // `Single` is the one that passes none.
            program
                .attach(&cgroup, CgroupAttachMode::Single)
                .with_context(|| format!("attaching {name} to {}", root.display()))?;
        }
        self.denies_attached = true;
        tracing::info!(
            "deny programs attached to the cgroup v2 root {}",
            root.display()
        );
        Ok(())
    }
}
