//! `google.rpc.Status` (the OTLP/HTTP error body, and gRPC status details) and retryable gRPC
//! statuses carrying `google.rpc.RetryInfo`.
//!
//! The OTLP specification has exporters retry `RESOURCE_EXHAUSTED` only when the status details
//! hold a `RetryInfo`, and honour its delay. The details travel as a binary `google.rpc.Status`
//! in the `grpc-status-details-bin` trailer; the four messages involved are small enough to
//! declare here rather than pull a crate of generated Google types.

use prost::Message;
use tonic::{Code, Status};

/// Seconds a refused client is told to wait (`RetryInfo.retry_delay`, HTTP `Retry-After`).
pub const RETRY_AFTER_SECS: i64 = 1;

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
struct Duration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<Duration>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub(crate) code: i32,
    /// What went wrong.
    #[prost(string, tag = "2")]
    pub(crate) message: String,
    /// Typed details, such as a `RetryInfo`.
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

impl RpcStatus {
    /// A status without details.
    pub(crate) fn new(code: i32, message: String) -> Self {
        Self {
            code,
            message,
            details: Vec::new(),
        }
    }
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// A status with `code` and `message` whose details say: retry after `delay_secs` seconds.
pub fn retry_status(code: Code, message: String, delay_secs: i64) -> Status {
    let info = RetryInfo {
        retry_delay: Some(Duration {
            seconds: delay_secs,
            nanos: 0,
        }),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: RETRY_INFO_TYPE.into(),
            value: info.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, details.encode_to_vec().into())
}

/// The retry delay in a status's details, if it carries a `RetryInfo` (for tests and clients).
pub fn retry_delay_secs(status: &Status) -> Option<i64> {
    let details = RpcStatus::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .find(|a| a.type_url == RETRY_INFO_TYPE)
        .and_then(|a| RetryInfo::decode(a.value.as_slice()).ok())
        .and_then(|r| r.retry_delay)
        .map(|d| d.seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trips_through_the_status_details() {
        let s = retry_status(Code::ResourceExhausted, "busy".into(), 3);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), "busy");
        assert_eq!(retry_delay_secs(&s), Some(3));
        assert_eq!(retry_delay_secs(&Status::unavailable("x")), None);
    }
}
