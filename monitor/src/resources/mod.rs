//! Containers' use of CPU, memory and pids, from their cgroups: a library the daemon
//! samples on its own schedule.
//!
//! Data flows: [`mounts`] finds where the host mounts its cgroup hierarchies (v1, v2
//! or both); [`cgroup`] finds one container's directories from one of its processes
//! and reads a raw [`Sample`]; [`usage`] turns two samples into [`Usage`] and keeps a
//! container's history; [`window`] gives means over the last 1 and 5 minutes.
//!
//! Cost: a container's directories are found once ([`ContainerCgroups`]), so a
//! sample reads 8 (v2) or 9 (v1) small files and walks no directory.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use monitor::{context::host::HostRoot, resources::*};
//!
//! let host = HostRoot::new("/host");
//! let mounts = CgroupMounts::discover(&host);
//! let cgroups = ContainerCgroups::of_pid(&host, &mounts, 4242).unwrap_or_default();
//! let mut container = ContainerResources::new(cgroups);
//! container.tick(Instant::now());
//! std::thread::sleep(Duration::from_secs(10));
//! let usage = container.tick(Instant::now());
//! let cores = container.history.means(Measure::Cores, usage.at);
//! println!("{:?} cores now, {:?} over a minute", usage.cores, cores.last_minute);
//! ```
pub mod cgroup;
pub mod mounts;
pub mod usage;
pub mod window;

pub use cgroup::{ContainerCgroups, ControllerDir, Limit, Sample};
pub use mounts::{CgroupMount, CgroupMounts, Layout, Version};
pub use usage::{ContainerResources, Usage};
pub use window::{History, Means, Measure, Window};
