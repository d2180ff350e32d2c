//! Learned behaviour profiles per workload.
//!
//! Data flows: a container's metadata names its workload (`workload`); the event
//! pipeline reports what the workload does to the workload's `profile::Profile`.
pub mod profile;
pub mod workload;

pub use profile::{Destination, HostBuf, Profile, Proto, host_key, is_unprofiled_dir};
pub use workload::{WorkloadId, WorkloadKind, workload_of};
