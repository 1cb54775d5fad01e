//! The object store: etcd-like revisions, history, compaction, consistent snapshots.

use std::{
    collections::{BTreeMap, VecDeque},
    ops::Bound,
    sync::Arc,
    time::Instant,
};

use serde_json::Value;

/// The resources the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Resource {
    Events,
    ConfigMaps,
    Leases,
}

impl Resource {
    fn index(self) -> usize {
        match self {
            Resource::Events => 0,
            Resource::ConfigMaps => 1,
            Resource::Leases => 2,
        }
    }

    pub(crate) fn plural(self) -> &'static str {
        match self {
            Resource::Events => "events",
            Resource::ConfigMaps => "configmaps",
            Resource::Leases => "leases",
        }
    }

    pub(crate) fn kind(self) -> &'static str {
        match self {
            Resource::Events => "Event",
            Resource::ConfigMaps => "ConfigMap",
            Resource::Leases => "Lease",
        }
    }

    /// The apiVersion objects are stored with.
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            Resource::Events | Resource::ConfigMaps => "v1",
            Resource::Leases => "coordination.k8s.io/v1",
        }
    }

    /// Field labels usable in a field selector, as stored (core/v1 names).
    fn selectable(self) -> &'static [&'static str] {
        match self {
            Resource::Events => &[
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            Resource::ConfigMaps | Resource::Leases => &["metadata.name", "metadata.namespace"],
        }
    }
}

/// One stored object version.
#[derive(Debug)]
pub(crate) struct Obj {
    pub(crate) rv: u64,
    /// `namespace/name`, the etcd key suffix: lists are ordered by it.
    pub(crate) key: String,
    /// The full object, compact JSON.
    pub(crate) json: String,
    /// Values of the selectable fields, in `Resource::selectable` order.
    fields: Vec<String>,
    /// When this version was written, for TTL expiry (each write renews an Event's TTL).
    written: Instant,
}

impl Obj {
    /// Wrap an object value whose metadata (name, namespace, resourceVersion) is final.
    pub(crate) fn new(resource: Resource, value: &Value, rv: u64) -> Obj {
        let meta = &value["metadata"];
        let key = format!("{}/{}", str_at(meta, "namespace"), str_at(meta, "name"));
        let fields = resource
            .selectable()
            .iter()
            .map(|label| {
                let v = if *label == "source" {
                    &value["source"]["component"]
                } else {
                    label.split('.').fold(value, |v, part| &v[part])
                };
                match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                }
            })
            .collect();
        Obj { rv, key, json: value.to_string(), fields, written: Instant::now() }
    }

    pub(crate) fn value(&self) -> Value {
        serde_json::from_str(&self.json).expect("stored objects are valid JSON")
    }

    pub(crate) fn namespace(&self) -> &str {
        self.key.split_once('/').map_or("", |(ns, _)| ns)
    }
}

/// An object with placeholders, made into many objects cheaply: building and
/// serialising a JSON value per object takes seconds for 100k objects in a debug build.
#[derive(Debug)]
pub(crate) struct Template {
    key: Pieces,
    json: Pieces,
    fields: Vec<Pieces>,
}

/// Text, each piece followed by the value of a slot (or nothing, for the last).
type Pieces = Vec<(String, Option<usize>)>;

impl Template {
    /// `obj`, whose texts contain the placeholders `slots`.
    pub(crate) fn new(obj: &Obj, slots: &[&str]) -> Template {
        let split = |mut rest: &str| {
            let mut pieces = Vec::new();
            loop {
                let next = slots.iter().enumerate().filter_map(|(i, s)| rest.find(s).map(|at| (at, i))).min();
                match next {
                    Some((at, i)) => {
                        pieces.push((rest[..at].to_owned(), Some(i)));
                        rest = &rest[at + slots[i].len()..];
                    }
                    None => {
                        pieces.push((rest.to_owned(), None));
                        return pieces;
                    }
                }
            }
        };
        Template { key: split(&obj.key), json: split(&obj.json), fields: obj.fields.iter().map(|f| split(f)).collect() }
    }

    /// The object at revision `rv`, with `values[i]` in place of placeholder `i`.
    pub(crate) fn instantiate(&self, rv: u64, values: &[&str]) -> Obj {
        let fill = |pieces: &Pieces| {
            let mut out = String::new();
            for (text, slot) in pieces {
                out.push_str(text);
                if let Some(i) = slot {
                    out.push_str(values[*i]);
                }
            }
            out
        };
        Obj {
            rv,
            key: fill(&self.key),
            json: fill(&self.json),
            fields: self.fields.iter().map(fill).collect(),
            written: Instant::now(),
        }
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// A parsed field selector, e.g. `type=Warning,involvedObject.kind!=Node`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    terms: Vec<(usize, bool, String)>,
}

impl Selector {
    /// Parse `selector` for `resource`; `rename` maps the request's API field names
    /// onto the stored (core/v1) ones.
    pub(crate) fn parse(resource: Resource, selector: &str, rename: fn(&str) -> &str) -> Result<Selector, String> {
        let mut terms = Vec::new();
        for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!("invalid selector: '{selector}'; can't understand '{term}'"));
            };
            let field = field.trim();
            let index = resource
                .selectable()
                .iter()
                .position(|l| *l == rename(field))
                .ok_or_else(|| format!("field label not supported: {field}"))?;
            terms.push((index, equal, value.trim().to_owned()));
        }
        Ok(Selector { terms })
    }

    pub(crate) fn matches(&self, obj: &Obj) -> bool {
        self.terms.iter().all(|(i, equal, value)| (obj.fields[*i] == *value) == *equal)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One revision in the history.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) rv: u64,
    pub(crate) resource: Resource,
    pub(crate) kind: ChangeType,
    /// The new state (for a deletion: the last state, carrying the deletion's revision).
    pub(crate) obj: Arc<Obj>,
    /// The state before, to serve older snapshots and selector transitions.
    pub(crate) prev: Option<Arc<Obj>>,
}

impl Change {
    /// How a watcher with `selector` sees this change, if at all: an update that moves
    /// an object into (out of) the selection is an ADDED (DELETED).
    pub(crate) fn seen_as(&self, selector: &Selector) -> Option<ChangeType> {
        let now = self.kind != ChangeType::Deleted && selector.matches(&self.obj);
        let before = match self.kind {
            ChangeType::Added => false,
            ChangeType::Modified => self.prev.as_ref().is_some_and(|p| selector.matches(p)),
            ChangeType::Deleted => selector.matches(&self.obj),
        };
        match (before, now) {
            (false, true) => Some(ChangeType::Added),
            (true, true) => Some(ChangeType::Modified),
            (true, false) => Some(ChangeType::Deleted),
            (false, false) => None,
        }
    }
}

/// Why a read at a revision failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The revision was compacted away.
    Compacted { requested: u64, oldest: u64 },
    /// The revision is in the future.
    TooLarge { requested: u64, current: u64 },
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) items: Vec<Arc<Obj>>,
    /// The key to continue after, when more items match.
    pub(crate) next: Option<String>,
    /// Items left after this page (only computed without a selector, as the apiserver does).
    pub(crate) remaining: Option<usize>,
}

/// Objects, the global revision and the change history.
#[derive(Debug)]
pub(crate) struct Store {
    rv: u64,
    /// History before this revision is gone; reads and watches from older revisions fail.
    compacted: u64,
    objects: [BTreeMap<String, Arc<Obj>>; 3],
    history: VecDeque<Arc<Change>>,
}

impl Default for Store {
    /// An empty store at revision 1, as a new etcd is: no list ever shows revision 0,
    /// which clients read as "any version".
    fn default() -> Self {
        Store { rv: 1, compacted: 0, objects: Default::default(), history: VecDeque::new() }
    }
}

impl Store {
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    pub(crate) fn compacted(&self) -> u64 {
        self.compacted
    }

    pub(crate) fn next_rv(&self) -> u64 {
        self.rv + 1
    }

    pub(crate) fn get(&self, resource: Resource, key: &str) -> Option<&Arc<Obj>> {
        self.objects[resource.index()].get(key)
    }

    pub(crate) fn len(&self, resource: Resource) -> usize {
        self.objects[resource.index()].len()
    }

    /// Keys of the objects of `resource` last written before `cutoff`.
    pub(crate) fn written_before(&self, resource: Resource, cutoff: Instant) -> Vec<String> {
        self.objects[resource.index()].values().filter(|o| o.written < cutoff).map(|o| o.key.clone()).collect()
    }

    /// Record a new state for `obj.key` at revision `obj.rv` (which must be `next_rv`).
    pub(crate) fn put(&mut self, resource: Resource, obj: Obj) -> Arc<Obj> {
        debug_assert_eq!(obj.rv, self.rv + 1);
        self.rv = obj.rv;
        let obj = Arc::new(obj);
        let prev = self.objects[resource.index()].insert(obj.key.clone(), obj.clone());
        let kind = if prev.is_some() { ChangeType::Modified } else { ChangeType::Added };
        self.history.push_back(Arc::new(Change { rv: self.rv, resource, kind, obj: obj.clone(), prev }));
        obj
    }

    /// Delete `key`; the DELETED change carries the last state at the deletion's revision.
    pub(crate) fn delete(&mut self, resource: Resource, key: &str) -> Option<Arc<Obj>> {
        let prev = self.objects[resource.index()].remove(key)?;
        self.rv += 1;
        let mut value = prev.value();
        value["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let tomb = Arc::new(Obj::new(resource, &value, self.rv));
        self.history.push_back(Arc::new(Change {
            rv: self.rv,
            resource,
            kind: ChangeType::Deleted,
            obj: tomb.clone(),
            prev: Some(prev),
        }));
        Some(tomb)
    }

    /// Forget history up to the current revision, as etcd's compaction does.
    pub(crate) fn compact(&mut self) -> u64 {
        self.history.clear();
        self.compacted = self.rv;
        self.rv
    }

    /// Changes after `after`, at most `max`, or an error when some were compacted.
    pub(crate) fn changes_after(&self, after: u64, max: usize) -> Result<Vec<Arc<Change>>, ReadError> {
        if after < self.compacted {
            return Err(ReadError::Compacted { requested: after, oldest: self.compacted });
        }
        let start = self.history.partition_point(|c| c.rv <= after);
        Ok(self.history.range(start..).take(max).cloned().collect())
    }

    /// Check that a consistent read at `rv` is possible.
    fn check_readable(&self, rv: u64) -> Result<(), ReadError> {
        if rv > self.rv {
            Err(ReadError::TooLarge { requested: rv, current: self.rv })
        } else if rv < self.compacted {
            Err(ReadError::Compacted { requested: rv, oldest: self.compacted })
        } else {
            Ok(())
        }
    }

    /// A page of the objects of `resource` as they were at revision `at`, in key order,
    /// starting after `after`, within `namespace` (all when `None`).
    pub(crate) fn list(
        &self,
        resource: Resource,
        at: u64,
        namespace: Option<&str>,
        selector: &Selector,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page, ReadError> {
        self.check_readable(at)?;
        // Undo the changes made after `at`, oldest last so that its `prev` wins.
        let mut overlay: BTreeMap<&str, Option<&Arc<Obj>>> = BTreeMap::new();
        for change in self.history.iter().rev().take_while(|c| c.rv > at) {
            if change.resource == resource {
                overlay.insert(change.obj.key.as_str(), change.prev.as_ref());
            }
        }
        let prefix = namespace.map(|ns| format!("{ns}/"));
        let lower = match (after, &prefix) {
            (Some(a), _) => Bound::Excluded(a),
            (None, Some(p)) => Bound::Included(p.as_str()),
            (None, None) => Bound::Unbounded,
        };
        let current = self.objects[resource.index()]
            .range::<str, _>((lower, Bound::Unbounded))
            .map(|(k, v)| (k.as_str(), Some(v)));
        let older = overlay.range::<str, _>((lower, Bound::Unbounded)).map(|(k, v)| (*k, *v));
        let in_namespace = |k: &str| prefix.as_deref().is_none_or(|p| k.starts_with(p));
        let mut visible = merge(current, older)
            .take_while(|(k, _)| in_namespace(k))
            .filter_map(|(_, v)| v)
            .filter(|o| selector.matches(o));
        let limit = limit.unwrap_or(usize::MAX);
        let items: Vec<Arc<Obj>> = visible.by_ref().take(limit).cloned().collect();
        let rest = if items.len() == limit { visible.count() } else { 0 };
        let next = (rest > 0).then(|| items.last().map(|o| o.key.clone())).flatten();
        let remaining = (rest > 0 && selector.is_empty()).then_some(rest);
        Ok(Page { items, next, remaining })
    }
}

/// Merge two key-ordered sequences; on equal keys the second (the older state) wins.
fn merge<'a>(
    a: impl Iterator<Item = (&'a str, Option<&'a Arc<Obj>>)>,
    b: impl Iterator<Item = (&'a str, Option<&'a Arc<Obj>>)>,
) -> impl Iterator<Item = (&'a str, Option<&'a Arc<Obj>>)> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => match x.0.cmp(y.0) {
            std::cmp::Ordering::Less => a.next(),
            std::cmp::Ordering::Greater => b.next(),
            std::cmp::Ordering::Equal => {
                a.next();
                b.next()
            }
        },
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(store: &mut Store, ns: &str, name: &str, v: &str) {
        let rv = store.next_rv();
        let value =
            json!({"metadata": {"namespace": ns, "name": name, "resourceVersion": rv.to_string()}, "data": {"v": v}});
        store.put(Resource::ConfigMaps, Obj::new(Resource::ConfigMaps, &value, rv));
    }

    fn names(page: &Page) -> Vec<(String, String)> {
        page.items.iter().map(|o| (o.key.clone(), o.value()["data"]["v"].as_str().unwrap().to_owned())).collect()
    }

    #[test]
    fn snapshots_undo_later_changes() {
        let mut s = Store::default();
        cm(&mut s, "a", "x", "1"); // rv 2
        cm(&mut s, "a", "y", "1"); // rv 3
        cm(&mut s, "a", "x", "2"); // rv 4
        s.delete(Resource::ConfigMaps, "a/y"); // rv 5
        cm(&mut s, "a", "z", "1"); // rv 6
        let all = Selector::default();
        let at = |rv| names(&s.list(Resource::ConfigMaps, rv, None, &all, None, None).unwrap());
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(at(1), []);
        assert_eq!(at(3), [kv("a/x", "1"), kv("a/y", "1")]);
        assert_eq!(at(4), [kv("a/x", "2"), kv("a/y", "1")]);
        assert_eq!(at(6), [kv("a/x", "2"), kv("a/z", "1")]);
        assert_eq!(
            s.list(Resource::ConfigMaps, 7, None, &all, None, None).unwrap_err(),
            ReadError::TooLarge { requested: 7, current: 6 }
        );
        s.compact();
        assert_eq!(
            s.list(Resource::ConfigMaps, 5, None, &all, None, None).unwrap_err(),
            ReadError::Compacted { requested: 5, oldest: 6 }
        );
        assert!(matches!(s.changes_after(5, 10), Err(ReadError::Compacted { .. })));
        assert!(s.changes_after(6, 10).unwrap().is_empty());
    }

    #[test]
    fn pages_follow_etcd_key_order() {
        let mut s = Store::default();
        for (ns, name) in [("a", "2"), ("a-b", "1"), ("a", "1"), ("b", "1")] {
            cm(&mut s, ns, name, "v");
        }
        let all = Selector::default();
        let p = s.list(Resource::ConfigMaps, 5, None, &all, None, Some(2)).unwrap();
        // `-` sorts before `/`, as in etcd keys.
        assert_eq!(p.items.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a-b/1", "a/1"]);
        assert_eq!((p.next.as_deref(), p.remaining), (Some("a/1"), Some(2)));
        let p = s.list(Resource::ConfigMaps, 5, None, &all, p.next.as_deref(), Some(2)).unwrap();
        assert_eq!(p.items.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a/2", "b/1"]);
        assert_eq!(p.next, None);
        let p = s.list(Resource::ConfigMaps, 5, Some("a"), &all, None, None).unwrap();
        assert_eq!(p.items.len(), 2);
    }

    #[test]
    fn selectors() {
        let ev = |t: &str, kind: &str| {
            let v = json!({"metadata": {"namespace": "n", "name": "e"}, "type": t, "involvedObject": {"kind": kind}, "source": {"component": "kubelet"}});
            Obj::new(Resource::Events, &v, 1)
        };
        fn keep(s: &str) -> &str {
            s
        }
        let sel = Selector::parse(Resource::Events, "type=Warning,involvedObject.kind!=Node", keep).unwrap();
        assert!(sel.matches(&ev("Warning", "Pod")));
        assert!(!sel.matches(&ev("Warning", "Node")));
        assert!(!sel.matches(&ev("Normal", "Pod")));
        assert!(Selector::parse(Resource::Events, "source==kubelet", keep).unwrap().matches(&ev("Normal", "Pod")));
        assert_eq!(
            Selector::parse(Resource::Events, "colour=red", keep).unwrap_err(),
            "field label not supported: colour"
        );
        assert!(Selector::parse(Resource::ConfigMaps, "type=x", keep).is_err());
    }
}
