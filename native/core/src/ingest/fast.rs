//! The fast path of UpdatePosition: the servicer's Redis hot path (token, deny list, session, the positions
//! script), done without Python for the fully valid common case only. Any other case -- a token or session not
//! admitted, an invalid or finishing position, a lease due for extension, a hash Redis must first seed from the
//! store, Redis unreachable -- is [`Outcome::Declined`] before anything is written, and the front hands the call,
//! unchanged, to the servicer, which answers it (errors included) as it always has.

use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use prost::Message;
use redis::aio::ConnectionManager;
use redis::Value;

use super::admitted::{Admitted, SessionGrant, TokenGrant};
use super::config::IngestConfig;
use super::wire::{self, UpdatePositionRequest, UpdatePositionResponse};

const SESSION_PREFIX: &str = "playbackSessions/";
const NANOS_PER_SECOND: i32 = 1_000_000_000;
const DURATION_MAX_SECONDS: i64 = 315_576_000_000;
const TIMESTAMP_MAX_SECONDS: i64 = 253_402_300_799;

/// Why a call went to the servicer (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    /// Not a plain unary gRPC request the front can read (compressed, gRPC-web, deadline passed, malformed).
    Request,
    /// No bearer token, or one the servicer has not admitted (or that expired since).
    Token,
    /// A session the servicer has not admitted, of another profile, or whose lease is due for extension.
    Session,
    /// A position or event time the servicer must judge (invalid, beyond the runtime, or finishing the title).
    Report,
    /// The deny list names the token's sign-in session or account.
    Revoked,
    /// The position's hash must first be seeded from the store.
    Seed,
    /// Redis did not answer.
    Redis,
}

impl Decline {
    pub const ALL: [Decline; 7] = [
        Decline::Request,
        Decline::Token,
        Decline::Session,
        Decline::Report,
        Decline::Revoked,
        Decline::Seed,
        Decline::Redis,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Decline::Request => "request",
            Decline::Token => "token",
            Decline::Session => "session",
            Decline::Report => "report",
            Decline::Revoked => "revoked",
            Decline::Seed => "seed",
            Decline::Redis => "redis",
        }
    }
}

pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The report's checked values, as the servicer computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub position_ms: i64,
    pub event_time: i64,
}

/// The token of an `authorization: Bearer <token>` header, as `services.common.auth.bearer_token` reads it.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The position and event time when the servicer would accept them without a question: a valid non-negative
/// position (clamped to the runtime within the slack) short of the finished share, and a valid event time from a
/// set clock (clamped to our clock plus the skew). `None` leaves the judgement (and any error) to the servicer.
pub fn check_report(
    request: &UpdatePositionRequest,
    session: &SessionGrant,
    config: &IngestConfig,
    now: i64,
) -> Option<Report> {
    let position = request.position.as_ref()?;
    if !(0..NANOS_PER_SECOND).contains(&position.nanos)
        || !(0..=DURATION_MAX_SECONDS).contains(&position.seconds)
    {
        return None;
    }
    let position_ms = position.seconds * 1000 + i64::from(position.nanos / 1_000_000);
    if position_ms > session.runtime_ms + config.position_slack_ms {
        return None;
    }
    let position_ms = position_ms.min(session.runtime_ms);
    if session.runtime_ms > 0
        && position_ms as f64 >= config.finished_fraction * session.runtime_ms as f64
    {
        return None; // completing the title is the servicer's (its once-per-session bookkeeping)
    }
    let at = request.event_time.as_ref()?;
    if !(0..NANOS_PER_SECOND).contains(&at.nanos)
        || !(config.earliest_event_seconds..=TIMESTAMP_MAX_SECONDS).contains(&at.seconds)
    {
        return None;
    }
    let event_time = at.seconds * 1_000_000 + i64::from(at.nanos / 1000);
    Some(Report {
        position_ms,
        event_time: event_time.min(now + config.max_clock_skew_micros),
    })
}

/// Whether the deny list's two values (the sign-in session's key, the account's mark) refuse the token, as
/// `services.common.denylist_redis.RedisDenyList.denied` decides.
fn denied(token: &TokenGrant, session: Option<String>, mark: Option<String>) -> bool {
    if token.session_id.is_some() && session.is_some() {
        return true;
    }
    match mark {
        Some(mark) => mark.parse::<f64>().map_or(true, |m| token.issued_at <= m),
        None => false,
    }
}

/// The fast path's answer, or why it declined. Nothing is written before the last step, the positions script,
/// whose every non-answer (a hash to seed, an error) declines with nothing written or with a write the servicer
/// then reads back as applied (the script is idempotent for a report's event time).
pub async fn update(
    config: &IngestConfig,
    admitted: &Admitted,
    redis: &mut ConnectionManager,
    script: &redis::Script,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<UpdatePositionResponse, Decline> {
    let grpc = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "application/grpc" || v.starts_with("application/grpc+proto"));
    let identity = headers
        .get("grpc-encoding")
        .is_none_or(|v| v.as_bytes() == b"identity");
    if !grpc || !identity || wire::deadline_passed(headers) {
        return Err(Decline::Request);
    }
    let message = wire::unframe(body).ok_or(Decline::Request)?;
    let now = now_micros();
    let token = bearer(headers)
        .and_then(|t| admitted.token(t, now as f64 / 1e6))
        .ok_or(Decline::Token)?;
    let request = UpdatePositionRequest::decode(message).map_err(|_| Decline::Request)?;
    let session_id = request
        .session
        .strip_prefix(SESSION_PREFIX)
        .ok_or(Decline::Session)?;
    let session = admitted.session(session_id).ok_or(Decline::Session)?;
    if session.account_id != token.account_id
        || session.profile_id != token.profile_id
        || now >= session.renew_micros
    {
        return Err(Decline::Session);
    }
    let report = check_report(&request, &session, config, now).ok_or(Decline::Report)?;

    let deny_session = format!(
        "{}s:{}",
        config.deny_prefix,
        token.session_id.as_deref().unwrap_or("")
    );
    let deny_account = format!("{}a:{}", config.deny_prefix, token.account_id);
    let (revoked_session, mark): (Option<String>, Option<String>) = redis::cmd("MGET")
        .arg(&deny_session)
        .arg(&deny_account)
        .query_async(redis)
        .await
        .map_err(|_| Decline::Redis)?;
    if denied(&token, revoked_session, mark) {
        return Err(Decline::Revoked);
    }

    let event = wire::PlaybackUpdateEvent {
        session: request.session.clone(),
        profile: format!(
            "accounts/{}/profiles/{}",
            session.account_id, session.profile_id
        ),
        title: format!("titles/{}", session.title_id),
        position: Some(wire::duration_of_ms(report.position_ms)),
        runtime: Some(wire::duration_of_ms(session.runtime_ms)),
        event_time: Some(wire::timestamp_of_micros(report.event_time)),
        finished: false,
        region: session.region.clone(),
    }
    .encode_to_vec();
    let key = format!(
        "{}{}:{}:{}",
        config.positions_prefix, session.account_id, session.profile_id, session.title_id
    );
    let reply: Value = script
        .key(key)
        .key(&config.update_stream)
        .arg(report.event_time)
        .arg(report.position_ms)
        .arg(session.runtime_ms)
        .arg(0) // finished: a finishing report is declined above
        .arg(now)
        .arg(config.idle_ms)
        .arg(event)
        .arg(&session.profile_id)
        .arg(config.stream_max_len)
        .arg("")
        .invoke_async(redis)
        .await
        .map_err(|_| Decline::Redis)?;
    let (applied, position_ms, finished) = applied_row(&reply, report).ok_or(Decline::Seed)?;
    Ok(UpdatePositionResponse {
        applied,
        position: Some(wire::duration_of_ms(position_ms)),
        finished,
        expire_time: Some(wire::timestamp_of_micros(session.expire_micros)),
        url_token: session.url_token,
    })
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// (applied, position, finished) from the script's reply, as `RedisPositions.update` reads it: `{1}` applied;
/// `{0, fields}` kept the stored row (a tombstone answers position 0, not applied); `None` for `{-1}` (the
/// hash must be seeded from the store first) or anything unexpected.
pub fn applied_row(reply: &Value, report: Report) -> Option<(bool, i64, bool)> {
    let Value::Array(items) = reply else {
        return None;
    };
    match items.first().and_then(int)? {
        1 => Some((true, report.position_ms, false)),
        0 => {
            let Some(Value::Array(fields)) = items.get(1) else {
                return None;
            };
            let field = |i: usize| fields.get(i).and_then(int);
            // _FIELDS: event_time, position_ms, runtime_ms, finished, watch_time, deleted
            if field(5)? == 1 {
                return Some((false, 0, false));
            }
            Some((field(0)? == report.event_time, field(1)?, field(3)? == 1))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(runtime_ms: i64) -> SessionGrant {
        SessionGrant {
            account_id: "a".into(),
            profile_id: "p".into(),
            title_id: "t".into(),
            runtime_ms,
            region: String::new(),
            expire_micros: 0,
            renew_micros: 0,
            url_token: String::new(),
        }
    }

    fn request(seconds: i64, nanos: i32, at: i64) -> UpdatePositionRequest {
        UpdatePositionRequest {
            session: "playbackSessions/s".into(),
            position: Some(wire::Duration { seconds, nanos }),
            event_time: Some(wire::Timestamp {
                seconds: at,
                nanos: 0,
            }),
        }
    }

    const NOW: i64 = 1_800_000_000_000_000;

    #[test]
    fn a_valid_report_is_checked_as_the_servicer_checks_it() {
        let config = IngestConfig::for_tests();
        let s = session(100_000);
        let r = check_report(&request(10, 500_999_999, 1_799_999_990), &s, &config, NOW);
        assert_eq!(
            r,
            Some(Report {
                position_ms: 10_500,
                event_time: 1_799_999_990_000_000
            })
        );
        // a clock ahead is clamped to ours plus the skew
        let ahead = check_report(&request(10, 0, 1_900_000_000), &s, &config, NOW);
        assert_eq!(
            ahead.map(|r| r.event_time),
            Some(NOW + config.max_clock_skew_micros)
        );
        // within the slack past the runtime is... finishing, so the servicer's
        assert_eq!(
            check_report(&request(100, 500_000_000, 1_799_999_990), &s, &config, NOW),
            None
        );
    }

    #[test]
    fn anything_the_servicer_would_question_is_declined() {
        let config = IngestConfig::for_tests();
        let s = session(100_000);
        for bad in [
            request(-1, 0, 1_799_999_990),            // negative
            request(1, -5, 1_799_999_990),            // mixed signs
            request(1, 1_000_000_000, 1_799_999_990), // nanos out of range
            request(95, 0, 1_799_999_990),            // finishing
            request(500, 0, 1_799_999_990),           // beyond the runtime
            request(1, 0, 900_000_000),               // a clock that was never set
        ] {
            assert_eq!(check_report(&bad, &s, &config, NOW), None, "{bad:?}");
        }
        let mut no_time = request(1, 0, 0);
        no_time.event_time = None;
        assert_eq!(check_report(&no_time, &s, &config, NOW), None);
        let mut no_position = request(1, 0, 1_799_999_990);
        no_position.position = None;
        assert_eq!(check_report(&no_position, &s, &config, NOW), None);
    }

    #[test]
    fn the_deny_list_refuses_as_the_python_adapter_does() {
        let token = TokenGrant {
            account_id: "a".into(),
            profile_id: "p".into(),
            session_id: Some("s".into()),
            issued_at: 100.5,
            valid_until: 1e12,
        };
        assert!(!denied(&token, None, None));
        assert!(denied(&token, Some("1".into()), None));
        assert!(denied(&token, None, Some("100.5".into())));
        assert!(!denied(&token, None, Some("100.499".into())));
        let no_sid = TokenGrant {
            session_id: None,
            ..token
        };
        assert!(!denied(&no_sid, Some("1".into()), None));
    }

    #[test]
    fn the_scripts_replies_read_as_the_python_adapter_reads_them() {
        let report = Report {
            position_ms: 5_000,
            event_time: 42,
        };
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let kept = |event_time: &str, deleted: &str| {
            Value::Array(vec![
                Value::Int(0),
                Value::Array(vec![
                    bulk(event_time),
                    bulk("7000"),
                    bulk("9000"),
                    bulk("1"),
                    bulk("1"),
                    bulk(deleted),
                ]),
            ])
        };
        assert_eq!(
            applied_row(&Value::Array(vec![Value::Int(1)]), report),
            Some((true, 5_000, false))
        );
        assert_eq!(
            applied_row(&kept("50", "0"), report),
            Some((false, 7_000, true))
        );
        assert_eq!(
            applied_row(&kept("42", "0"), report),
            Some((true, 7_000, true))
        );
        assert_eq!(
            applied_row(&kept("50", "1"), report),
            Some((false, 0, false))
        );
        assert_eq!(
            applied_row(&Value::Array(vec![Value::Int(-1)]), report),
            None
        );
        assert_eq!(applied_row(&Value::Nil, report), None);
    }
}
