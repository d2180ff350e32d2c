//! Learned behaviour profiles per workload.
//!
//! Data flows: a container's metadata names its workload (`workload`); the event
//! pipeline reports what the workload does to `store::Profiles`, which learns it
//! into the workload's `profile::Profile` while the learning window is open and
//! answers `Verdict::New` for what the frozen profile lacks; `disk` keeps the
//! profiles in the state directory, where `monitor profiles` (commands::profiles)
//! lists, shows, resets and freezes them; `fleet` shares them with the other nodes
//! through NATS JetStream.
pub mod disk;
pub mod fleet;
pub mod learner;
pub mod profile;
pub mod store;
pub mod workload;

pub use profile::{Destination, HostBuf, Profile, Proto, host_key, is_unprofiled_dir};
pub use store::{DEFAULT_STATE_DIR, Profiles, ProfilesConfig, ProfilesStats, Verdict};
pub use workload::{WorkloadId, WorkloadKind, workload_of};
