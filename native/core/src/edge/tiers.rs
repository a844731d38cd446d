//! The two cache tiers: objects in memory, and objects in files that survive a restart. Each is bounded in bytes
//! by its own eviction policy; the memory tier is filled from upstream and from disk hits.
//!
//! Disk files are named by the SHA-256 of the key and start with a small header (magic, ETag, key) so the index
//! can be rebuilt by scanning the directory. A file is written under a temporary name and renamed into place,
//! so a crash never leaves a torn object that looks whole.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::policy::{new_policy, Eviction, PolicyKind};

/// A cached object.
#[derive(Debug, Clone)]
pub struct Object {
    pub body: Bytes,
    pub etag: Arc<str>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Values by key, bounded in bytes by an eviction policy: the bookkeeping both tiers share.
struct Bounded<V> {
    map: HashMap<Arc<str>, V>,
    policy: Box<dyn Eviction<Arc<str>> + Send>,
}

impl<V: Clone> Bounded<V> {
    fn new(kind: PolicyKind, capacity: u64) -> Self {
        Self {
            map: HashMap::new(),
            policy: new_policy(kind, capacity),
        }
    }

    /// The value of `key`, counted as a hit.
    fn get(&mut self, key: &str) -> Option<V> {
        let (k, v) = self.map.get_key_value(key)?;
        let (k, v) = (Arc::clone(k), v.clone());
        self.policy.hit(&k);
        Some(v)
    }

    /// Admits `key` unless it is held; returns the keys evicted to make room (possibly `key` itself).
    fn insert(&mut self, key: Arc<str>, value: V, size: u64) -> Vec<Arc<str>> {
        if self.map.contains_key(&key) {
            return Vec::new();
        }
        self.map.insert(Arc::clone(&key), value);
        let evicted = self.policy.insert(key, size);
        for k in &evicted {
            self.map.remove(k);
        }
        evicted
    }

    fn remove(&mut self, key: &str) {
        if let Some((k, _)) = self.map.remove_entry(key) {
            self.policy.remove(&k);
        }
    }

    /// Drops every key starting with `prefix`; returns them.
    fn purge(&mut self, prefix: &str) -> Vec<Arc<str>> {
        let gone: Vec<Arc<str>> = self
            .map
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for k in &gone {
            self.remove(k);
        }
        gone
    }

    /// (bytes used, objects, capacity).
    fn usage(&self) -> (u64, u64, u64) {
        (
            self.policy.used(),
            self.policy.len() as u64,
            self.policy.capacity(),
        )
    }
}

pub struct MemoryTier {
    inner: Mutex<Bounded<Object>>,
}

impl MemoryTier {
    pub fn new(kind: PolicyKind, capacity: u64) -> Self {
        Self {
            inner: Mutex::new(Bounded::new(kind, capacity)),
        }
    }

    pub fn get(&self, key: &str) -> Option<Object> {
        lock(&self.inner).get(key)
    }

    /// Admits an object; returns how many were evicted.
    pub fn insert(&self, key: Arc<str>, obj: Object) -> u64 {
        let size = obj.body.len() as u64;
        lock(&self.inner).insert(key, obj, size).len() as u64
    }

    pub fn purge(&self, prefix: &str) -> u64 {
        lock(&self.inner).purge(prefix).len() as u64
    }

    /// (bytes used, objects, capacity).
    pub fn usage(&self) -> (u64, u64, u64) {
        lock(&self.inner).usage()
    }

    pub fn sizes(&self) -> Vec<(Arc<str>, u64)> {
        let inner = lock(&self.inner);
        inner
            .map
            .iter()
            .map(|(k, o)| (Arc::clone(k), o.body.len() as u64))
            .collect()
    }
}

const MAGIC: &[u8] = b"MQCACHE1\n";
const MAX_HEADER: usize = 4096;
const TMP_SUFFIX: &str = ".tmp";

#[derive(Clone)]
struct DiskEntry {
    size: u64,
    etag: Arc<str>,
}

pub struct DiskTier {
    dir: PathBuf,
    inner: Mutex<Bounded<DiskEntry>>,
}

fn file_name(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// (etag, key, header length) of a cache file.
fn read_header(path: &Path) -> Option<(String, String, u64)> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = std::io::BufReader::with_capacity(MAX_HEADER, file);
    let mut magic = Vec::new();
    reader.read_until(b'\n', &mut magic).ok()?;
    if magic != MAGIC {
        return None;
    }
    let mut etag = String::new();
    let mut key = String::new();
    reader.read_line(&mut etag).ok()?;
    reader.read_line(&mut key).ok()?;
    let header_len = MAGIC.len() + etag.len() + key.len();
    if header_len > MAX_HEADER || !etag.ends_with('\n') || !key.ends_with('\n') {
        return None;
    }
    Some((
        etag.trim_end().to_owned(),
        key.trim_end().to_owned(),
        header_len as u64,
    ))
}

impl DiskTier {
    /// Opens (creating) the directory and rebuilds the index from the files there. Unreadable or foreign files
    /// and leftovers of interrupted writes are removed; files beyond the capacity are evicted.
    pub fn open(dir: &Path, kind: PolicyKind, capacity: u64) -> std::io::Result<(Self, u64)> {
        std::fs::create_dir_all(dir)?;
        let mut index = Bounded::new(kind, capacity);
        let mut evicted = 0;
        for item in std::fs::read_dir(dir)? {
            let path = item?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let parsed = if name.ends_with(TMP_SUFFIX) {
                None
            } else {
                read_header(&path)
            };
            let Some((etag, key, header_len)) = parsed.filter(|(_, key, _)| file_name(key) == name)
            else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            let size = std::fs::metadata(&path)?.len().saturating_sub(header_len);
            let entry = DiskEntry {
                size,
                etag: etag.into(),
            };
            for gone in index.insert(key.into(), entry, size) {
                let _ = std::fs::remove_file(dir.join(file_name(&gone)));
                evicted += 1;
            }
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                inner: Mutex::new(index),
            },
            evicted,
        ))
    }

    pub fn contains(&self, key: &str) -> bool {
        lock(&self.inner).map.contains_key(key)
    }

    pub async fn get(&self, key: &str) -> Option<Object> {
        let etag = lock(&self.inner).get(key)?.etag;
        let path = self.dir.join(file_name(key));
        match tokio::fs::read(&path).await {
            Ok(data) => {
                let header_len = MAGIC.len() + etag.len() + 1 + key.len() + 1;
                if data.len() < header_len || !data.starts_with(MAGIC) {
                    self.forget(key);
                    return None;
                }
                let body = Bytes::from(data).slice(header_len..);
                Some(Object { body, etag })
            }
            Err(_) => {
                self.forget(key);
                None
            }
        }
    }

    fn forget(&self, key: &str) {
        lock(&self.inner).remove(key);
    }

    /// Writes an object (blocking: call from a blocking thread) and admits it; returns how many were evicted.
    pub fn put(&self, key: Arc<str>, obj: &Object) -> std::io::Result<u64> {
        if self.contains(&key) {
            return Ok(0);
        }
        let name = file_name(&key);
        let tmp = self
            .dir
            .join(format!("{name}.{}{TMP_SUFFIX}", std::process::id()));
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            f.write_all(MAGIC)?;
            writeln!(f, "{}", obj.etag)?;
            writeln!(f, "{key}")?;
            f.write_all(&obj.body)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_data()?;
        }
        std::fs::rename(&tmp, self.dir.join(&name))?;
        let size = obj.body.len() as u64;
        let entry = DiskEntry {
            size,
            etag: Arc::clone(&obj.etag),
        };
        let evicted = lock(&self.inner).insert(key, entry, size);
        for k in &evicted {
            let _ = std::fs::remove_file(self.dir.join(file_name(k)));
        }
        Ok(evicted.len() as u64)
    }

    pub fn purge(&self, prefix: &str) -> u64 {
        let gone = lock(&self.inner).purge(prefix);
        for k in &gone {
            let _ = std::fs::remove_file(self.dir.join(file_name(k)));
        }
        gone.len() as u64
    }

    pub fn usage(&self) -> (u64, u64, u64) {
        lock(&self.inner).usage()
    }

    pub fn sizes(&self) -> Vec<(Arc<str>, u64)> {
        let inner = lock(&self.inner);
        inner
            .map
            .iter()
            .map(|(k, e)| (Arc::clone(k), e.size))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obj(n: usize) -> Object {
        Object {
            body: Bytes::from(vec![7u8; n]),
            etag: "\"x\"".into(),
        }
    }

    #[tokio::test]
    async fn disk_tier_survives_reopen_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (disk, _) = DiskTier::open(dir.path(), PolicyKind::S3fifo, 1000).unwrap();
        for i in 0..20 {
            disk.put(format!("t/r/seg-{i}.m4s").into(), &obj(100))
                .unwrap();
            assert!(disk.usage().0 <= 1000);
        }
        let held: Vec<_> = disk.sizes().into_iter().map(|(k, _)| k).collect();
        assert!(!held.is_empty() && held.len() <= 10);
        std::fs::write(dir.path().join("junk"), b"nope").unwrap();
        drop(disk);
        let (again, _) = DiskTier::open(dir.path(), PolicyKind::S3fifo, 1000).unwrap();
        assert_eq!(again.usage().1 as usize, held.len());
        let got = again.get(&held[0]).await.unwrap();
        assert_eq!(got.body.len(), 100);
        assert_eq!(&*got.etag, "\"x\"");
        assert!(!dir.path().join("junk").exists());
        assert_eq!(again.purge("t/"), held.len() as u64);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
