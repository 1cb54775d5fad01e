//! Filters: which events a sink receives.
//!
//! A [`Filter`] is a synchronous predicate. Ready-made ones are in this module; they combine
//! with [`Filter::and`], [`Filter::or`] and [`Filter::not`], and [`filter_fn`] adapts a closure.
//! [`FilterSpec`] is the serde/URI form every sink accepts (`level`, `namespaces`, `kinds`,
//! `reasons`, ...).

use std::{collections::HashSet, fmt, sync::Arc};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    event::{Event, Level},
    uri::Options,
};

/// Decides whether an event is routed to a sink.
pub trait Filter: Send + Sync + 'static {
    /// `true` to keep the event.
    fn matches(&self, event: &Event) -> bool;

    /// Both filters must match.
    fn and<F: Filter>(self, other: F) -> And<Self, F>
    where
        Self: Sized,
    {
        And(self, other)
    }

    /// Either filter must match.
    fn or<F: Filter>(self, other: F) -> Or<Self, F>
    where
        Self: Sized,
    {
        Or(self, other)
    }

    /// Inverts the filter.
    fn not(self) -> Not<Self>
    where
        Self: Sized,
    {
        Not(self)
    }
}

/// A type-erased filter.
pub type BoxFilter = Arc<dyn Filter>;

impl<F: Filter + ?Sized> Filter for Arc<F> {
    fn matches(&self, event: &Event) -> bool {
        (**self).matches(event)
    }
}

impl<F: Filter + ?Sized> Filter for Box<F> {
    fn matches(&self, event: &Event) -> bool {
        (**self).matches(event)
    }
}

/// Every filter in the list must match; an empty list matches everything.
impl<F: Filter> Filter for Vec<F> {
    fn matches(&self, event: &Event) -> bool {
        self.iter().all(|f| f.matches(event))
    }
}

/// See [`Filter::and`].
#[derive(Debug, Clone)]
pub struct And<A, B>(A, B);
impl<A: Filter, B: Filter> Filter for And<A, B> {
    fn matches(&self, event: &Event) -> bool {
        self.0.matches(event) && self.1.matches(event)
    }
}

/// See [`Filter::or`].
#[derive(Debug, Clone)]
pub struct Or<A, B>(A, B);
impl<A: Filter, B: Filter> Filter for Or<A, B> {
    fn matches(&self, event: &Event) -> bool {
        self.0.matches(event) || self.1.matches(event)
    }
}

/// See [`Filter::not`].
#[derive(Debug, Clone)]
pub struct Not<A>(A);
impl<A: Filter> Filter for Not<A> {
    fn matches(&self, event: &Event) -> bool {
        !self.0.matches(event)
    }
}

/// A filter from a closure.
///
/// ```
/// use eventer_core::{Event, filter::{Filter, filter_fn}};
/// let oom = filter_fn(|e: &Event| e.reason.contains("OOM"));
/// assert!(oom.matches(&Event::builder().reason("SystemOOM").build()));
/// ```
pub fn filter_fn<F: Fn(&Event) -> bool + Send + Sync + 'static>(f: F) -> FilterFn<F> {
    FilterFn(f)
}

/// See [`filter_fn`].
pub struct FilterFn<F>(F);
impl<F: Fn(&Event) -> bool + Send + Sync + 'static> Filter for FilterFn<F> {
    fn matches(&self, event: &Event) -> bool {
        (self.0)(event)
    }
}
impl<F> fmt::Debug for FilterFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FilterFn")
    }
}

/// Events of type `threshold` or above (Normal < Warning; other types rank below Normal).
pub fn min_level(threshold: Level) -> MinLevel {
    MinLevel(threshold)
}

/// See [`min_level`].
#[derive(Debug, Clone)]
pub struct MinLevel(Level);
impl Filter for MinLevel {
    fn matches(&self, event: &Event) -> bool {
        event.level >= self.0
    }
}

/// Which field of the event a [`OneOf`] filter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The Event object's namespace (as kube-eventer's DingTalk sink matches).
    Namespace,
    /// The involved object's kind.
    Kind,
    /// The reason.
    Reason,
}

impl Field {
    fn get(self, event: &Event) -> &str {
        match self {
            Field::Namespace => &event.namespace,
            Field::Kind => &event.involved_object.kind,
            Field::Reason => &event.reason,
        }
    }
}

/// The field equals one of `values` (exact, case-sensitive).
pub fn one_of<I: IntoIterator<Item = S>, S: Into<String>>(field: Field, values: I) -> OneOf {
    OneOf { field, values: values.into_iter().map(Into::into).collect() }
}

/// See [`one_of`].
#[derive(Debug, Clone)]
pub struct OneOf {
    field: Field,
    values: HashSet<String>,
}
impl Filter for OneOf {
    fn matches(&self, event: &Event) -> bool {
        self.values.contains(self.field.get(event))
    }
}

/// Which text a [`Pattern`] filter searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// The involved object's name.
    Name,
    /// The message.
    Message,
}

/// The text matches `regex` (unanchored, like `grep`).
pub fn pattern(text: Text, regex: Regex) -> Pattern {
    Pattern { text, regex }
}

/// See [`pattern`].
#[derive(Debug, Clone)]
pub struct Pattern {
    text: Text,
    regex: Regex,
}
impl Filter for Pattern {
    fn matches(&self, event: &Event) -> bool {
        let text = match self.text {
            Text::Name => &event.involved_object.name,
            Text::Message => &event.message,
        };
        self.regex.is_match(text)
    }
}

/// The filter options every sink accepts, as a serde struct and as URI options.
///
/// | option | meaning |
/// |---|---|
/// | `level` | `Normal` (everything Normal or Warning) or `Warning`; case-insensitive |
/// | `namespaces`, `exclude_namespaces` | comma lists, matched against the Event's namespace |
/// | `kinds`, `exclude_kinds` | comma lists, matched against the involved object's kind |
/// | `reasons`, `exclude_reasons` | comma lists of reasons |
/// | `name`, `exclude_name` | regexes on the involved object's name |
/// | `message`, `exclude_message` | regexes on the message |
///
/// ```
/// use eventer_core::{Event, filter::{Filter, FilterSpec}, uri::ComponentUri};
/// let uri: ComponentUri = "stdout?level=warning&kinds=Pod,Node&exclude_reasons=Pulled".parse()?;
/// let mut options = uri.options();
/// let spec = FilterSpec::from_options(&mut options, None)?;
/// let filter = spec.build()?;
/// assert!(filter.matches(&Event::builder().kind("Node").reason("KernelOops").warning().build()));
/// assert!(!filter.matches(&Event::builder().kind("Pod").reason("Pulled").build()));
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterSpec {
    /// Minimum level; `None` lets every type through.
    pub level: Option<String>,
    /// Only these namespaces.
    pub namespaces: Vec<String>,
    /// Never these namespaces.
    pub exclude_namespaces: Vec<String>,
    /// Only these involved-object kinds.
    pub kinds: Vec<String>,
    /// Never these kinds.
    pub exclude_kinds: Vec<String>,
    /// Only these reasons.
    pub reasons: Vec<String>,
    /// Never these reasons.
    pub exclude_reasons: Vec<String>,
    /// Regex the involved object's name must match.
    pub name: Option<String>,
    /// Regex the involved object's name must not match.
    pub exclude_name: Option<String>,
    /// Regex the message must match.
    pub message: Option<String>,
    /// Regex the message must not match.
    pub exclude_message: Option<String>,
}

/// The option names [`FilterSpec::from_options`] consumes.
pub const FILTER_OPTIONS: &[&str] = &[
    "level",
    "namespaces",
    "exclude_namespaces",
    "kinds",
    "exclude_kinds",
    "reasons",
    "exclude_reasons",
    "name",
    "exclude_name",
    "message",
    "exclude_message",
];

impl FilterSpec {
    /// Take the filter options out of a URI's options. `default_level` applies when
    /// `level` is absent (DingTalk alerts default to Warning).
    ///
    /// # Errors
    /// A [`crate::ErrorKind::Config`] error naming the option when a value is invalid.
    pub fn from_options(options: &mut Options, default_level: Option<Level>) -> Result<Self> {
        let spec = FilterSpec {
            level: options.one("level")?.or_else(|| default_level.map(|l| l.as_str().to_owned())),
            namespaces: options.list("namespaces")?,
            exclude_namespaces: options.list("exclude_namespaces")?,
            kinds: options.list("kinds")?,
            exclude_kinds: options.list("exclude_kinds")?,
            reasons: options.list("reasons")?,
            exclude_reasons: options.list("exclude_reasons")?,
            name: options.one("name")?,
            exclude_name: options.one("exclude_name")?,
            message: options.one("message")?,
            exclude_message: options.one("exclude_message")?,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Check the level and compile the regexes.
    ///
    /// # Errors
    /// A configuration error naming the invalid option.
    pub fn validate(&self) -> Result<()> {
        self.build().map(drop)
    }

    /// Whether the spec lets everything through.
    pub fn is_empty(&self) -> bool {
        *self == FilterSpec::default()
    }

    /// The parsed level threshold.
    ///
    /// # Errors
    /// When `level` is neither Normal nor Warning.
    pub fn threshold(&self) -> Result<Option<Level>> {
        self.level
            .as_deref()
            .map(|l| {
                Level::parse_threshold(l).ok_or_else(|| {
                    Error::config(format!("option level: invalid value `{l}` (expected Normal or Warning)"))
                })
            })
            .transpose()
    }

    /// Build the composed filter.
    ///
    /// # Errors
    /// A configuration error naming the invalid option (level or regex).
    pub fn build(&self) -> Result<BoxFilter> {
        let mut all: Vec<BoxFilter> = Vec::new();
        if let Some(level) = self.threshold()? {
            all.push(Arc::new(min_level(level)));
        }
        let sets = [
            (&self.namespaces, &self.exclude_namespaces, Field::Namespace),
            (&self.kinds, &self.exclude_kinds, Field::Kind),
            (&self.reasons, &self.exclude_reasons, Field::Reason),
        ];
        for (include, exclude, field) in sets {
            if !include.is_empty() {
                all.push(Arc::new(one_of(field, include.iter().cloned())));
            }
            if !exclude.is_empty() {
                all.push(Arc::new(one_of(field, exclude.iter().cloned()).not()));
            }
        }
        let regexes = [
            ("name", &self.name, Text::Name, false),
            ("exclude_name", &self.exclude_name, Text::Name, true),
            ("message", &self.message, Text::Message, false),
            ("exclude_message", &self.exclude_message, Text::Message, true),
        ];
        for (option, re, text, negate) in regexes {
            let Some(re) = re else { continue };
            let regex = Regex::new(re)
                .map_err(|e| Error::config(format!("option {option}: invalid regex `{re}`")).with_source(e))?;
            if negate {
                all.push(Arc::new(pattern(text, regex).not()));
            } else {
                all.push(Arc::new(pattern(text, regex)));
            }
        }
        Ok(match all.len() {
            1 => all.pop().expect("one filter"),
            _ => Arc::new(all),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::ComponentUri;

    fn spec(uri: &str) -> Result<FilterSpec> {
        let uri: ComponentUri = uri.parse()?;
        FilterSpec::from_options(&mut uri.options(), None)
    }

    fn pod(ns: &str, reason: &str, warning: bool) -> Event {
        let b = Event::builder().kind("Pod").object(ns, "web-0").reason(reason).message("boom at 12:00");
        if warning { b.warning().build() } else { b.build() }
    }

    #[test]
    fn level_threshold_orders_types() {
        let warn = spec("x?level=Warning").unwrap().build().unwrap();
        let normal = spec("x?level=normal").unwrap().build().unwrap();
        let custom = Event::builder().level(Level::Other("Custom".into())).build();
        assert!(warn.matches(&pod("a", "BackOff", true)));
        assert!(!warn.matches(&pod("a", "Pulled", false)));
        assert!(normal.matches(&pod("a", "Pulled", false)));
        assert!(normal.matches(&pod("a", "BackOff", true)));
        assert!(!normal.matches(&custom));
        assert!(spec("x").unwrap().build().unwrap().matches(&custom));
    }

    #[test]
    fn lists_include_and_exclude() {
        let f = spec("x?namespaces=prod,staging&exclude_reasons=Pulled,Created&kinds=Pod").unwrap().build().unwrap();
        assert!(f.matches(&pod("prod", "BackOff", true)));
        assert!(!f.matches(&pod("dev", "BackOff", true)));
        assert!(!f.matches(&pod("prod", "Pulled", false)));
        let node = Event::builder().kind("Node").object("", "n1").reason("KernelOops").build();
        assert!(!f.matches(&node));
    }

    #[test]
    fn regexes_on_name_and_message() {
        let f = spec("x?name=^web-&exclude_message=12:00").unwrap().build().unwrap();
        assert!(!f.matches(&pod("a", "BackOff", true)));
        let f = spec("x?name=^web-&message=boom").unwrap().build().unwrap();
        assert!(f.matches(&pod("a", "BackOff", true)));
        let f = spec("x?name=^api-").unwrap().build().unwrap();
        assert!(!f.matches(&pod("a", "BackOff", true)));
    }

    #[test]
    fn invalid_values_name_the_option() {
        let err = spec("x?level=Normal,Warning").unwrap_err();
        assert_eq!(err.to_string(), "option level: invalid value `Normal,Warning` (expected Normal or Warning)");
        let err = spec("x?message=(unclosed").unwrap_err();
        assert!(err.to_string().starts_with("option message: invalid regex"), "{err}");
    }

    #[test]
    fn combinators() {
        let warn = min_level(Level::Warning);
        let backoff = one_of(Field::Reason, ["BackOff"]);
        let ev = pod("a", "BackOff", false);
        assert!(!warn.clone().and(backoff.clone()).matches(&ev));
        assert!(warn.clone().or(backoff.clone()).matches(&ev));
        assert!(warn.not().matches(&ev));
        assert!(Vec::<BoxFilter>::new().matches(&ev));
    }
}
