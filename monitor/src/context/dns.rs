//! The DNS names the rules compare `fd.sip.name` and its kin with, resolved with the
//! host's resolver and kept fresh, so that an event's address can be named. Falco
//! names addresses the same way: it resolves the names its rules mention rather than
//! watching DNS traffic.
//!
//! Resolution never holds an event up: it runs on threads of its own, a name at a
//! time per thread (an unreachable DNS server costs each lookup seconds), and an
//! address is named once a lookup has answered.
use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, ToSocketAddrs},
    sync::{Arc, Mutex, OnceLock, RwLock},
    thread,
    time::Duration,
};

/// How often each watched name is looked up again.
const REFRESH: Duration = Duration::from_secs(30);
/// Lookups under way at once.
const RESOLVERS: usize = 8;

#[derive(Default)]
struct Watched {
    names: Mutex<BTreeSet<String>>,
    /// Each address with the first watched name (in name order) that resolved to it.
    addresses: RwLock<HashMap<IpAddr, Arc<str>>>,
    started: OnceLock<()>,
}

fn watched() -> &'static Watched {
    static WATCHED: OnceLock<Watched> = OnceLock::new();
    WATCHED.get_or_init(Watched::default)
}

/// Adds names to resolve from now on (those already watched stay).
pub fn watch(names: impl IntoIterator<Item = String>) {
    let w = watched();
    let added = {
        let mut set = w.names.lock().unwrap_or_else(|e| e.into_inner());
        let before = set.len();
        set.extend(names);
        set.len() > before
    };
    if !added {
        return;
    }
    if w.started.set(()).is_ok() {
        let _ = thread::Builder::new().name("dns-names".into()).spawn(|| {
            loop {
                refresh();
                thread::sleep(REFRESH);
            }
        });
    } else {
        let _ = thread::Builder::new()
            .name("dns-names-added".into())
            .spawn(refresh);
    }
}

/// The watched name an address resolved from, if any.
pub fn name_of(ip: IpAddr) -> Option<Arc<str>> {
    let addresses = watched().addresses.read().ok()?;
    if addresses.is_empty() {
        return None;
    }
    addresses.get(&ip).cloned()
}

/// Looks every watched name up once, `RESOLVERS` at a time.
fn refresh() {
    let names: Vec<String> = {
        let set = watched().names.lock().unwrap_or_else(|e| e.into_inner());
        set.iter().cloned().collect()
    };
    let results: Vec<(Arc<str>, Vec<IpAddr>)> = names
        .chunks(names.len().div_ceil(RESOLVERS).max(1))
        .map(|chunk| {
            let chunk = chunk.to_vec();
            thread::spawn(move || {
                chunk
                    .into_iter()
                    .map(|name| {
                        let ips = (name.as_str(), 0)
                            .to_socket_addrs()
                            .map(|a| a.map(|s| s.ip()).collect())
                            .unwrap_or_default();
                        (Arc::<str>::from(name), ips)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    let mut fresh = HashMap::new();
    for (name, ips) in results {
        for ip in ips {
            fresh.entry(ip).or_insert_with(|| name.clone());
        }
    }
    if let Ok(mut addresses) = watched().addresses.write() {
        *addresses = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `localhost` resolves from /etc/hosts on every machine, without DNS.
    #[test]
    fn a_watched_name_names_its_addresses() {
        watch(["localhost".to_string()]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while name_of(IpAddr::from([127, 0, 0, 1])).is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "localhost never resolved"
            );
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            name_of(IpAddr::from([127, 0, 0, 1])).as_deref(),
            Some("localhost")
        );
        assert_eq!(name_of(IpAddr::from([192, 0, 2, 1])), None);
    }
}
