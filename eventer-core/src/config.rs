//! One configuration path: a component's settings are one serde struct, read alike from
//! its URI options (`?maxBatchLogs=100&internal=false`, every value text) and from a
//! config file's map (`maxBatchLogs: 100`, typed values).
//!
//! [`crate::uri::Options::take`] deserializes a struct from the options whose names are
//! its fields, turning text into the field's type (numbers, booleans, durations with
//! [`crate::duration`], enums by name, lists from repeated options), and leaves the other
//! options to the next reader; an option nobody took is rejected, listing the known ones.
//! Errors name the option: `option maxBatchLogs: invalid number `x``.
//!
//! ```
//! use std::time::Duration;
//! use eventer_core::{config::Secret, uri::ComponentUri};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "camelCase", deny_unknown_fields)]
//! struct Settings {
//!     max_batch_logs: Option<usize>,
//!     #[serde(default)]
//!     internal: bool,
//!     #[serde(default, with = "eventer_core::duration::option")]
//!     timeout: Option<Duration>,
//!     #[serde(default, deserialize_with = "eventer_core::config::comma_list")]
//!     namespaces: Vec<String>,
//!     token: Secret,
//! }
//!
//! let uri: ComponentUri = "demo:?maxBatchLogs=100&internal=true&timeout=5s&namespaces=a,b&token=t0k".parse()?;
//! let mut options = uri.options();
//! let s: Settings = options.take()?;
//! options.finish()?;
//! assert_eq!((s.max_batch_logs, s.internal, s.timeout), (Some(100), true, Some(Duration::from_secs(5))));
//! assert_eq!((s.namespaces, s.token.expose()), (vec!["a".to_owned(), "b".to_owned()], "t0k"));
//! assert_eq!(format!("{:?}", s.token), "***");
//!
//! let uri: ComponentUri = "demo:?maxBatchLogs=many&token=t".parse()?;
//! let err = uri.options().take::<Settings>().map(drop).unwrap_err();
//! assert_eq!(err.to_string(), "option maxBatchLogs: invalid number `many`");
//! # Ok::<(), eventer_core::Error>(())
//! ```

use std::{fmt, str::FromStr};

use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeOwned, IntoDeserializer, Visitor, value::SeqDeserializer},
};

/// An option's value: text from a URI, or a typed value from a config file.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// Text, converted to the field's type when read.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A list: a repeated URI option, or a config file's sequence.
    List(Vec<Value>),
    /// A map, from a config file (`label: {cluster: prod}`).
    Map(Vec<(String, Value)>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::List(items) => f.debug_list().entries(items).finish(),
            Value::Map(entries) => f.debug_map().entries(entries.iter().map(|(k, v)| (k, v))).finish(),
        }
    }
}

impl Value {
    /// The value as URI text: scalars as written; a list's items and a map's `key,value`
    /// entries are what the option would repeat (see [`Value::texts`]).
    pub fn texts(&self) -> Vec<String> {
        match self {
            Value::Text(s) => vec![s.clone()],
            Value::Bool(b) => vec![b.to_string()],
            Value::Int(n) => vec![n.to_string()],
            Value::Float(x) => vec![x.to_string()],
            Value::List(items) => items.iter().flat_map(Value::texts).collect(),
            Value::Map(entries) => entries.iter().map(|(k, v)| format!("{k},{}", v.texts().join(","))).collect(),
        }
    }

    /// The value with `$VAR`/`${VAR}` expanded in its text (a config file's values are
    /// expanded as a URI's are).
    ///
    /// # Errors
    /// An unset variable, naming it.
    pub fn expand_env(self) -> crate::Result<Value> {
        Ok(match self {
            Value::Text(s) => Value::Text(crate::uri::expand_env(&s)?),
            Value::List(items) => Value::List(items.into_iter().map(Value::expand_env).collect::<crate::Result<_>>()?),
            Value::Map(entries) => {
                Value::Map(entries.into_iter().map(|(k, v)| Ok((k, v.expand_env()?))).collect::<crate::Result<_>>()?)
            }
            other => other,
        })
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl<'de> Deserialize<'de> for Value {
    /// Any scalar, sequence or map of a config file.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean, list or map")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
                Ok(Value::Int(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
                i64::try_from(n).map(Value::Int).or_else(|_| Ok(Value::Text(n.to_string())))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Value, E> {
                Ok(Value::Float(x))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
                Ok(Value::Text(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
                Ok(Value::Text(s))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Text(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Text(String::new()))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                Value::deserialize(d)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Value::List(items))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A secret setting (a token, a password, a signing key). Its `Debug` shows `***`, and it
/// has no `Display` or `Serialize`, so no log line, error or dump of a config shows it;
/// [`Secret::expose`] is the one way to the text, where it is sent.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// The secret's text, to send where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty (an option given as `token=`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// The field names of the struct `T` deserializes as: the options it reads.
///
/// ```
/// #[derive(serde::Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct Settings { log_store: String, max_batch_logs: Option<usize> }
/// assert_eq!(eventer_core::config::names::<Settings>(), ["logStore", "maxBatchLogs"]);
/// ```
pub fn names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields(&'static [&'static str]);
    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = DeError;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, DeError> {
            self.0 = fields;
            Err(DeError("fields read".into()))
        }
        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DeError> {
            Err(DeError("not a struct".into()))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields = Fields(&[]);
    // Fails by design: the deserializer only records the fields it is asked for.
    T::deserialize(&mut fields).err();
    fields.0
}

/// Text from any scalar: a config file's `13800000000` or `true` where the setting is
/// text, as the same option in a URI would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("text, a number or a boolean")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text, E> {
                Ok(Text(s))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Text, E> {
                Ok(Text(b.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Text, E> {
                Ok(Text(x.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// For `#[serde(deserialize_with)]`: a list written as comma-separated text
/// (`namespaces=a,b`, kube-eventer's form), as repeated options, or as a config file's
/// sequence; items trimmed, empty ones dropped.
///
/// # Errors
/// When the value is not text or a list of scalars.
pub fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Text>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a comma-separated list, or a list")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Text>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<Text>, E> {
            Ok(vec![Text(s.to_owned())])
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Vec<Text>, E> {
            Ok(vec![Text(n.to_string())])
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Vec<Text>, E> {
            Ok(vec![Text(n.to_string())])
        }
    }
    Ok(d.deserialize_any(V)?
        .iter()
        .flat_map(|Text(s)| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Implement `Deserialize` through `FromStr`, so a setting reads from text the way its
/// `parse` does, with its error message: `impl_deserialize_from_str!(MsgType);`.
#[macro_export]
macro_rules! impl_deserialize_from_str {
    ($type:ty) => {
        impl<'de> ::serde::Deserialize<'de> for $type {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// A deserialization error; the option's name is added where the value was read.
#[derive(Debug)]
pub(crate) struct DeError(pub(crate) String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        DeError(format!("missing required option {field}"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError(format!("invalid value `{variant}` (expected {})", expected.join(" or ")))
    }
}

/// The options a struct reads, as a serde map.
pub(crate) struct OptionsDeserializer<'a> {
    pub(crate) entries: Vec<(&'a str, Value)>,
}

impl<'de> Deserializer<'de> for OptionsDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(Entries { entries: self.entries.into_iter(), value: None })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct Entries<'a> {
    entries: std::vec::IntoIter<(&'a str, Value)>,
    value: Option<(&'a str, Value)>,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, key_seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.value = Some((key, value));
        key_seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, value_seed: V) -> Result<V::Value, DeError> {
        let (key, value) = self.value.take().ok_or_else(|| DeError("a value without its option".into()))?;
        value_seed.deserialize(ValueDeserializer(value)).map_err(|e| DeError(format!("option {key}: {e}")))
    }
}

/// One option's value, converted to what the field asks for.
struct ValueDeserializer(Value);

impl ValueDeserializer {
    /// The one value of a single-valued option (repeats must agree).
    fn single(self) -> Result<Value, DeError> {
        match self.0 {
            Value::List(mut items) => {
                items.dedup();
                match items.len() {
                    1 => Ok(items.remove(0)),
                    0 => Err(DeError("no value".into())),
                    _ => Err(DeError("given more than once".into())),
                }
            }
            v => Ok(v),
        }
    }

    fn number<T: FromStr>(self) -> Result<T, DeError> {
        let text = match self.single()? {
            Value::Text(s) => s,
            Value::Int(n) => n.to_string(),
            Value::Float(x) => x.to_string(),
            v => return Err(DeError(format!("invalid number `{}`", v.texts().join(",")))),
        };
        text.trim().parse().map_err(|_| DeError(format!("invalid number `{text}`")))
    }
}

macro_rules! numbers {
    ($($method:ident $visit:ident $type:ty,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            visitor.$visit(self.number::<$type>()?)
        }
    )*};
}

impl<'de> Deserializer<'de> for ValueDeserializer {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Text(s) => visitor.visit_string(s),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(n) => visitor.visit_i64(n),
            Value::Float(x) => visitor.visit_f64(x),
            Value::List(items) => visitor.visit_seq(SeqDeserializer::new(items.into_iter().map(ValueDeserializer))),
            Value::Map(entries) => visitor.visit_map(de::value::MapDeserializer::new(
                entries.into_iter().map(|(k, v)| (k, ValueDeserializer(v))),
            )),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.single()? {
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => visitor.visit_bool(true),
                "false" | "0" | "no" | "off" => visitor.visit_bool(false),
                _ => Err(DeError(format!("invalid boolean `{s}`"))),
            },
            v => Err(DeError(format!("invalid boolean `{}`", v.texts().join(",")))),
        }
    }

    numbers! {
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16, deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64, deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64, deserialize_f32 visit_f32 f32,
        deserialize_f64 visit_f64 f64,
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.single()? {
            Value::Text(s) => visitor.visit_string(s),
            v @ (Value::Bool(_) | Value::Int(_) | Value::Float(_)) => visitor.visit_string(v.texts().remove(0)),
            _ => Err(DeError("expected text, got a map".into())),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    /// An option given with an empty value (`sign=`) is unset.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0 {
            Value::Text(s) if s.is_empty() => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    /// A list: repeated options, a config file's sequence, or one value.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let items = match self.0 {
            Value::List(items) => items,
            v => vec![v],
        };
        visitor.visit_seq(SeqDeserializer::new(items.into_iter().map(ValueDeserializer)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.single()? {
            Value::Text(s) => visitor.visit_enum(s.into_deserializer()),
            v => visitor.visit_enum(v.texts().join(",").into_deserializer()),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit_struct tuple tuple_struct map struct
    }
}

impl<'de> IntoDeserializer<'de, DeError> for ValueDeserializer {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::*;
    use crate::uri::ComponentUri;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Typed {
        n: u32,
        #[serde(default)]
        on: bool,
        #[serde(default)]
        x: Option<f64>,
        #[serde(default)]
        label: Vec<String>,
        #[serde(default, deserialize_with = "comma_list")]
        kinds: Vec<String>,
        #[serde(default, with = "crate::duration::option")]
        wait: Option<Duration>,
        #[serde(default)]
        tags: BTreeMap<String, String>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        sign: Option<Secret>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Text,
        Markdown,
    }

    fn from_uri(uri: &str) -> crate::Result<Typed> {
        let uri: ComponentUri = uri.parse().unwrap();
        let mut options = uri.options();
        let typed = options.take()?;
        options.finish()?;
        Ok(typed)
    }

    #[test]
    fn uri_text_and_file_values_read_alike() {
        let a = from_uri("t:?n=7&on=yes&x=0.5&label=a&label=b,c&kinds=Pod,7&wait=2s&mode=markdown&sign=").unwrap();
        let file: ComponentUri = "t:".parse().unwrap();
        let file = file.with_values([
            ("n".to_owned(), Value::Int(7)),
            ("on".to_owned(), Value::Bool(true)),
            ("x".to_owned(), Value::Float(0.5)),
            ("label".to_owned(), Value::List(vec!["a".into(), "b,c".into()])),
            ("kinds".to_owned(), Value::List(vec!["Pod".into(), Value::Int(7)])),
            ("wait".to_owned(), "2s".into()),
            ("mode".to_owned(), "markdown".into()),
        ]);
        let mut options = file.options();
        let b: Typed = options.take().unwrap();
        options.finish().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.label, ["a", "b,c"], "repeats are a list; commas split only where the field says so");
        assert_eq!(a.kinds, ["Pod", "7"]);
        assert_eq!((a.mode, a.sign), (Some(Mode::Markdown), None), "an empty value is unset");
    }

    #[test]
    fn errors_name_the_option() {
        let err = |uri: &str| from_uri(uri).unwrap_err().to_string();
        assert_eq!(err("t:?on=true"), "missing required option n");
        assert_eq!(err("t:?n=-1"), "option n: invalid number `-1`");
        assert_eq!(err("t:?n=1&n=2"), "option n: given more than once");
        assert_eq!(from_uri("t:?n=1&n=1").unwrap().n, 1, "a repeat that agrees is one value");
        assert_eq!(err("t:?n=1&on=maybe"), "option on: invalid boolean `maybe`");
        assert_eq!(err("t:?n=1&mode=card"), "option mode: invalid value `card` (expected text or markdown)");
        assert!(err("t:?n=1&wait=soon").starts_with("option wait: invalid duration `soon`"));
        assert_eq!(
            err("t:?n=1&colour=red"),
            "unknown option colour for t (known: kinds, label, mode, n, on, sign, tags, wait, x)"
        );
    }

    #[test]
    fn secrets_never_show() {
        let t = from_uri("t:?n=1&sign=SECsecret").unwrap();
        assert_eq!(t.sign.as_ref().map(Secret::expose), Some("SECsecret"));
        assert!(!format!("{t:?}").contains("SECsecret"));
    }

    #[test]
    fn names_lists_fields() {
        assert_eq!(names::<Typed>(), ["n", "on", "x", "label", "kinds", "wait", "tags", "mode", "sign"]);
    }
}
