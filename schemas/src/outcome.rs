//! Outcome of a call from the error signals real instrumentation gives: `error.type`, the
//! JSON-RPC status code (`rpc.response.status_code` or `rpc.status_code`), the HTTP status of a
//! gateway, a gateway's policy decision, the span status, and a captured `isError` result.
//!
//! A tool error usually arrives as HTTP 200 with `CallToolResult.isError`: it is a failure of
//! the tool, not of the protocol, and is kept apart from JSON-RPC errors.

use crate::record::Outcome;

/// Error signals read off one span.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorSignals<'a> {
    /// The MCP method.
    pub method: &'a str,
    /// `error.type`.
    pub error_type: Option<&'a str>,
    /// `rpc.response.status_code` or `rpc.status_code`.
    pub rpc_code: Option<&'a str>,
    /// `http.response.status_code`.
    pub http_status: Option<i64>,
    /// A gateway decision such as ToolHive's `rate_limit.decision`.
    pub decision: Option<&'a str>,
    /// Span status is ERROR.
    pub status_error: bool,
    /// A captured result says `isError` / `is_error` true (Traceloop output).
    pub result_is_error: bool,
}

/// The classified outcome with the error type and JSON-RPC code to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// Ok, tool error, protocol error or denied.
    pub outcome: Outcome,
    /// `error.type` as sent, or derived (the code as a string, `_OTHER`) when absent.
    pub error_type: Option<String>,
    /// The JSON-RPC error code.
    pub jsonrpc_code: Option<i64>,
}

const DENY_DECISIONS: &[&str] = &[
    "deny",
    "denied",
    "reject",
    "rejected",
    "block",
    "blocked",
    "forbidden",
];
const DENY_TYPES: &[&str] = &[
    "401",
    "403",
    "unauthorized",
    "unauthenticated",
    "forbidden",
    "permission_denied",
    "access_denied",
];

/// Classifies one span's outcome.
pub fn classify(s: ErrorSignals<'_>) -> Classified {
    let jsonrpc_code = s
        .rpc_code
        .and_then(|c| c.trim().parse::<i64>().ok())
        .or_else(|| {
            s.error_type
                .and_then(|t| t.trim().parse::<i64>().ok())
                .filter(|c| *c < 0)
        });
    let etype = s.error_type.map(str::trim).filter(|t| !t.is_empty());
    let is = |list: &[&str], v: &str| list.iter().any(|d| d.eq_ignore_ascii_case(v));

    let denied = s.decision.is_some_and(|d| is(DENY_DECISIONS, d.trim()))
        || matches!(s.http_status, Some(401 | 403 | 429))
        || etype.is_some_and(|t| is(DENY_TYPES, t));
    let tool_error = etype.is_some_and(|t| t.eq_ignore_ascii_case("tool_error"))
        || s.result_is_error
        // FastMCP 2's ToolError exception is how a tool reports failure (isError on the wire).
        || (s.method == "tools/call" && etype == Some("ToolError"));

    let outcome = if denied {
        Outcome::Denied
    } else if tool_error {
        Outcome::ToolError
    } else if jsonrpc_code.is_some()
        || etype.is_some()
        || s.status_error
        || s.http_status.is_some_and(|c| c >= 400)
    {
        Outcome::ProtocolError
    } else {
        Outcome::Ok
    };
    let error_type = match outcome {
        Outcome::Ok => None,
        _ => etype
            .map(String::from)
            .or_else(|| jsonrpc_code.map(|c| c.to_string()))
            .or_else(|| s.http_status.map(|c| c.to_string()))
            .or_else(|| (outcome == Outcome::ToolError).then(|| "tool_error".to_string()))
            .or_else(|| Some("_OTHER".to_string())),
    };
    Classified {
        outcome,
        error_type,
        jsonrpc_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> ErrorSignals<'static> {
        ErrorSignals {
            method: "tools/call",
            ..Default::default()
        }
    }

    #[test]
    fn ok_when_no_signal() {
        assert_eq!(
            classify(sig()),
            Classified {
                outcome: Outcome::Ok,
                error_type: None,
                jsonrpc_code: None
            }
        );
    }

    #[test]
    fn tool_error_from_error_type_or_is_error() {
        let c = classify(ErrorSignals {
            error_type: Some("tool_error"),
            status_error: true,
            ..sig()
        });
        assert_eq!(
            (c.outcome, c.error_type.as_deref()),
            (Outcome::ToolError, Some("tool_error"))
        );
        let c = classify(ErrorSignals {
            result_is_error: true,
            ..sig()
        });
        assert_eq!(
            (c.outcome, c.error_type.as_deref()),
            (Outcome::ToolError, Some("tool_error"))
        );
        assert_eq!(
            classify(ErrorSignals {
                error_type: Some("ToolError"),
                ..sig()
            })
            .outcome,
            Outcome::ToolError
        );
    }

    #[test]
    fn jsonrpc_codes_are_protocol_errors() {
        let c = classify(ErrorSignals {
            error_type: Some("-32000"),
            rpc_code: Some("-32000"),
            ..sig()
        });
        assert_eq!(
            c,
            Classified {
                outcome: Outcome::ProtocolError,
                error_type: Some("-32000".into()),
                jsonrpc_code: Some(-32000)
            }
        );
        // error.type alone, no status code attribute.
        assert_eq!(
            classify(ErrorSignals {
                error_type: Some("-32601"),
                ..sig()
            })
            .jsonrpc_code,
            Some(-32601)
        );
        let c = classify(ErrorSignals {
            status_error: true,
            ..sig()
        });
        assert_eq!(
            (c.outcome, c.error_type.as_deref()),
            (Outcome::ProtocolError, Some("_OTHER"))
        );
        assert_eq!(
            classify(ErrorSignals {
                error_type: Some("timeout"),
                ..sig()
            })
            .outcome,
            Outcome::ProtocolError
        );
    }

    #[test]
    fn denials_win() {
        assert_eq!(
            classify(ErrorSignals {
                http_status: Some(403),
                ..sig()
            })
            .outcome,
            Outcome::Denied
        );
        assert_eq!(
            classify(ErrorSignals {
                decision: Some("deny"),
                ..sig()
            })
            .outcome,
            Outcome::Denied
        );
        assert_eq!(
            classify(ErrorSignals {
                decision: Some("allow"),
                ..sig()
            })
            .outcome,
            Outcome::Ok
        );
        let c = classify(ErrorSignals {
            error_type: Some("forbidden"),
            status_error: true,
            ..sig()
        });
        assert_eq!(c.outcome, Outcome::Denied);
    }
}
