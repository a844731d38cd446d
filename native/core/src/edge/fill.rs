//! Request coalescing: one upstream fetch per missing object, its bytes streamed to every waiter as they arrive.
//!
//! The fetch task (not any one request) owns the fill, so a client that disconnects cannot cancel it for the
//! others. Waiters read the chunks received so far and then wait on a watch channel for more; a waiter that joins
//! late starts from the first chunk, so every waiter gets the whole object.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

/// What the upstream said about the object, known before its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub len: u64,
    pub etag: Arc<str>,
}

/// Why a fill failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The upstream does not have the object: 404.
    NotFound,
    /// The upstream did not answer in time: 504.
    Timeout,
    /// The upstream failed or sent something unusable: 502.
    Upstream(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => write!(f, "not found upstream"),
            Self::Timeout => write!(f, "upstream timed out"),
            Self::Upstream(m) => write!(f, "upstream failed: {m}"),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    head: Option<Head>,
    chunks: Vec<Bytes>,
    received: u64,
    /// `Some(Ok)` when every byte arrived, `Some(Err)` when the fill failed.
    outcome: Option<Result<(), FetchError>>,
}

/// One object being fetched.
#[derive(Debug)]
pub struct Fill {
    state: Mutex<State>,
    version: watch::Sender<u64>,
}

impl Default for Fill {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::default()),
            version: watch::channel(0).0,
        }
    }
}

impl Fill {
    fn lock(&self) -> MutexGuard<'_, State> {
        // a panicking holder cannot leave the state half-written: every update is a single assignment or push
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    pub fn set_head(&self, head: Head) {
        self.lock().head = Some(head);
        self.bump();
    }

    pub fn push(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        {
            let mut s = self.lock();
            s.received += chunk.len() as u64;
            s.chunks.push(chunk);
        }
        self.bump();
    }

    /// The outcome `fetched` amounts to: a success whose byte count does not match the announced length, or
    /// without a head, is a failure.
    pub fn verify(&self, fetched: Result<(), FetchError>) -> Result<(), FetchError> {
        let s = self.lock();
        match (fetched, &s.head) {
            (Ok(()), Some(h)) if h.len != s.received => Err(FetchError::Upstream(format!(
                "short body: {} of {} bytes",
                s.received, h.len
            ))),
            (Ok(()), None) => Err(FetchError::Upstream("no response head".into())),
            (other, _) => other,
        }
    }

    /// Ends the fill (after [`Fill::verify`]); waiters see the last bytes, or the error, only now.
    pub fn finish(&self, outcome: Result<(), FetchError>) {
        self.lock().outcome = Some(outcome);
        self.bump();
    }

    /// Every byte received, as one contiguous buffer (for the cache tiers).
    pub fn assemble(&self) -> Bytes {
        let s = self.lock();
        match s.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut all = Vec::with_capacity(usize::try_from(s.received).unwrap_or(0));
                for c in many {
                    all.extend_from_slice(c);
                }
                Bytes::from(all)
            }
        }
    }

    /// Waits for the head (or the failure).
    pub async fn head(&self) -> Result<Head, FetchError> {
        let mut rx = self.version.subscribe();
        loop {
            {
                let s = self.lock();
                if let Some(h) = &s.head {
                    return Ok(h.clone());
                }
                if let Some(Err(e)) = &s.outcome {
                    return Err(e.clone());
                }
            }
            if rx.changed().await.is_err() {
                return Err(FetchError::Upstream("fill abandoned".into()));
            }
        }
    }

    /// The bytes `start..=end` as they arrive; the stream ends with an error if the fill fails part way.
    pub fn stream(
        self: Arc<Self>,
        start: u64,
        end: u64,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let rx = self.version.subscribe();
        let cursor = Cursor {
            fill: self,
            rx,
            index: 0,
            offset: 0,
            failed: false,
            start,
            end,
        };
        futures_util::stream::unfold(cursor, |mut c| async move {
            c.next().await.map(|item| (item, c))
        })
    }
}

struct Cursor {
    fill: Arc<Fill>,
    rx: watch::Receiver<u64>,
    index: usize,
    /// Offset in the object of chunk `index`.
    offset: u64,
    /// The error was reported: the stream is over.
    failed: bool,
    start: u64,
    end: u64,
}

impl Cursor {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if self.offset > self.end || self.failed {
                return None;
            }
            {
                let s = self.fill.lock();
                let len = s.head.as_ref().map(|h| h.len);
                while let Some(chunk) = s.chunks.get(self.index) {
                    let chunk_start = self.offset;
                    let chunk_end = chunk_start + chunk.len() as u64; // exclusive
                    if Some(chunk_end) == len && s.outcome.is_none() {
                        // the last bytes go out once the fill is complete, so a client that asks again right
                        // after its body ends finds the object cached
                        break;
                    }
                    self.index += 1;
                    self.offset = chunk_end;
                    let from = self.start.max(chunk_start);
                    let to = (self.end + 1).min(chunk_end);
                    if from < to {
                        let a = usize::try_from(from - chunk_start).unwrap_or(0);
                        let b = usize::try_from(to - chunk_start).unwrap_or(0);
                        return Some(Ok(chunk.slice(a..b)));
                    }
                    if self.offset > self.end {
                        return None;
                    }
                }
                match &s.outcome {
                    Some(Ok(())) => return None,
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(std::io::Error::other(e.to_string())));
                    }
                    None => {}
                }
            }
            if self.rx.changed().await.is_err() {
                self.failed = true;
                return Some(Err(std::io::Error::other("fill abandoned")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn waiters_get_exact_ranges_while_bytes_arrive() {
        let fill = Arc::new(Fill::default());
        let whole = tokio::spawn(Arc::clone(&fill).stream(0, 9).collect::<Vec<_>>());
        let part = tokio::spawn(Arc::clone(&fill).stream(3, 6).collect::<Vec<_>>());
        fill.set_head(Head {
            len: 10,
            etag: "\"e\"".into(),
        });
        assert_eq!(fill.head().await.ok().map(|h| h.len), Some(10));
        for c in [&b"0123"[..], b"45", b"6789"] {
            fill.push(Bytes::copy_from_slice(c));
            tokio::task::yield_now().await;
        }
        assert_eq!(fill.verify(Ok(())), Ok(()));
        fill.finish(Ok(()));
        let join = |v: Vec<Result<Bytes, std::io::Error>>| {
            v.into_iter()
                .map(|r| r.map(|b| b.to_vec()).unwrap_or_default())
                .collect::<Vec<_>>()
                .concat()
        };
        assert_eq!(join(whole.await.unwrap_or_default()), b"0123456789");
        assert_eq!(join(part.await.unwrap_or_default()), b"3456");
        assert_eq!(&fill.assemble()[..], b"0123456789");
    }

    #[tokio::test]
    async fn a_short_body_fails_every_waiter() {
        let fill = Arc::new(Fill::default());
        fill.set_head(Head {
            len: 10,
            etag: "\"e\"".into(),
        });
        fill.push(Bytes::from_static(b"01"));
        let outcome = fill.verify(Ok(()));
        assert!(outcome.is_err());
        fill.finish(outcome);
        let items: Vec<_> = Arc::clone(&fill).stream(0, 9).collect().await;
        assert!(items.last().is_some_and(|r| r.is_err()));
    }
}
