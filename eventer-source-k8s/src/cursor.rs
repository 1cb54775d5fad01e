//! The resume position: what has been emitted, in a few bytes.
//!
//! A [`Cursor`] claims which object versions are *covered* (emitted, or deliberately
//! skipped) for one list/watch stream:
//! - every version with `resourceVersion <= rv`;
//! - for each interrupted list `(snap, key)`: every version `<= snap` whose key
//!   (`namespace/name`, the apiserver's list order) is `<= key`;
//! - while a `startFrom=<duration>` list runs: every listed event last seen before `since`.
//!
//! Watch events arrive in resourceVersion order, so after one the cursor is just its
//! version. A list is a snapshot in key order, not version order: after item `k` of a
//! list at snapshot `L`, the cursor adds the mark `(L, k)`; once the list completes,
//! everything `<= L` is covered and the cursor is `L` again. Nothing else is kept: no set
//! of uids, however large the cluster.
//!
//! resourceVersions are compared as integers: they are etcd revisions in every apiserver
//! (and in kine). A version that is not a decimal integer never enters a cursor: watching
//! from it would replay history (`""`) or be refused (422), and once checkpointed it would
//! be refused on every start.

use std::{collections::BTreeMap, fmt::Write as _, sync::Arc};

use eventer_core::{Error, Position, Result, Text};
use jiff::Timestamp;
use serde::Deserialize;

/// Interrupted lists remembered at most; dropping the oldest can only cause repeats.
const MAX_MARKS: usize = 4;

/// Resume state of one stream (one namespace, or all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Cursor {
    /// Everything at or before this version is covered; `""` for nothing yet.
    #[serde(default)]
    pub(crate) rv: String,
    /// Interrupted lists: `(snapshot version, last key)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) lists: Vec<(String, String)>,
    /// `startFrom=<duration>`: listed events last seen before this are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<Timestamp>,
}

fn num(rv: &str) -> Option<u64> {
    rv.parse().ok()
}

/// Whether `rv` may enter a cursor: a decimal integer, as etcd revisions are.
pub(crate) fn valid(rv: &str) -> bool {
    revision(rv).is_some()
}

/// `rv` as the etcd revision it is, if [`valid`].
fn revision(rv: &str) -> Option<u64> {
    if rv.is_empty() || !rv.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num(rv)
}

/// One move of a [`Cursor`]. A stream sends each with the item that caused it, so the
/// source's copy of the cursor follows the stream's without a copy of it per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Everything up to this version is covered ([`Cursor::at`]): the starting point was
    /// found, or a list completed.
    At(String),
    /// A watch delivered this version, a valid one, also parsed: the stream's cursor and
    /// the source's both apply it ([`Change::advance`], [`Cursor::advance`]).
    Advance(Text, u64),
    /// The list at snapshot `snap` handled every item up to `key` ([`Cursor::listed`]).
    Listed {
        /// The list's snapshot version, shared by its items.
        snap: Arc<str>,
        /// `namespace/name` of the item.
        key: String,
    },
    /// The list at snapshot `snap` turned out not to be in key order: its mark claims
    /// keys not read yet, so it goes ([`Cursor::unlisted`]).
    Unlisted(Arc<str>),
    /// The cursor could not be resumed (a position from the future): start over from this.
    Reset(Cursor),
}

impl Change {
    /// The move for a version a watch delivered; `None` for one that is not a decimal
    /// etcd revision, which must never enter a cursor (watching from it would replay
    /// history or be refused on every start once checkpointed).
    pub(crate) fn advance(rv: &str) -> Option<Change> {
        let v = revision(rv)?;
        Some(Change::Advance(rv.into(), v))
    }
}

impl Cursor {
    /// A cursor that covers everything up to `rv`.
    pub(crate) fn at(rv: &str) -> Cursor {
        Cursor { rv: rv.to_owned(), ..Cursor::default() }
    }

    /// Whether resuming needs a list: there is no version to watch from (`""` or `"0"`,
    /// which a watch would read as "replay everything").
    pub(crate) fn needs_list(&self) -> bool {
        matches!(self.rv.as_str(), "" | "0")
    }

    /// Whether the version `rv` of the object at `key` was already emitted or skipped.
    pub(crate) fn covers(&self, rv: &str, key: &str, last_seen: Option<Timestamp>) -> bool {
        let Some(v) = num(rv) else { return false };
        if num(&self.rv).is_some_and(|r| v <= r) {
            return true;
        }
        if self.lists.iter().any(|(snap, k)| num(snap).is_some_and(|s| v <= s) && key <= k.as_str()) {
            return true;
        }
        self.since.is_some_and(|since| last_seen.is_none_or(|t| t < since))
    }

    pub(crate) fn apply(&mut self, change: &Change) {
        match change {
            Change::At(rv) => *self = Cursor::at(rv),
            Change::Advance(rv, v) => self.advance(rv, *v),
            Change::Listed { snap, key } => self.listed(snap, key),
            Change::Unlisted(snap) => self.unlisted(snap),
            Change::Reset(cursor) => *self = cursor.clone(),
        }
    }

    /// The newest version this cursor claims to have seen (its version or a list's
    /// snapshot): a cluster whose current version is older cannot be the one it was saved in.
    pub(crate) fn newest(&self) -> Option<u64> {
        std::iter::once(&self.rv).chain(self.lists.iter().map(|(snap, _)| snap)).filter_map(|v| num(v)).max()
    }

    /// Whether every version in the cursor is one a watch may start from.
    fn is_sound(&self) -> bool {
        (self.rv.is_empty() || valid(&self.rv)) && self.lists.iter().all(|(snap, _)| valid(snap))
    }

    /// Forget the mark of the list at snapshot `snap`.
    fn unlisted(&mut self, snap: &str) {
        self.lists.retain(|(s, _)| s != snap);
    }

    /// A watch delivered version `rv` (`new` parsed): everything before it is covered.
    fn advance(&mut self, rv: &str, new: u64) {
        let cur = match num(&self.rv) {
            Some(cur) if new <= cur => cur,
            _ => {
                // In place: a watch moves the cursor once per event, twice over (the
                // stream's copy and the source's).
                self.rv.clear();
                self.rv.push_str(rv);
                new
            }
        };
        if !self.lists.is_empty() {
            self.lists.retain(|(snap, _)| num(snap).is_none_or(|s| s > cur));
        }
        self.since = None;
    }

    /// The list at snapshot `snap` handled every item up to `key`. Called per listed item,
    /// so the list's mark is updated in place.
    fn listed(&mut self, snap: &str, key: &str) {
        let (snap_text, mut mark) = match self.lists.iter().position(|(s, _)| s == snap) {
            Some(i) => self.lists.remove(i),
            None => (snap.to_owned(), String::new()),
        };
        // Older marks inside the new one add nothing.
        let new = num(snap);
        self.lists.retain(|(s, k)| !(num(s).zip(new).is_some_and(|(s, n)| s <= n) && k.as_str() <= key));
        // A list retried at the same snapshot reads the same items again: the mark only grows.
        if key > mark.as_str() {
            mark.clear();
            mark.push_str(key);
        }
        self.lists.push((snap_text, mark));
        if self.lists.len() > MAX_MARKS {
            self.lists.remove(0);
        }
    }

    /// Append this cursor as JSON (as serde would write it).
    fn write_json(&self, out: &mut String) {
        out.push_str(r#"{"rv":"#);
        push_json_str(out, &self.rv);
        if !self.lists.is_empty() {
            out.push_str(r#","lists":["#);
            for (i, (snap, key)) in self.lists.iter().enumerate() {
                out.push_str(if i == 0 { "[" } else { ",[" });
                push_json_str(out, snap);
                out.push(',');
                push_json_str(out, key);
                out.push(']');
            }
            out.push(']');
        }
        if let Some(since) = self.since {
            write!(out, r#","since":"{since}""#).expect("writing to a String cannot fail");
        }
        out.push('}');
    }
}

/// Append `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string serialises"));
    }
}

/// A checkpoint quoted in an error: the start of it.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

/// Every stream's cursor, by namespace (`""` for all namespaces): the source's position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Cursors {
    v: u32,
    /// The cluster the position belongs to: the uid of its `kube-system` namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cluster: Option<String>,
    ns: BTreeMap<String, Cursor>,
}

impl Cursors {
    pub(crate) fn new() -> Self {
        Cursors { v: 1, cluster: None, ns: BTreeMap::new() }
    }

    /// Parse a checkpointed position.
    pub(crate) fn parse(position: &Position) -> Result<Cursors> {
        match serde_json::from_str::<Cursors>(&position.0) {
            Ok(c) if c.v == 1 => Ok(c),
            _ => Err(Error::config(format!(
                "checkpoint position `{}` is not from the kubernetes source (or from a newer version of it)",
                shorten(&position.0)
            ))),
        }
    }

    /// Drop the cursors holding a version a watch cannot start from; returns their
    /// namespaces (`""` for all).
    pub(crate) fn drop_unsound(&mut self) -> Vec<String> {
        let bad: Vec<String> = self.ns.iter().filter(|(_, c)| !c.is_sound()).map(|(ns, _)| ns.clone()).collect();
        for ns in &bad {
            self.ns.remove(ns);
        }
        bad
    }

    /// The namespaces with a cursor (`""` for all).
    pub(crate) fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.ns.keys().map(String::as_str)
    }

    /// The cursor of `namespace`; a checkpoint of all namespaces also serves one of them
    /// (versions are cluster-wide).
    pub(crate) fn get(&self, namespace: &str) -> Option<&Cursor> {
        self.ns.get(namespace).or_else(|| self.ns.get(""))
    }

    pub(crate) fn set(&mut self, namespace: &str, cursor: Cursor) {
        self.ns.insert(namespace.to_owned(), cursor);
    }

    /// Move the cursor of `namespace` (one that was [`Cursors::set`]).
    pub(crate) fn apply(&mut self, namespace: &str, change: &Change) {
        if let Some(cursor) = self.ns.get_mut(namespace) {
            cursor.apply(change);
        }
    }

    /// The position as JSON. Written by hand: it is made for every event, and serde's
    /// generic path took a tenth of the source's time.
    pub(crate) fn position(&self) -> Position {
        // Sized in full up front: growing it cost a reallocation per event.
        let cursors: usize = self
            .ns
            .iter()
            .map(|(ns, c)| {
                let lists: usize = c.lists.iter().map(|(snap, key)| snap.len() + key.len() + 8).sum();
                ns.len() + c.rv.len() + lists + if c.since.is_some() { 48 } else { 0 } + 24
            })
            .sum();
        let mut out = String::with_capacity(32 + self.cluster.as_ref().map_or(0, |c| c.len() + 16) + cursors);
        // `v` is 1: `new` sets it and `parse` accepts nothing else.
        out.push_str(r#"{"v":1,"#);
        if let Some(cluster) = &self.cluster {
            out.push_str(r#""cluster":"#);
            push_json_str(&mut out, cluster);
            out.push(',');
        }
        out.push_str(r#""ns":{"#);
        for (i, (namespace, cursor)) in self.ns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(&mut out, namespace);
            out.push(':');
            cursor.write_json(&mut out);
        }
        out.push_str("}}");
        Position(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advance(rv: &str) -> Change {
        Change::advance(rv).expect("a valid version")
    }

    #[test]
    fn watch_versions_cover_what_came_before() {
        let mut c = Cursor::at("100");
        assert!(c.covers("100", "a/x", None));
        assert!(!c.covers("101", "a/x", None));
        c.apply(&advance("150"));
        assert!(c.covers("120", "z/z", None));
        c.apply(&advance("140")); // never goes back
        assert_eq!(c.rv, "150");
        // Not integers: nothing can be ordered, nothing is covered (repeats, never loss).
        assert!(!c.covers("abc", "a/x", None));
        assert!(!Cursor::at("abc").covers("1", "a/x", None));
        // ... and such a version never enters the cursor: watching from it would replay
        // history (empty) or be refused (422) on every start once checkpointed.
        for bad in ["", "abc", "12a", "-3", "+5", " 7", "1e3", "18446744073709551616"] {
            assert!(Change::advance(bad).is_none(), "{bad:?}");
            assert!(!valid(bad), "{bad:?}");
        }
        assert!(valid("0") && valid("18446744073709551615"));
    }

    #[test]
    fn unsound_checkpoint_entries_are_dropped() {
        let mut c = Cursors::new();
        c.set("good", Cursor::at("5"));
        c.set("fresh", Cursor::default());
        c.set("letters", Cursor::at("abc"));
        c.set("mark", Cursor { lists: vec![("x1".into(), "a/b".into())], ..Cursor::at("5") });
        assert_eq!(c.drop_unsound(), ["letters", "mark"]);
        assert_eq!(c.namespaces().collect::<Vec<_>>(), ["fresh", "good"]);
    }

    #[test]
    fn the_newest_version_claimed() {
        assert_eq!(Cursor::default().newest(), None);
        let mut c = Cursor::at("100");
        c.listed("250", "a/b");
        assert_eq!(c.newest(), Some(250));
        c.apply(&Change::Reset(Cursor::default()));
        assert_eq!(c, Cursor::default());
    }

    #[test]
    fn interrupted_lists_cover_their_prefix() {
        let mut c = Cursor::at("100");
        c.listed("200", "b/2");
        assert!(c.covers("150", "a/1", None)); // in the list prefix
        assert!(c.covers("200", "b/2", None));
        assert!(!c.covers("150", "c/1", None)); // after the prefix
        assert!(!c.covers("201", "a/1", None)); // changed after the snapshot
        assert!(c.covers("90", "z/9", None)); // before the old version
        // A later relist that gets past the old mark replaces it.
        c.listed("300", "a/0");
        assert_eq!(c.lists.len(), 2);
        c.listed("300", "c/0");
        assert_eq!(c.lists, [("300".to_owned(), "c/0".to_owned())]);
        c.apply(&Change::At("300".into()));
        assert_eq!(c, Cursor::at("300"));
        // Watching past a mark's snapshot makes it moot.
        let mut c = Cursor::at("100");
        c.listed("200", "b/2");
        c.apply(&advance("250"));
        assert!(c.lists.is_empty());
        for i in 0..10 {
            c.listed(&(300 + i).to_string(), &format!("a/{}", 9 - i));
        }
        assert_eq!(c.lists.len(), MAX_MARKS);
    }

    #[test]
    fn a_list_retried_at_the_same_snapshot_keeps_its_mark() {
        let mut c = Cursor::at("100");
        c.listed("200", "a/1");
        c.listed("200", "b/9");
        // The page after b/9 failed; the list starts again from the first page.
        c.listed("200", "a/1");
        assert!(c.covers("150", "b/5", None), "read by the first attempt");
        assert_eq!(c.lists, [("200".to_owned(), "b/9".to_owned())]);
        c.listed("200", "c/1");
        assert_eq!(c.lists, [("200".to_owned(), "c/1".to_owned())]);
    }

    #[test]
    fn since_skips_old_listed_events() {
        let since: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let c = Cursor { since: Some(since), ..Cursor::default() };
        assert!(c.needs_list());
        assert!(c.covers("5", "a/1", Some("2024-01-01T00:09:59Z".parse().unwrap())));
        assert!(!c.covers("5", "a/1", Some(since)));
    }

    #[test]
    fn positions_are_written_as_serde_writes_them() {
        let mut all = Cursors::new();
        all.cluster = Some("6a1f\"uid".into());
        all.set("", Cursor::at("42"));
        let mut listing = Cursor::at("7");
        listing.apply(&Change::Listed { snap: "90".into(), key: "prod/web-0.17b".into() });
        listing.apply(&Change::Listed { snap: "95".into(), key: "a\"b\\c\u{1}é/x".into() });
        all.set("prod", listing);
        all.set("tab\tns", Cursor { since: Some("2024-01-01T00:10:00.5Z".parse().unwrap()), ..Cursor::default() });
        let position = all.position();
        assert_eq!(position.0, serde_json::to_string(&all).unwrap());
        assert_eq!(Cursors::parse(&position).unwrap(), all);
    }

    #[test]
    fn positions_round_trip_and_reject_others() {
        let mut all = Cursors::new();
        all.set("", Cursor::at("42"));
        let pos = all.position();
        assert_eq!(pos.0, r#"{"v":1,"ns":{"":{"rv":"42"}}}"#);
        let back = Cursors::parse(&pos).unwrap();
        assert_eq!(back.get("prod"), Some(&Cursor::at("42")));
        assert!(Cursors::parse(&Position("rv=12".into())).is_err());
        assert!(Cursors::parse(&Position(r#"{"v":2,"ns":{}}"#.into())).is_err());
        let long = Position(format!(r#"{{"v":3,"ns":{{"":{{"rv":"{}"}}}}}}"#, "9".repeat(100_000)));
        let err = Cursors::parse(&long).unwrap_err().to_string();
        assert!(err.len() < 400 && err.contains("(100"), "{err}");
    }
}
