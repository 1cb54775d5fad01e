//! Filters: which events a sink receives.
//!
//! A [`Filter`] is a synchronous predicate. Ready-made ones are in this module; they combine
//! with [`Filter::and`], [`Filter::or`] and [`Filter::not`], and [`filter_fn`] adapts a closure.
//! [`FilterSpec`] is the serde/URI form every sink accepts (`level`, `namespaces`, `kinds`,
//! `reasons`, ...), compiled once into a [`CompiledFilter`].

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

/// A `level` option: the least severe event type a sink receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Threshold {
    /// Normal and Warning events (other types rank below Normal).
    Normal,
    /// Warning events only.
    Warning,
}

impl Threshold {
    /// The event level this threshold starts at.
    pub fn level(self) -> Level {
        match self {
            Threshold::Normal => Level::Normal,
            Threshold::Warning => Level::Warning,
        }
    }

    /// `Normal` or `Warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Threshold::Normal => "Normal",
            Threshold::Warning => "Warning",
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Case-insensitive, as kube-eventer's `level` option.
///
/// ```
/// use eventer_core::filter::Threshold;
/// assert_eq!("warning".parse::<Threshold>()?, Threshold::Warning);
/// assert_eq!(
///     "Warn".parse::<Threshold>().unwrap_err().to_string(),
///     "option level: invalid value `Warn` (expected Normal or Warning)"
/// );
/// # Ok::<(), eventer_core::Error>(())
/// ```
impl std::str::FromStr for Threshold {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match Level::parse_threshold(s) {
            Some(Level::Normal) => Ok(Threshold::Normal),
            Some(Level::Warning) => Ok(Threshold::Warning),
            _ => Err(Error::config(format!("option level: invalid value `{s}` (expected Normal or Warning)"))),
        }
    }
}

/// Only Normal and Warning are thresholds; another type is refused as a `level` value would be.
impl TryFrom<Level> for Threshold {
    type Error = Error;

    fn try_from(level: Level) -> Result<Self> {
        level.as_str().parse()
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom(format_args!("invalid value `{s}` (expected Normal or Warning)")))
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
/// use eventer_core::{Event, filter::{Filter, FilterSpec, Threshold}, uri::ComponentUri};
/// let uri: ComponentUri = "stdout?level=warning&kinds=Pod,Node&exclude_reasons=Pulled".parse()?;
/// let mut options = uri.options();
/// let spec = FilterSpec::from_options(&mut options, None)?;
/// assert_eq!(spec.level, Some(Threshold::Warning));
/// assert_eq!(spec.to_string(), "exclude_reasons=Pulled kinds=Pod,Node level=Warning");
/// let filter = spec.compile()?;
/// assert!(filter.matches(&Event::builder().kind("Node").reason("KernelOops").warning().build()));
/// assert!(!filter.matches(&Event::builder().kind("Pod").reason("Pulled").build()));
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterSpec {
    /// Minimum level; `None` lets every type through.
    pub level: Option<Threshold>,
    /// Only these namespaces.
    #[serde(deserialize_with = "crate::config::comma_list")]
    pub namespaces: Vec<String>,
    /// Never these namespaces.
    #[serde(deserialize_with = "crate::config::comma_list")]
    pub exclude_namespaces: Vec<String>,
    /// Only these involved-object kinds.
    #[serde(deserialize_with = "crate::config::comma_list")]
    pub kinds: Vec<String>,
    /// Never these kinds.
    #[serde(deserialize_with = "crate::config::comma_list")]
    pub exclude_kinds: Vec<String>,
    /// Only these reasons.
    #[serde(deserialize_with = "crate::config::comma_list")]
    pub reasons: Vec<String>,
    /// Never these reasons.
    #[serde(deserialize_with = "crate::config::comma_list")]
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

impl FilterSpec {
    /// Take the filter options out of a URI's options and check them (the regexes
    /// compile). `default_level` applies when `level` is absent (DingTalk alerts default
    /// to Warning). To keep the compiled filter, use [`CompiledFilter::from_options`].
    ///
    /// # Errors
    /// A [`crate::ErrorKind::Config`] error naming the option when a value is invalid.
    pub fn from_options(options: &mut Options, default_level: Option<Level>) -> Result<Self> {
        CompiledFilter::from_options(options, default_level).map(CompiledFilter::into_spec)
    }

    /// The options, parsed; the regexes are compiled by [`FilterSpec::compile`].
    fn parse(options: &mut Options, default_level: Option<Level>) -> Result<Self> {
        let mut spec: FilterSpec = options.take()?;
        if spec.level.is_none() {
            spec.level = default_level.map(Threshold::try_from).transpose()?;
        }
        Ok(spec)
    }

    /// Compile the regexes.
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

    /// Compile the spec into the filter a route applies, keeping the spec to show.
    ///
    /// # Errors
    /// A configuration error naming the invalid regex option.
    pub fn compile(self) -> Result<CompiledFilter> {
        let filter = if self.is_empty() { None } else { Some(self.build()?) };
        Ok(CompiledFilter { spec: self, filter })
    }

    /// Build the composed filter.
    ///
    /// # Errors
    /// A configuration error naming the invalid regex option.
    pub fn build(&self) -> Result<BoxFilter> {
        let mut all: Vec<BoxFilter> = Vec::new();
        if let Some(threshold) = self.level {
            all.push(Arc::new(min_level(threshold.level())));
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

/// The options that are set, as `option=value` in alphabetical order
/// (`kinds=Pod,Node level=Warning`); empty for an empty spec.
impl fmt::Display for FilterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = |v: &Option<String>| v.clone();
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.join(","));
        let fields = [
            ("exclude_kinds", list(&self.exclude_kinds)),
            ("exclude_message", one(&self.exclude_message)),
            ("exclude_name", one(&self.exclude_name)),
            ("exclude_namespaces", list(&self.exclude_namespaces)),
            ("exclude_reasons", list(&self.exclude_reasons)),
            ("kinds", list(&self.kinds)),
            ("level", self.level.map(|l| l.as_str().to_owned())),
            ("message", one(&self.message)),
            ("name", one(&self.name)),
            ("namespaces", list(&self.namespaces)),
            ("reasons", list(&self.reasons)),
        ];
        let mut first = true;
        for (option, value) in fields {
            let Some(value) = value else { continue };
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{option}={value}")?;
        }
        Ok(())
    }
}

/// A [`FilterSpec`] compiled once, with the spec it came from: what a sink's route applies
/// and what `eventer check` shows.
#[derive(Clone)]
pub struct CompiledFilter {
    spec: FilterSpec,
    /// `None` for an empty spec: everything matches without a call.
    filter: Option<BoxFilter>,
}

impl CompiledFilter {
    /// Take the filter options out of a URI's options and compile them; see
    /// [`FilterSpec::from_options`].
    ///
    /// # Errors
    /// A [`crate::ErrorKind::Config`] error naming the option when a value is invalid.
    pub fn from_options(options: &mut Options, default_level: Option<Level>) -> Result<Self> {
        FilterSpec::parse(options, default_level)?.compile()
    }

    /// The spec it was compiled from.
    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }

    /// The spec it was compiled from.
    pub fn into_spec(self) -> FilterSpec {
        self.spec
    }

    /// The filter for a route; `None` when the spec lets everything through.
    pub fn into_filter(self) -> Option<BoxFilter> {
        self.filter
    }
}

impl Filter for CompiledFilter {
    fn matches(&self, event: &Event) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(event))
    }
}

impl fmt::Debug for CompiledFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CompiledFilter").field(&self.spec).finish()
    }
}

impl fmt::Display for CompiledFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.spec.fmt(f)
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
    fn level_is_typed_in_uris_and_serde() {
        assert_eq!(spec("x?level=wArNiNg").unwrap().level, Some(Threshold::Warning));
        assert_eq!(spec("x").unwrap().level, None);
        let uri: ComponentUri = "x".parse().unwrap();
        let dingtalk = FilterSpec::from_options(&mut uri.options(), Some(Level::Warning)).unwrap();
        assert_eq!(dingtalk.level, Some(Threshold::Warning));
        let err = FilterSpec::from_options(&mut uri.options(), Some(Level::Other("Info".into()))).unwrap_err();
        assert_eq!(err.to_string(), "option level: invalid value `Info` (expected Normal or Warning)");
        let parsed: FilterSpec = serde_json::from_str(r#"{"level":"normal","kinds":["Node"]}"#).unwrap();
        assert_eq!((parsed.level, parsed.kinds.as_slice()), (Some(Threshold::Normal), &["Node".to_owned()][..]));
        assert_eq!(serde_json::to_value(&parsed).unwrap()["level"], "Normal");
        let err = serde_json::from_str::<FilterSpec>(r#"{"level":"Error"}"#).unwrap_err().to_string();
        assert!(err.starts_with("invalid value `Error` (expected Normal or Warning)"), "{err}");
    }

    #[test]
    fn compiled_filters_match_and_show_their_spec() {
        let uri: ComponentUri = "x?name=^web-&level=warning&namespaces=a,b&exclude_reasons=Pulled".parse().unwrap();
        let compiled = CompiledFilter::from_options(&mut uri.options(), None).unwrap();
        assert_eq!(compiled.to_string(), "exclude_reasons=Pulled level=Warning name=^web- namespaces=a,b");
        assert!(compiled.matches(&pod("a", "BackOff", true)));
        assert!(!compiled.matches(&pod("a", "BackOff", false)));
        assert!(!compiled.matches(&pod("c", "BackOff", true)));
        assert!(compiled.clone().into_filter().unwrap().matches(&pod("b", "BackOff", true)));
        let everything = FilterSpec::default().compile().unwrap();
        assert_eq!(everything.to_string(), "");
        assert!(everything.matches(&pod("c", "Pulled", false)));
        assert!(everything.into_filter().is_none(), "an empty spec adds no filter to the route");
        let uri: ComponentUri = "x?exclude_name=(".parse().unwrap();
        let err = CompiledFilter::from_options(&mut uri.options(), None).unwrap_err();
        assert!(err.to_string().starts_with("option exclude_name: invalid regex `(`"), "{err}");
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
