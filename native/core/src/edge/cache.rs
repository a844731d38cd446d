//! The lookup path: memory tier, then disk tier, then one coalesced upstream fetch per key.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use super::config::EdgeConfig;
use super::fill::{FetchError, Fill};
use super::path::title_of;
use super::stats::Stats;
use super::tiers::{DiskTier, MemoryTier, Object};
use super::upstream::Upstream;

/// Where an answer comes from.
pub enum Lookup {
    Memory(Object),
    Disk(Object),
    /// A fill; `leader` is true for the request that started it.
    Fill {
        fill: Arc<Fill>,
        leader: bool,
    },
}

pub struct Cache {
    memory: MemoryTier,
    disk: Option<Arc<DiskTier>>,
    inflight: Mutex<HashMap<Arc<str>, Arc<Fill>>>,
    upstream: Arc<Upstream>,
    stats: Arc<Stats>,
    max_object: u64,
    /// Disk writes in flight, awaited by [`Cache::flush`] so a graceful stop loses none.
    writes: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Cache {
    pub fn new(config: &EdgeConfig, stats: Arc<Stats>) -> crate::Result<Self> {
        let disk = match (&config.disk_dir, config.disk_bytes) {
            (Some(dir), bytes) if bytes > 0 => {
                let (tier, evicted) = DiskTier::open(dir.as_ref(), config.policy, bytes)
                    .map_err(|e| crate::Error::Io(format!("disk tier {dir}: {e}")))?;
                stats.evictions_disk.fetch_add(evicted, Relaxed);
                Some(Arc::new(tier))
            }
            _ => None,
        };
        Ok(Self {
            memory: MemoryTier::new(config.policy, config.memory_bytes),
            disk,
            inflight: Mutex::new(HashMap::new()),
            upstream: Arc::new(Upstream::new(config)?),
            stats,
            max_object: config.max_object_bytes,
            writes: Mutex::new(Vec::new()),
        })
    }

    pub async fn lookup(self: &Arc<Self>, key: &str) -> Lookup {
        if let Some(obj) = self.memory.get(key) {
            return Lookup::Memory(obj);
        }
        if let Some(disk) = &self.disk {
            if let Some(obj) = disk.get(key).await {
                let evicted = self.memory.insert(key.into(), obj.clone());
                self.stats.evictions_memory.fetch_add(evicted, Relaxed);
                return Lookup::Disk(obj);
            }
        }
        let (fill, leader) = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(fill) = inflight.get(key) {
                (Arc::clone(fill), false)
            } else {
                // a fill that completed since the memory check has already stored its object
                if let Some(obj) = self.memory.get(key) {
                    return Lookup::Memory(obj);
                }
                let fill = Arc::new(Fill::default());
                inflight.insert(key.into(), Arc::clone(&fill));
                (fill, true)
            }
        };
        if leader {
            tokio::spawn(Arc::clone(self).run_fill(key.into(), Arc::clone(&fill)));
        }
        Lookup::Fill { fill, leader }
    }

    /// The whole body and ETag of `key`, through the cache (filling it when missing).
    pub async fn body(self: &Arc<Self>, key: &str) -> Result<(bytes::Bytes, Arc<str>), FetchError> {
        match self.lookup(key).await {
            Lookup::Memory(o) | Lookup::Disk(o) => Ok((o.body, o.etag)),
            Lookup::Fill { fill, .. } => {
                let head = fill.head().await?;
                let chunks: Vec<bytes::Bytes> = futures_util::TryStreamExt::try_collect(
                    Arc::clone(&fill).stream(0, head.len.saturating_sub(1)),
                )
                .await
                .map_err(|e| FetchError::Upstream(e.to_string()))?;
                Ok((chunks.concat().into(), head.etag))
            }
        }
    }

    /// Fetches one object, stores it in the tiers, and retires the fill.
    async fn run_fill(self: Arc<Self>, key: Arc<str>, fill: Arc<Fill>) {
        self.stats.upstream_fetches.fetch_add(1, Relaxed);
        let fetched = self.upstream.fetch(&key, &fill, &self.stats).await;
        let outcome = fill.verify(fetched);
        if outcome.is_ok() {
            let body = fill.assemble();
            if (body.len() as u64) <= self.max_object {
                let etag = fill.head().await.map_or_else(|_| "\"\"".into(), |h| h.etag);
                let obj = Object { body, etag };
                // stored (memory) and queued (disk) before waiters see the last byte: whoever asks next is a
                // hit, and a graceful stop right after the response still writes the file
                let evicted = self.memory.insert(Arc::clone(&key), obj.clone());
                self.stats.evictions_memory.fetch_add(evicted, Relaxed);
                self.write_to_disk(Arc::clone(&key), obj);
            }
        } else {
            self.stats.upstream_errors.fetch_add(1, Relaxed);
        }
        fill.finish(outcome);
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// Writes an object to the disk tier off the runtime's threads (memory already answers meanwhile).
    fn write_to_disk(&self, key: Arc<str>, obj: Object) {
        let Some(disk) = &self.disk else {
            return;
        };
        let (disk, stats) = (Arc::clone(disk), Arc::clone(&self.stats));
        let write = tokio::task::spawn_blocking(move || {
            if let Ok(evicted) = disk.put(key, &obj) {
                stats.evictions_disk.fetch_add(evicted, Relaxed);
            }
        });
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        writes.retain(|w| !w.is_finished());
        writes.push(write);
    }

    /// Waits for the disk writes in flight.
    pub async fn flush(&self) {
        let writes = std::mem::take(&mut *self.writes.lock().unwrap_or_else(|p| p.into_inner()));
        for write in writes {
            let _ = write.await;
        }
    }

    /// Drops every cached object whose key starts with `prefix` from both tiers; returns how many.
    pub fn purge(&self, prefix: &str) -> u64 {
        self.memory.purge(prefix) + self.disk.as_ref().map_or(0, |d| d.purge(prefix))
    }

    /// (used, objects, capacity) of the memory tier and of the disk tier (zeros when there is none).
    pub fn usage(&self) -> [(u64, u64, u64); 2] {
        [
            self.memory.usage(),
            self.disk.as_ref().map_or((0, 0, 0), |d| d.usage()),
        ]
    }

    /// Bytes cached per title over both tiers (an object in both counts once).
    pub fn titles(&self) -> BTreeMap<String, u64> {
        let mut keys: HashMap<Arc<str>, u64> = self.memory.sizes().into_iter().collect();
        if let Some(disk) = &self.disk {
            keys.extend(disk.sizes());
        }
        let mut titles = BTreeMap::new();
        for (k, size) in keys {
            *titles.entry(title_of(&k).to_owned()).or_insert(0) += size;
        }
        titles
    }
}
