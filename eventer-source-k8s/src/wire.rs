//! Decoding list pages and watch lines without a detour through k8s-openapi types.

use std::borrow::Cow;

use eventer_core::{Error, ErrorKind, Event, Result, decode::event_from_raw};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One line of a watch stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchLine {
    /// ADDED or MODIFIED: an occurrence (or a repeat with a new count).
    Upsert(Box<Event>),
    /// DELETED (TTL expiry): not an occurrence; only its version matters.
    Deleted {
        /// The deletion's resourceVersion.
        resource_version: String,
    },
    /// BOOKMARK: everything up to this version was sent.
    Bookmark {
        /// The bookmarked resourceVersion.
        resource_version: String,
    },
    /// ERROR: a `Status`; code 410 means the version is gone and a relist is needed.
    Error {
        /// HTTP-like code (410 Expired).
        code: u16,
        /// `reason`, e.g. `Expired`.
        reason: String,
        /// `message`.
        message: String,
    },
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    object: &'a RawValue,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MetaOnly {
    metadata: Meta,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Meta {
    resource_version: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Status {
    code: u16,
    reason: String,
    message: String,
}

fn decode_error(what: &str, e: serde_json::Error) -> Error {
    Error::new(ErrorKind::Decode, format!("invalid {what} from the apiserver")).with_source(e)
}

/// Decode one watch line (`{"type":..,"object":{..}}`).
///
/// ```
/// use eventer_source_k8s::{WatchLine, decode_watch_line};
/// let line = r#"{"type":"MODIFIED","object":{"metadata":{"name":"web-0.1","namespace":"default","resourceVersion":"7"},"reason":"BackOff","count":2}}"#;
/// match decode_watch_line(line)? {
///     WatchLine::Upsert(ev) => assert_eq!((ev.reason.as_str(), ev.count), ("BackOff", 2)),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), eventer_core::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::Decode`] for a line that is not a watch event, or an unknown type.
pub fn decode_watch_line(line: &str) -> Result<WatchLine> {
    // The apiserver writes `{"type":"…","object":{…}}`: slice the object out instead of
    // scanning it once more to delimit it (a quarter of the decoding time).
    if let Some(object) = upsert_object(line)
        && let Ok(event) = eventer_core::decode::event_from_json(object)
    {
        return Ok(WatchLine::Upsert(Box::new(event)));
    }
    let line: Line<'_> = serde_json::from_str(line).map_err(|e| decode_error("watch line", e))?;
    let meta = || -> Result<String> {
        let m: MetaOnly = serde_json::from_str(line.object.get()).map_err(|e| decode_error("watch object", e))?;
        Ok(m.metadata.resource_version)
    };
    Ok(match &*line.kind {
        "ADDED" | "MODIFIED" => WatchLine::Upsert(Box::new(event_from_raw(line.object)?)),
        "DELETED" => WatchLine::Deleted { resource_version: meta()? },
        "BOOKMARK" => WatchLine::Bookmark { resource_version: meta()? },
        "ERROR" => {
            let s: Status = serde_json::from_str(line.object.get()).map_err(|e| decode_error("watch error", e))?;
            WatchLine::Error { code: s.code, reason: s.reason, message: s.message }
        }
        other => return Err(Error::new(ErrorKind::Decode, format!("unknown watch event type `{other}`"))),
    })
}

/// The object text of an ADDED/MODIFIED line in the apiserver's field order; anything
/// else (other order, extra fields: then the slice is not one JSON value) takes the
/// general path.
fn upsert_object(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(r#"{"type":""#)?;
    let rest = rest.strip_prefix(r#"ADDED","object":"#).or_else(|| rest.strip_prefix(r#"MODIFIED","object":"#))?;
    rest.trim_end().strip_suffix('}')
}

/// A list response, items left raw so that a page is decoded one item at a time.
#[derive(Deserialize)]
pub(crate) struct ListPage<'a> {
    #[serde(default)]
    pub(crate) metadata: ListMeta,
    #[serde(borrow, default)]
    pub(crate) items: Vec<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ListMeta {
    pub(crate) resource_version: String,
    #[serde(rename = "continue")]
    pub(crate) continue_: Option<String>,
}

impl<'a> ListPage<'a> {
    pub(crate) fn parse(text: &'a str) -> Result<ListPage<'a>> {
        serde_json::from_str(text).map_err(|e| decode_error("list response", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_type() {
        let v = |l: &str| decode_watch_line(l).unwrap();
        assert!(matches!(v(r#"{"type":"ADDED","object":{"metadata":{"resourceVersion":"3"},"reason":"Pulled"}}"#),
            WatchLine::Upsert(e) if e.reason == "Pulled" && e.resource_version == "3"));
        assert!(matches!(v(r#"{"type":"DELETED","object":{"metadata":{"resourceVersion":"4"}}}"#),
            WatchLine::Deleted { resource_version } if resource_version == "4"));
        assert!(
            matches!(v(r#"{"type":"BOOKMARK","object":{"kind":"Event","apiVersion":"v1","metadata":{"resourceVersion":"5","creationTimestamp":null}}}"#),
            WatchLine::Bookmark { resource_version } if resource_version == "5")
        );
        let expired = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (9)","reason":"Expired","code":410}}"#;
        assert!(matches!(v(expired), WatchLine::Error { code: 410, reason, .. } if reason == "Expired"));
        assert_eq!(decode_watch_line(r#"{"type":"NEW","object":{}}"#).unwrap_err().kind(), ErrorKind::Decode);
        assert_eq!(decode_watch_line("not json").unwrap_err().kind(), ErrorKind::Decode);
    }

    #[test]
    fn fast_path_falls_back_on_other_shapes() {
        let reordered = r#"{"object":{"metadata":{"resourceVersion":"3"},"reason":"A"},"type":"ADDED"}"#;
        assert!(matches!(decode_watch_line(reordered).unwrap(), WatchLine::Upsert(e) if e.reason == "A"));
        let extra = r#"{"type":"MODIFIED","object":{"reason":"B"},"extra":{"reason":"C"}}"#;
        assert!(matches!(decode_watch_line(extra).unwrap(), WatchLine::Upsert(e) if e.reason == "B"));
        let padded = "{\"type\":\"ADDED\",\"object\":{\"reason\":\"D\"}}\r\n";
        assert!(
            matches!(decode_watch_line(padded).unwrap(), WatchLine::Upsert(e) if e.reason == "D" && e.raw.as_ref().unwrap().get() == r#"{"reason":"D"}"#)
        );
    }

    #[test]
    fn list_pages() {
        let page = ListPage::parse(r#"{"kind":"EventList","metadata":{"resourceVersion":"9","continue":"abc"},"items":[{"reason":"A"},{"reason":"B"}]}"#).unwrap();
        assert_eq!((page.metadata.resource_version.as_str(), page.metadata.continue_.as_deref()), ("9", Some("abc")));
        assert_eq!(page.items.len(), 2);
    }
}
