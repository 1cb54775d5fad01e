//! Go's `text/template`, the subset kube-eventer's webhook users write: actions, `if`/
//! `else if`/`range`/`with`/`else`, `break`/`continue`, variables, pipelines, parenthesised
//! pipelines, comments, trim markers, and the builtin functions (`and or not eq ne lt le gt
//! ge len index slice print printf println js html urlquery`), over values that mirror
//! Go's: structs whose missing fields are errors, maps whose missing keys print
//! `<no value>`, typed nil pointers, and `time.Time` printed as Go prints it.
//!
//! Not supported (a parse error says so): `define`, `template`, `block` and `call`.

mod exec;
mod fmt;
mod parse;

use std::{collections::BTreeMap, sync::Arc};

use jiff::Zoned;

pub(crate) use fmt::go_time;

/// A value as Go's reflection sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// No value at all (a missing map key): prints `<no value>`.
    Missing,
    /// The untyped `nil`.
    Nil,
    /// A nil pointer of the named type (`*v1.EventSeries`): prints `<nil>`.
    NilPtr(&'static str),
    Bool(bool),
    /// An integer and its Go type (`int`, `int32`, `int64`).
    Int(i64, &'static str),
    Float(f64),
    Str(String),
    /// A `metav1.Time`/`MicroTime` in its zone (`None`: Go's zero time, in UTC), named by
    /// its Go type.
    Time(Option<Zoned>, &'static str),
    List(Vec<Value>),
    /// A `map[string]string` (labels, annotations).
    Map(BTreeMap<String, Value>),
    Struct(Arc<Struct>),
}

/// A Go struct value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Struct {
    /// The Go type, as Go's messages name it (`v1.ObjectReference`).
    pub(crate) type_name: &'static str,
    /// Reached through a pointer (the root `*v1.Event`): printed with `&`.
    pub(crate) pointer: bool,
    pub(crate) fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) value: Value,
    /// An embedded struct (`ObjectMeta`): its fields are promoted.
    pub(crate) embedded: bool,
}

impl Field {
    pub(crate) fn new(name: &'static str, value: Value) -> Field {
        Field { name, value, embedded: false }
    }

    pub(crate) fn embedded(name: &'static str, value: Value) -> Field {
        Field { name, value, embedded: true }
    }
}

impl Value {
    pub(crate) fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub(crate) fn structure(type_name: &'static str, fields: Vec<Field>) -> Value {
        Value::Struct(Arc::new(Struct { type_name, pointer: false, fields }))
    }

    /// The Go type name, for messages.
    fn type_name(&self) -> String {
        match self {
            Value::Missing => "<no value>".into(),
            Value::Nil => "nil".into(),
            Value::NilPtr(t) => (*t).into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_, t) => (*t).into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::Time(_, t) => (*t).into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Map(_) => "map[string]string".into(),
            Value::Struct(s) => format!("{}{}", if s.pointer { "*" } else { "" }, s.type_name),
        }
    }
}

/// A template error, worded as Go's: `template: body:1:3: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error(String);

impl Error {
    fn parse(pos: parse::Pos, msg: String) -> Error {
        Error(format!("template: body:{}: {msg}", pos.line))
    }

    fn exec(pos: parse::Pos, at: &str, msg: &str) -> Error {
        Error(format!("template: body:{}:{}: executing \"body\" at <{at}>: {msg}", pos.line, pos.col))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// A parsed template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    nodes: Arc<Vec<parse::Node>>,
}

impl Template {
    /// Parse `text`.
    pub(crate) fn parse(text: &str) -> Result<Template, Error> {
        Ok(Template { nodes: Arc::new(parse::parse(text)?) })
    }

    /// Render with `data` as dot.
    pub(crate) fn execute(&self, data: &Value) -> Result<String, Error> {
        exec::execute(&self.nodes, data)
    }
}
