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

struct MemoryInner {
    objects: HashMap<Arc<str>, Object>,
    policy: Box<dyn Eviction<Arc<str>> + Send>,
}

pub struct MemoryTier {
    inner: Mutex<MemoryInner>,
}

impl MemoryTier {
    pub fn new(kind: PolicyKind, capacity: u64) -> Self {
        Self {
            inner: Mutex::new(MemoryInner {
                objects: HashMap::new(),
                policy: new_policy(kind, capacity),
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<Object> {
        let mut inner = lock(&self.inner);
        let (k, obj) = inner.objects.get_key_value(key)?;
        let (k, obj) = (Arc::clone(k), obj.clone());
        inner.policy.hit(&k);
        Some(obj)
    }

    /// Admits an object; returns how many were evicted.
    pub fn insert(&self, key: Arc<str>, obj: Object) -> u64 {
        let mut inner = lock(&self.inner);
        if inner.objects.contains_key(&key) {
            return 0;
        }
        let size = obj.body.len() as u64;
        inner.objects.insert(Arc::clone(&key), obj);
        let evicted = inner.policy.insert(key, size);
        for k in &evicted {
            inner.objects.remove(k);
        }
        evicted.len() as u64
    }

    pub fn purge(&self, prefix: &str) -> u64 {
        let mut inner = lock(&self.inner);
        let gone: Vec<Arc<str>> = inner
            .objects
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for k in &gone {
            inner.objects.remove(k);
            inner.policy.remove(k);
        }
        gone.len() as u64
    }

    /// (bytes used, objects, capacity).
    pub fn usage(&self) -> (u64, u64, u64) {
        let inner = lock(&self.inner);
        (
            inner.policy.used(),
            inner.policy.len() as u64,
            inner.policy.capacity(),
        )
    }

    pub fn sizes(&self) -> Vec<(Arc<str>, u64)> {
        let inner = lock(&self.inner);
        inner
            .objects
            .iter()
            .map(|(k, o)| (Arc::clone(k), o.body.len() as u64))
            .collect()
    }
}

const MAGIC: &[u8] = b"MQCACHE1\n";
const MAX_HEADER: usize = 4096;
const TMP_SUFFIX: &str = ".tmp";

struct DiskEntry {
    size: u64,
    etag: Arc<str>,
}

struct DiskInner {
    entries: HashMap<Arc<str>, DiskEntry>,
    policy: Box<dyn Eviction<Arc<str>> + Send>,
}

pub struct DiskTier {
    dir: PathBuf,
    inner: Mutex<DiskInner>,
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
        let mut entries = HashMap::new();
        let mut policy = new_policy::<Arc<str>>(kind, capacity);
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
            let key: Arc<str> = key.into();
            entries.insert(
                Arc::clone(&key),
                DiskEntry {
                    size,
                    etag: etag.into(),
                },
            );
            for gone in policy.insert(key, size) {
                entries.remove(&gone);
                let _ = std::fs::remove_file(dir.join(file_name(&gone)));
                evicted += 1;
            }
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                inner: Mutex::new(DiskInner { entries, policy }),
            },
            evicted,
        ))
    }

    pub fn contains(&self, key: &str) -> bool {
        lock(&self.inner).entries.contains_key(key)
    }

    pub async fn get(&self, key: &str) -> Option<Object> {
        let etag = {
            let mut inner = lock(&self.inner);
            let (k, e) = inner.entries.get_key_value(key)?;
            let (k, etag) = (Arc::clone(k), Arc::clone(&e.etag));
            inner.policy.hit(&k);
            etag
        };
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
        let mut inner = lock(&self.inner);
        if let Some((k, _)) = inner.entries.remove_entry(key) {
            inner.policy.remove(&k);
        }
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
        let mut inner = lock(&self.inner);
        let size = obj.body.len() as u64;
        inner.entries.insert(
            Arc::clone(&key),
            DiskEntry {
                size,
                etag: Arc::clone(&obj.etag),
            },
        );
        let evicted = inner.policy.insert(key, size);
        for k in &evicted {
            inner.entries.remove(k);
            let _ = std::fs::remove_file(self.dir.join(file_name(k)));
        }
        Ok(evicted.len() as u64)
    }

    pub fn purge(&self, prefix: &str) -> u64 {
        let mut inner = lock(&self.inner);
        let gone: Vec<Arc<str>> = inner
            .entries
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for k in &gone {
            inner.entries.remove(k);
            inner.policy.remove(k);
            let _ = std::fs::remove_file(self.dir.join(file_name(k)));
        }
        gone.len() as u64
    }

    pub fn usage(&self) -> (u64, u64, u64) {
        let inner = lock(&self.inner);
        (
            inner.policy.used(),
            inner.policy.len() as u64,
            inner.policy.capacity(),
        )
    }

    pub fn sizes(&self) -> Vec<(Arc<str>, u64)> {
        let inner = lock(&self.inner);
        inner
            .entries
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
