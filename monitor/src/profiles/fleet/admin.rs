//! `monitor profiles --fleet`: the fleet's profiles read, frozen and reset in the
//! store itself; every agent watching a workload follows within moments.
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use async_nats::jetstream::{self, kv::Store};
use futures_util::StreamExt;

use super::{
    FleetConfig,
    client::{self, update_state},
    keys::{self, Fact, FleetState},
};
use crate::profiles::{Profiles, ProfilesConfig, WorkloadId, disk::StoredProfile};

/// How long the command waits for the store before it gives up.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

pub struct FleetAdmin {
    store: Store,
}

impl FleetAdmin {
    pub async fn connect(config: &FleetConfig) -> Result<FleetAdmin> {
        let options = client::options(config).await?;
        let servers: Vec<&str> = config.url.split(',').map(str::trim).collect();
        let unreachable = || {
            format!(
                "cannot reach the fleet store at {} (profiles.fleet.url, --fleet-url); \
                 is NATS running there with JetStream?",
                config.url
            )
        };
        let client = tokio::time::timeout(CONNECT_WITHIN, options.connect(servers.as_slice()))
            .await
            .map_err(|_| anyhow!(unreachable()))?
            .with_context(unreachable)?;
        let js = jetstream::new(client);
        let store = tokio::time::timeout(CONNECT_WITHIN, client::open_bucket(&js, config))
            .await
            .map_err(|_| anyhow!(unreachable()))??;
        Ok(FleetAdmin { store })
    }

    /// Every fact under `filter`, as the store holds them now.
    async fn facts(&self, filter: &str) -> Result<Vec<(String, Fact)>> {
        let mut out = Vec::new();
        let mut watch = self
            .store
            .watch_with_history(filter)
            .await
            .context("reading the fleet store")?;
        loop {
            // An empty filter yields nothing at all, so silence ends the read too.
            let next = match tokio::time::timeout(Duration::from_secs(2), watch.next()).await {
                Ok(Some(next)) => next.context("reading the fleet store")?,
                _ => break,
            };
            if next.operation == jetstream::kv::Operation::Put
                && let Some(fact) = keys::parse(&next.key, &next.value)
            {
                out.push((next.key.clone(), fact));
            }
            if next.seen_current {
                break;
            }
        }
        Ok(out)
    }

    /// The fleet's profiles (all, or the one of `only`), merged as an agent merges
    /// them, in the form of the state directory's files.
    pub async fn profiles(
        &self,
        only: Option<&WorkloadId>,
        config: &ProfilesConfig,
    ) -> Result<Vec<(WorkloadId, StoredProfile)>> {
        if let Some(w) = only
            && self.store.entry(keys::state_key(w)).await?.is_none()
        {
            return Ok(Vec::new());
        }
        let filter = only.map_or_else(|| "wl.>".to_string(), keys::workload_filter);
        let facts = self.facts(&filter).await?;
        // Facts name their workload by hash; the state keys give the names.
        let mut names = std::collections::HashMap::new();
        for (key, fact) in &facts {
            if let Fact::State(state) = fact
                && let Ok(id) = state.workload.parse::<WorkloadId>()
            {
                names.insert(workload_hash(key).to_string(), id);
            }
        }
        let mut merged = Profiles::open(ProfilesConfig {
            state_dir: None,
            fleet: None,
            max_profiles: usize::MAX,
            ..config.clone()
        });
        for (key, fact) in &facts {
            if let Some(id) = names.get(workload_hash(key)) {
                merged.merge_fleet(id, fact);
            }
        }
        let mut out: Vec<(WorkloadId, StoredProfile)> = merged
            .workloads()
            .filter_map(|id| {
                let p = merged.profile(id)?;
                Some((id.clone(), StoredProfile::from_profile(id, p)))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Every workload the fleet has a profile of.
    pub async fn workloads(&self, config: &ProfilesConfig) -> Result<Vec<WorkloadId>> {
        Ok(self
            .profiles(None, config)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Stops learning fleet-wide; `false` when it was frozen already.
    pub async fn freeze(&self, w: &WorkloadId) -> Result<bool> {
        let written = update_state(&self.store, w, |state| {
            (!state.frozen).then(|| FleetState {
                frozen: true,
                ..state.clone()
            })
        })
        .await?;
        Ok(written.is_some())
    }

    /// Starts the workload over fleet-wide: a new generation, learning; the facts of
    /// the old one are purged. Returns the new generation and the facts purged.
    pub async fn reset(&self, w: &WorkloadId) -> Result<(u64, usize)> {
        let written = update_state(&self.store, w, |state| {
            Some(FleetState {
                workload: w.to_string(),
                generation: state.generation + 1,
                frozen: false,
            })
        })
        .await?
        .ok_or_else(|| anyhow!("the state of {w} did not change"))?;
        let mut purged = 0;
        for (key, fact) in self.facts(&keys::workload_filter(w)).await? {
            let old = match fact {
                Fact::Entry { generation, .. } | Fact::Runtime { generation, .. } => {
                    generation < written.generation
                }
                Fact::State(_) => false,
            };
            if old {
                self.store
                    .purge(&key)
                    .await
                    .with_context(|| format!("purging {key}"))?;
                purged += 1;
            }
        }
        Ok((written.generation, purged))
    }
}

/// `wl.<hash>` of a key.
fn workload_hash(key: &str) -> &str {
    key.split('.').nth(1).unwrap_or("")
}

/// Runs one fleet command to completion from synchronous code.
pub fn block_on<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(work)
}

/// The fleet settings, or what to set.
pub fn required(config: Option<&FleetConfig>) -> Result<&FleetConfig> {
    match config {
        Some(config) => Ok(config),
        None => bail!(
            "--fleet needs the fleet store: pass --fleet-url nats://HOST:4222 or set \
             profiles.fleet.url in the settings"
        ),
    }
}
