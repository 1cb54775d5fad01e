//! Decoding list pages and watch lines without a detour through k8s-openapi types.

use std::borrow::Cow;

use eventer_core::{
    Error, ErrorKind, Event, Result, SharedEvent,
    decode::{event_from_json_prefix, event_from_raw},
};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::value::RawValue;

/// One line of a watch stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchLine {
    /// ADDED or MODIFIED: an occurrence (or a repeat with a new count).
    Upsert(SharedEvent),
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
    /// ADDED or MODIFIED whose object is not an Event eventer can read, or a type
    /// Kubernetes does not define: to be skipped, past its version.
    Undecodable {
        /// The object's resourceVersion.
        resource_version: String,
        /// Why it was not decoded.
        error: Error,
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
/// [`ErrorKind::Decode`] for a line that is not a watch event, or whose object cannot be
/// decoded and has no resourceVersion to skip it by.
pub fn decode_watch_line(line: &str) -> Result<WatchLine> {
    // The apiserver writes `{"type":"…","object":{…}}`: slice the object out instead of
    // scanning it once more to delimit it (a quarter of the decoding time).
    if let Some(object) = upsert_object(line)
        && let Ok(event) = eventer_core::decode::event_from_json(object)
    {
        return Ok(WatchLine::Upsert(SharedEvent::new(event)));
    }
    let line: Line<'_> = serde_json::from_str(line).map_err(|e| decode_error("watch line", e))?;
    let meta = || -> Result<String> {
        let m: MetaOnly = serde_json::from_str(line.object.get()).map_err(|e| decode_error("watch object", e))?;
        Ok(m.metadata.resource_version)
    };
    // Without a version to move past, the line cannot be skipped: the watch is retried.
    let skip = |error: Error| match meta()? {
        rv if rv.is_empty() => Err(error),
        resource_version => Ok(WatchLine::Undecodable { resource_version, error }),
    };
    Ok(match &*line.kind {
        "ADDED" | "MODIFIED" => match event_from_raw(line.object) {
            Ok(event) => WatchLine::Upsert(SharedEvent::new(event)),
            Err(error) => skip(error)?,
        },
        "DELETED" => WatchLine::Deleted { resource_version: meta()? },
        "BOOKMARK" => WatchLine::Bookmark { resource_version: meta()? },
        "ERROR" => {
            let s: Status = serde_json::from_str(line.object.get()).map_err(|e| decode_error("watch error", e))?;
            WatchLine::Error { code: s.code, reason: s.reason, message: s.message }
        }
        other => skip(Error::new(ErrorKind::Decode, format!("unknown watch event type `{other}`")))?,
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

/// A list response with its items decoded; an item that is JSON but not an Event is its
/// decoding error, for the caller to skip.
pub(crate) struct ListPage {
    pub(crate) metadata: ListMeta,
    pub(crate) items: Vec<Result<Event>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ListMeta {
    pub(crate) resource_version: String,
    #[serde(rename = "continue")]
    pub(crate) continue_: Option<String>,
}

impl ListPage {
    /// Parse a list response. The object's punctuation is read here and every value by
    /// serde_json, so each item is scanned once, by its decoder, instead of being
    /// delimited first (a quarter of the time of decoding a page).
    pub(crate) fn parse(text: &str) -> Result<ListPage> {
        let mut scan = Scan { text, at: 0 };
        let mut page = ListPage { metadata: ListMeta::default(), items: Vec::new() };
        scan.expect(b'{')?;
        if !scan.eat(b'}') {
            loop {
                // A handful of keys per page: owned strings cost nothing worth borrowing for.
                let key: String = scan.value()?;
                scan.expect(b':')?;
                match key.as_str() {
                    "metadata" => page.metadata = scan.value()?,
                    "items" => scan.items(&mut page.items)?,
                    _ => {
                        scan.value::<IgnoredAny>()?;
                    }
                }
                if !scan.eat(b',') {
                    scan.expect(b'}')?;
                    break;
                }
            }
        }
        if scan.peek().is_some() {
            return Err(scan.error("trailing characters"));
        }
        Ok(page)
    }
}

/// A cursor over a list response.
struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    /// The next byte that is not whitespace, left unread.
    fn peek(&mut self) -> Option<u8> {
        let rest = &self.text.as_bytes()[self.at..];
        let skip = rest.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')).unwrap_or(rest.len());
        self.at += skip;
        rest.get(skip).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.eat(byte) { Ok(()) } else { Err(self.error(&format!("expected `{}`", char::from(byte)))) }
    }

    fn error(&self, what: &str) -> Error {
        Error::new(ErrorKind::Decode, format!("invalid list response from the apiserver: {what} at byte {}", self.at))
    }

    /// One JSON value, decoded by serde_json.
    fn value<T: Deserialize<'a>>(&mut self) -> Result<T> {
        let mut stream = serde_json::Deserializer::from_str(&self.text[self.at..]).into_iter::<T>();
        let value = match stream.next() {
            Some(value) => value.map_err(|e| decode_error("list response", e))?,
            None => return Err(self.error("unexpected end")),
        };
        self.at += stream.byte_offset();
        Ok(value)
    }

    /// The `items` array (Go writes an empty one as `null`).
    fn items(&mut self, items: &mut Vec<Result<Event>>) -> Result<()> {
        if self.peek() == Some(b'n') {
            return self.value::<()>();
        }
        self.expect(b'[')?;
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            self.peek();
            match event_from_json_prefix(&self.text[self.at..]) {
                Ok((event, len)) => {
                    self.at += len;
                    items.push(Ok(event));
                }
                // Valid JSON of another shape: the caller skips it. Invalid JSON fails the page.
                Err(e) => {
                    self.value::<IgnoredAny>()?;
                    items.push(Err(e));
                }
            }
            if !self.eat(b',') {
                return self.expect(b']');
            }
        }
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
    fn unreadable_objects_are_skipped_past_their_version() {
        // Watching again would return the same line: it must be skippable, not an error.
        let wrong_type = r#"{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"8"},"count":"many"}}"#;
        assert!(matches!(decode_watch_line(wrong_type).unwrap(),
            WatchLine::Undecodable { resource_version, error } if resource_version == "8" && error.kind() == ErrorKind::Decode));
        let new_type = r#"{"type":"NEW","object":{"metadata":{"resourceVersion":"9"}}}"#;
        assert!(matches!(decode_watch_line(new_type).unwrap(),
            WatchLine::Undecodable { resource_version, error } if resource_version == "9" && error.message().contains("`NEW`")));
        // Without a version there is nothing to move past.
        let no_version = r#"{"type":"ADDED","object":{"count":"many"}}"#;
        assert_eq!(decode_watch_line(no_version).unwrap_err().kind(), ErrorKind::Decode);
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
        let reasons: Vec<&str> = page.items.iter().map(|e| e.as_ref().unwrap().reason.as_str()).collect();
        assert_eq!(reasons, ["A", "B"]);
        assert_eq!(page.items[1].as_ref().unwrap().raw.as_ref().unwrap().get(), r#"{"reason":"B"}"#);

        // Any order, whitespace, escaped keys, other fields, an item of another shape.
        let text = " {\n \"items\" : [ {\"reason\":\"A\"} ,\n\t[1,2], {\"count\":\"x\"},{\"reason\":\"\\u0042\"} ] ,\"extra\":{\"items\":[3]}, \"metad\\u0061ta\":{\"resourceVersion\":\"12\"} }\n";
        let page = ListPage::parse(text).unwrap();
        assert_eq!(page.metadata.resource_version, "12");
        assert_eq!(page.metadata.continue_, None);
        assert_eq!(page.items.len(), 4);
        assert_eq!(page.items[0].as_ref().unwrap().reason, "A");
        assert!(page.items[1].is_err() && page.items[2].is_err(), "not events: skipped by the caller");
        assert_eq!(page.items[3].as_ref().unwrap().reason, "B");
        let empty = ListPage::parse(r#"{"metadata":{"resourceVersion":"1"},"items":[]}"#).unwrap();
        assert!(empty.items.is_empty());
        assert!(ListPage::parse("{}").unwrap().items.is_empty());
        assert!(ListPage::parse(r#"{"items":null}"#).unwrap().items.is_empty());

        // Malformed JSON fails the page (it is retried), wherever it is.
        for bad in [
            "",
            "[]",
            r#"{"items":[{"reason":"A"}"#,
            r#"{"items":[{"reason":"A"},]}"#,
            r#"{"items":[{"reason":"A"} {"reason":"B"}]}"#,
            r#"{"items":[{"reason":"A}]}"#,
            r#"{"metadata":{"resourceVersion":"1"}"#,
            r#"{"metadata":{"resourceVersion":"1"}} x"#,
            r#"{"metadata" {}}"#,
            r#"{"items":[],}"#,
            r#"{"items":nul}"#,
            r#"{"items":{}}"#,
            "{\u{c}}",
        ] {
            assert_eq!(ListPage::parse(bad).err().map(|e| e.kind()), Some(ErrorKind::Decode), "{bad}");
        }
    }
}
