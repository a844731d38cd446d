//! What the Python servicer has admitted to the fast path: access tokens it verified and playback sessions it
//! served, each with exactly what the fast path needs to answer a position report as the servicer would. The
//! fast path never decides anything the servicer has not: an entry missing, expired or not matching declines
//! the call to the servicer, which then decides (and, when it serves the call, admits again).

use std::collections::HashMap;
use std::sync::Mutex;

/// A verified access token: whose it is, what the deny list checks, and until when it is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenGrant {
    pub account_id: String,
    pub profile_id: String,
    /// The sign-in session (`sid`), `None` for a token without one.
    pub session_id: Option<String>,
    /// `iat`, unix seconds with millisecond precision (an account-wide revocation compares with it).
    pub issued_at: f64,
    /// `exp` plus the verifier's leeway, unix seconds: the token is refused from then on.
    pub valid_until: f64,
}

/// A live playback session, as of the servicer's last answer for it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionGrant {
    pub account_id: String,
    pub profile_id: String,
    pub title_id: String,
    pub runtime_ms: i64,
    pub region: String,
    /// The lease's end (unix microseconds): answered as `expire_time`.
    pub expire_micros: i64,
    /// From then on (unix microseconds) the lease is due for extension, which only the servicer does.
    pub renew_micros: i64,
    /// The session's signed URL token for this lease.
    pub url_token: String,
}

/// Both tables, bounded: when one is full it is emptied (its entries are only a cache of the servicer's
/// decisions, so forgetting them costs one call each through the servicer).
pub struct Admitted {
    capacity: usize,
    tokens: Mutex<HashMap<String, TokenGrant>>,
    sessions: Mutex<HashMap<String, SessionGrant>>,
}

fn insert<V>(table: &Mutex<HashMap<String, V>>, capacity: usize, key: String, value: V) {
    let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
    if table.len() >= capacity && !table.contains_key(&key) {
        table.clear();
    }
    table.insert(key, value);
}

impl Admitted {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tokens: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    pub fn admit_token(&self, token: String, grant: TokenGrant) {
        insert(&self.tokens, self.capacity, token, grant);
    }

    pub fn admit_session(&self, session_id: String, grant: SessionGrant) {
        insert(&self.sessions, self.capacity, session_id, grant);
    }

    pub fn forget_session(&self, session_id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session_id);
    }

    /// The token's grant while it is valid at `now` (unix seconds); an expired one is dropped.
    pub fn token(&self, token: &str, now: f64) -> Option<TokenGrant> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let grant = tokens.get(token)?;
        if now < grant.valid_until {
            return Some(grant.clone());
        }
        tokens.remove(token);
        None
    }

    pub fn session(&self, session_id: &str) -> Option<SessionGrant> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session_id)
            .cloned()
    }

    /// (tokens, sessions) held.
    pub fn len(&self) -> (usize, usize) {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).len();
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        (tokens, sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(valid_until: f64) -> TokenGrant {
        TokenGrant {
            account_id: "a".into(),
            profile_id: "p".into(),
            session_id: None,
            issued_at: 1.0,
            valid_until,
        }
    }

    #[test]
    fn a_token_is_served_until_it_expires_and_then_dropped() {
        let admitted = Admitted::new(10);
        admitted.admit_token("t".into(), grant(100.0));
        assert!(admitted.token("t", 99.9).is_some());
        assert!(admitted.token("t", 100.0).is_none());
        assert_eq!(admitted.len().0, 0);
    }

    #[test]
    fn a_full_table_is_emptied_before_a_new_entry() {
        let admitted = Admitted::new(2);
        for t in ["a", "b", "c"] {
            admitted.admit_token(t.into(), grant(100.0));
        }
        assert_eq!(admitted.len().0, 1);
        assert!(admitted.token("c", 1.0).is_some());
    }
}
