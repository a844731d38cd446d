//! What the ingest front reads and writes on the wire: the few protobuf messages of its one RPC (mirrors of
//! `proto/marquee/v1/playback.proto` and the well-known types, checked byte for byte against the generated Python
//! classes by `tests/playback/test_ingest.py`), gRPC's length-prefixed framing, and the answers it makes itself.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

/// google.protobuf.Duration
#[derive(Clone, PartialEq, prost::Message)]
pub struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// google.protobuf.Timestamp
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// marquee.v1.UpdatePositionRequest
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdatePositionRequest {
    #[prost(string, tag = "1")]
    pub session: String,
    #[prost(message, optional, tag = "2")]
    pub position: Option<Duration>,
    #[prost(message, optional, tag = "3")]
    pub event_time: Option<Timestamp>,
}

/// marquee.v1.UpdatePositionResponse
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdatePositionResponse {
    #[prost(bool, tag = "1")]
    pub applied: bool,
    #[prost(message, optional, tag = "2")]
    pub position: Option<Duration>,
    #[prost(bool, tag = "3")]
    pub finished: bool,
    #[prost(message, optional, tag = "4")]
    pub expire_time: Option<Timestamp>,
    #[prost(string, tag = "5")]
    pub url_token: String,
}

/// marquee.v1.PlaybackUpdateEvent
#[derive(Clone, PartialEq, prost::Message)]
pub struct PlaybackUpdateEvent {
    #[prost(string, tag = "1")]
    pub session: String,
    #[prost(string, tag = "2")]
    pub profile: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(message, optional, tag = "4")]
    pub position: Option<Duration>,
    #[prost(message, optional, tag = "5")]
    pub runtime: Option<Duration>,
    #[prost(message, optional, tag = "6")]
    pub event_time: Option<Timestamp>,
    #[prost(bool, tag = "7")]
    pub finished: bool,
    #[prost(string, tag = "8")]
    pub region: String,
}

/// As protobuf's `Duration.FromMilliseconds` (for the non-negative values the front writes).
pub fn duration_of_ms(ms: i64) -> Duration {
    Duration {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// As protobuf's `Timestamp.FromMicroseconds`.
pub fn timestamp_of_micros(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// The one message of a unary request body: `None` unless the body is exactly one uncompressed frame.
pub fn unframe(body: &[u8]) -> Option<&[u8]> {
    let (head, message) = body.split_at_checked(5)?;
    let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    (head[0] == 0 && length == message.len()).then_some(message)
}

/// A message in gRPC's length-prefixed framing (uncompressed).
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// The trailers of a successful call, carrying its request id as the Python servers' interceptor does.
pub fn ok_trailers(request_id: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        trailers.insert("x-request-id", value);
    }
    trailers
}

/// Whether a `grpc-timeout` header (RFC: 1-8 digits and a unit) says the deadline has already passed.
pub fn deadline_passed(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("grpc-timeout").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let digits = value.get(..value.len().saturating_sub(1)).unwrap_or("");
    !matches!(digits.parse::<u64>(), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_unframes_to_its_message_and_anything_else_is_refused() {
        let framed = frame(b"hello");
        assert_eq!(unframe(&framed), Some(&b"hello"[..]));
        assert_eq!(unframe(&framed[..7]), None); // truncated
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert_eq!(unframe(&compressed), None);
        let mut two = framed.to_vec();
        two.extend_from_slice(&framed);
        assert_eq!(unframe(&two), None);
        assert_eq!(unframe(b""), None);
    }

    #[test]
    fn times_convert_as_protobufs_helpers_do() {
        assert_eq!(
            duration_of_ms(61_234),
            Duration {
                seconds: 61,
                nanos: 234_000_000
            }
        );
        assert_eq!(
            timestamp_of_micros(1_700_000_000_123_456).nanos,
            123_456_000
        );
    }

    #[test]
    fn a_zero_or_unreadable_timeout_has_passed_and_a_positive_one_has_not() {
        let mut headers = HeaderMap::new();
        assert!(!deadline_passed(&headers));
        headers.insert("grpc-timeout", HeaderValue::from_static("5S"));
        assert!(!deadline_passed(&headers));
        headers.insert("grpc-timeout", HeaderValue::from_static("0m"));
        assert!(deadline_passed(&headers));
        headers.insert("grpc-timeout", HeaderValue::from_static("x"));
        assert!(deadline_passed(&headers));
    }
}
