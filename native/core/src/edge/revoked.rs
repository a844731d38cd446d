//! Playback sessions that ended before their signed URLs expired (stopped, or their account revoked): requests
//! with a token bound to one of them are refused. Each entry is kept until the session's tokens expire, after
//! which the token's own expiry refuses them, so the set holds only sessions ended within one token lifetime.
//! The set is bounded: when full, expired entries go first, then the tenth of the entries that expire soonest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::RwLock;

#[derive(Debug)]
pub struct RevokedSessions {
    /// Session id -> unix seconds at which its tokens expire.
    entries: RwLock<HashMap<String, u64>>,
    /// `entries.len()`, readable without the lock (the request path skips the lock while the set is empty).
    len: AtomicUsize,
    capacity: usize,
}

impl RevokedSessions {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `session_id` was revoked and its tokens may still be in use at `now`.
    pub fn contains(&self, session_id: &str, now: u64) -> bool {
        if self.is_empty() {
            return false;
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(session_id).is_some_and(|until| *until > now)
    }

    /// Records revoked sessions with the time their tokens expire; returns how many are held afterwards.
    pub fn revoke<I: IntoIterator<Item = (String, u64)>>(&self, sessions: I, now: u64) -> usize {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for (session_id, until) in sessions {
            if until <= now {
                continue; // its tokens have expired already
            }
            if entries.len() >= self.capacity && !entries.contains_key(&session_id) {
                make_room(&mut entries, self.capacity, now);
            }
            let kept = entries.entry(session_id).or_insert(until);
            *kept = (*kept).max(until);
        }
        self.len.store(entries.len(), Relaxed);
        entries.len()
    }
}

fn make_room(entries: &mut HashMap<String, u64>, capacity: usize, now: u64) {
    entries.retain(|_, until| *until > now);
    if entries.len() < capacity {
        return;
    }
    let mut untils: Vec<u64> = entries.values().copied().collect();
    let k = (untils.len() / 10).max(1) - 1;
    let (_, cutoff, _) = untils.select_nth_unstable(k);
    let cutoff = *cutoff;
    entries.retain(|_, until| *until > cutoff);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_with_their_tokens_and_the_set_stays_bounded() {
        let set = RevokedSessions::new(20);
        assert!(!set.contains("s1", 0));
        set.revoke([("s1".to_owned(), 100), ("old".to_owned(), 5)], 10);
        assert!(set.contains("s1", 99));
        assert!(
            !set.contains("s1", 100),
            "its tokens expired: the entry is moot"
        );
        assert!(!set.contains("old", 10), "already expired when revoked");
        assert_eq!(set.len(), 1);
        set.revoke((0..100).map(|i| (format!("x{i}"), 1000 + i)), 10);
        assert!(set.len() <= 20);
        assert!(
            set.contains("x99", 10),
            "the entries expiring last are kept"
        );
        assert!(!set.contains("s1", 10), "the soonest to expire made room");
    }
}
