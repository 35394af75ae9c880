//! S3's wire forms for the Object Lock client: the `Retention` document it sends, and the
//! answers it reads (`Retention` and `ObjectLockConfiguration` documents, `<Error>` documents,
//! `HeadObject`'s lock headers), parsed minimally and tolerantly with `quick-xml`: element local
//! names (any namespace prefix), entity and character references, CDATA.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, SecondsFormat, Utc};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use md5::Md5;
use sha2::Digest;

use super::object_lock::{BucketError, LockMode, Retention};

/// The longest S3 error message kept in a [`BucketError`]: enough to read, bounded so a
/// misbehaving endpoint cannot flood the logs.
pub(crate) const MAX_MESSAGE_CHARS: usize = 512;

/// The `PutObjectRetention` body.
pub(crate) fn retention_xml(mode: LockMode, retain_until: DateTime<Utc>) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Mode>{mode}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
        retain_until.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// `Content-MD5`: the base64 of the body's MD5.
pub(crate) fn content_md5(body: &[u8]) -> HeaderValue {
    let digest = Md5::digest(body);
    // Base64 is always a valid header value.
    HeaderValue::from_str(&STANDARD.encode(digest)).unwrap_or(HeaderValue::from_static(""))
}

/// Whether an answer says it is XML (`application/xml`, `text/xml`), as S3's documents do.
pub(crate) fn is_xml(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start().to_ascii_lowercase())
        .is_some_and(|v| v.starts_with("application/xml") || v.starts_with("text/xml"))
}

/// The retention in `HeadObject`'s `x-amz-object-lock-mode` and
/// `x-amz-object-lock-retain-until-date` headers: both or neither.
pub(crate) fn retention_from_headers(
    headers: &HeaderMap,
) -> Result<Option<Retention>, BucketError> {
    let text = |name: &str| -> Result<Option<&str>, BucketError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| BucketError::Response(format!("{name} is not text")))
            })
            .transpose()
    };
    match (
        text("x-amz-object-lock-mode")?,
        text("x-amz-object-lock-retain-until-date")?,
    ) {
        (None, None) => Ok(None),
        (Some(mode), Some(until)) => Ok(Some(Retention {
            mode: mode.trim().parse()?,
            retain_until: parse_instant(until)?,
        })),
        _ => Err(BucketError::Response(
            "HeadObject reports half an Object Lock retention (a mode without a date or the \
             reverse)"
                .to_owned(),
        )),
    }
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, BucketError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| BucketError::Response(format!("retain-until date {text:?}: {e}")))
}

/// A `Retention` document's mode and date.
pub(crate) fn parse_retention(body: &[u8]) -> Result<Retention, BucketError> {
    let leaves = xml_leaves(body)?;
    let mode = leaf(&leaves, "Retention/Mode")
        .ok_or_else(|| BucketError::Response("retention without Mode".to_owned()))?
        .parse()?;
    let until = leaf(&leaves, "Retention/RetainUntilDate")
        .ok_or_else(|| BucketError::Response("retention without RetainUntilDate".to_owned()))?;
    Ok(Retention {
        mode,
        retain_until: parse_instant(until)?,
    })
}

/// The error an unsuccessful answer stands for: its S3 `<Error>` document's code and message,
/// or the status alone when it has none.
pub(crate) fn status_error(status: StatusCode, body: &[u8]) -> BucketError {
    let leaves = xml_leaves(body).unwrap_or_default();
    let code = leaf(&leaves, "Error/Code")
        .map(str::to_owned)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").replace(' ', ""));
    let mut message = leaf(&leaves, "Error/Message").unwrap_or("").to_owned();
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    BucketError::Status {
        status: status.as_u16(),
        code,
        message,
    }
}

/// The text of every element of an XML document that holds text, as (`/`-joined local names
/// from the root, trimmed text) in document order: enough for S3's small answers, whatever
/// their namespace prefixes, entity and character references, or CDATA.
pub(crate) fn xml_leaves(body: &[u8]) -> Result<Vec<(String, String)>, BucketError> {
    use quick_xml::events::Event;

    let text = std::str::from_utf8(body)
        .map_err(|e| BucketError::Response(format!("answer is not UTF-8: {e}")))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let bad = |e: &dyn fmt::Display| BucketError::Response(format!("malformed XML: {e}"));
    let mut path: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut leaves = Vec::new();
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(start) => {
                let name = std::str::from_utf8(start.local_name().as_ref())
                    .map_err(|e| bad(&e))?
                    .to_owned();
                path.push(name);
                current.clear();
            }
            Event::End(_) => {
                let value = current.trim();
                if !value.is_empty() {
                    leaves.push((path.join("/"), value.to_owned()));
                }
                current.clear();
                path.pop();
            }
            Event::Text(t) => current.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::CData(t) => current.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::GeneralRef(r) => {
                if let Some(c) = r.resolve_char_ref().map_err(|e| bad(&e))? {
                    current.push(c);
                } else {
                    let name = r.decode().map_err(|e| bad(&e))?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| bad(&format!("unknown entity &{name};")))?;
                    current.push_str(resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(leaves)
}

pub(crate) fn leaf<'a>(leaves: &'a [(String, String)], path: &str) -> Option<&'a str> {
    leaves
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
