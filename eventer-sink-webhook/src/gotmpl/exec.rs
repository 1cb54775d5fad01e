//! Executing a parsed template: Go's evaluation rules for fields, variables, pipelines,
//! truth, comparisons and the builtin functions.

use std::cmp::Ordering;

use super::{
    Error, Struct, Value,
    fmt::{format_time, html_escape, js_escape, print_value, printf, query_escape, sprint, sprintln},
    parse::{Arg, Branch, Cmd, Node, Pipe, Pos},
};

/// The builtin functions, as Go names them.
pub(crate) const FUNCS: &[&str] = &[
    "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "slice", "print", "printf", "println",
    "js", "html", "urlquery",
];

/// Bound the work one render may do: a template loops only over an event's data, but a
/// nested `range` must not hang the sink.
const MAX_STEPS: usize = 1_000_000;

pub(super) fn execute(nodes: &[Node], data: &Value) -> Result<String, Error> {
    let mut state = State { vars: vec![("$".to_owned(), data.clone())], out: String::new(), steps: 0 };
    state.walk(data, nodes)?;
    Ok(state.out)
}

enum Flow {
    Next,
    Break,
    Continue,
}

struct State {
    vars: Vec<(String, Value)>,
    out: String,
    steps: usize,
}

/// Where an error happened: the action's position and source.
#[derive(Clone, Copy)]
struct At<'a> {
    pos: Pos,
    text: &'a str,
}

impl At<'_> {
    fn err(&self, msg: impl AsRef<str>) -> Error {
        let text = self.text.trim_start_matches("{{").trim_end_matches("}}").trim_matches(['-', ' ']);
        Error::exec(self.pos, text, msg.as_ref())
    }
}

/// Go's truth: false, 0, nil, and empty strings, lists and maps are false; structs
/// (times included) are true.
pub(super) fn truth(v: &Value) -> bool {
    match v {
        Value::Missing | Value::Nil | Value::NilPtr(_) => false,
        Value::Bool(b) => *b,
        Value::Int(n, _) => *n != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Time(..) | Value::Struct(_) => true,
    }
}

impl State {
    fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Result<Flow, Error> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let value = self.pipe(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.print(&value, At { pos: pipe.pos, text: &pipe.text })?;
                    }
                }
                Node::If(b) => {
                    let mark = self.vars.len();
                    let value = self.pipe(dot, &b.pipe)?;
                    let flow = if truth(&value) { self.walk(dot, &b.list)? } else { self.otherwise(dot, b)? };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Next) {
                        return Ok(flow);
                    }
                }
                Node::With(b) => {
                    let mark = self.vars.len();
                    let value = self.pipe(dot, &b.pipe)?;
                    let flow = if truth(&value) { self.walk(&value, &b.list)? } else { self.otherwise(dot, b)? };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Next) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.range(dot, b)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Next)
    }

    fn otherwise(&mut self, dot: &Value, b: &Branch) -> Result<Flow, Error> {
        match &b.otherwise {
            Some(list) => self.walk(dot, list),
            None => Ok(Flow::Next),
        }
    }

    fn range(&mut self, dot: &Value, b: &Branch) -> Result<(), Error> {
        let at = At { pos: b.pipe.pos, text: &b.pipe.text };
        let mark = self.vars.len();
        let value = self.cmds(dot, &b.pipe)?;
        let items: Vec<(Value, Value)> = match &value {
            Value::List(l) => l.iter().enumerate().map(|(i, v)| (Value::Int(i as i64, "int"), v.clone())).collect(),
            // Go ranges over a map in key order.
            Value::Map(m) => m.iter().map(|(k, v)| (Value::Str(k.clone()), v.clone())).collect(),
            Value::Int(n, _) => (0..*n).map(|i| (Value::Int(i, "int"), Value::Int(i, "int"))).collect(),
            Value::Missing | Value::Nil | Value::NilPtr(_) => Vec::new(),
            other => return Err(at.err(format!("range can't iterate over {}", print_value(other)))),
        };
        if items.is_empty() {
            if let Some(list) = &b.otherwise {
                self.walk(dot, list)?;
            }
            return Ok(());
        }
        for (key, item) in items {
            self.step(at)?;
            let inner = self.vars.len();
            match b.pipe.decl.as_slice() {
                [one] => self.declare(one, item.clone(), b.pipe.assign),
                [k, v] => {
                    self.declare(k, key, b.pipe.assign);
                    self.declare(v, item.clone(), b.pipe.assign);
                }
                _ => {}
            }
            let flow = self.walk(&item, &b.list)?;
            self.vars.truncate(inner.max(mark));
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn step(&mut self, at: At<'_>) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(at.err(format!("more than {MAX_STEPS} steps")));
        }
        Ok(())
    }

    fn declare(&mut self, name: &str, value: Value, assign: bool) {
        if assign && let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = value;
            return;
        }
        self.vars.push((name.to_owned(), value));
    }

    fn var(&self, name: &str) -> Value {
        self.vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or(Value::Missing)
    }

    /// The pipeline's value, declaring or assigning its variables.
    fn pipe(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value, Error> {
        let value = self.cmds(dot, pipe)?;
        for name in &pipe.decl {
            self.declare(name, value.clone(), pipe.assign);
        }
        Ok(value)
    }

    fn cmds(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value, Error> {
        let at = At { pos: pipe.pos, text: &pipe.text };
        let mut last = None;
        for cmd in &pipe.cmds {
            self.step(at)?;
            last = Some(self.cmd(dot, cmd, last, at)?);
        }
        Ok(last.unwrap_or(Value::Missing))
    }

    fn cmd(&mut self, dot: &Value, cmd: &Cmd, last: Option<Value>, at: At<'_>) -> Result<Value, Error> {
        let (first, args) = cmd.args.split_first().ok_or_else(|| at.err("empty command"))?;
        match first {
            Arg::Func(name) => self.call(dot, name, args, last, at),
            Arg::Field(fields) => self.chain(dot, dot.clone(), fields, args, last, at),
            Arg::Var(name, fields) if !fields.is_empty() => self.chain(dot, self.var(name), fields, args, last, at),
            Arg::Sub(pipe, fields) if !fields.is_empty() => {
                let value = self.cmds(dot, pipe)?;
                self.chain(dot, value, fields, args, last, at)
            }
            other => {
                if !args.is_empty() || last.is_some() {
                    return Err(at.err(format!("can't give argument to non-function {}", self.arg_text(other))));
                }
                self.arg(dot, other, at)
            }
        }
    }

    fn arg_text(&self, arg: &Arg) -> String {
        match arg {
            Arg::Dot => ".".into(),
            Arg::Var(v, _) => v.clone(),
            _ => "value".into(),
        }
    }

    /// The value of an argument.
    fn arg(&mut self, dot: &Value, arg: &Arg, at: At<'_>) -> Result<Value, Error> {
        Ok(match arg {
            Arg::Dot => dot.clone(),
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Int(n) => Value::Int(*n, "int"),
            Arg::Float(f) => Value::Float(*f),
            Arg::Str(s) => Value::Str(s.clone()),
            Arg::Field(fields) => self.chain(dot, dot.clone(), fields, &[], None, at)?,
            Arg::Var(name, fields) => {
                let value = self.var(name);
                if fields.is_empty() { value } else { self.chain(dot, value, fields, &[], None, at)? }
            }
            Arg::Sub(pipe, fields) => {
                let value = self.cmds(dot, pipe)?;
                if fields.is_empty() { value } else { self.chain(dot, value, fields, &[], None, at)? }
            }
            Arg::Func(name) => self.call(dot, name, &[], None, at)?,
        })
    }

    /// `.A.B.C args`: every field but the last without arguments.
    fn chain(
        &mut self,
        dot: &Value,
        mut value: Value,
        fields: &[String],
        args: &[Arg],
        last: Option<Value>,
        at: At<'_>,
    ) -> Result<Value, Error> {
        let n = fields.len();
        for (i, name) in fields.iter().enumerate() {
            let (args, last) = if i + 1 == n { (args, last.clone()) } else { (&[][..], None) };
            let mut evaluated = Vec::with_capacity(args.len() + 1);
            for a in args {
                evaluated.push(self.arg(dot, a, at)?);
            }
            evaluated.extend(last);
            value = field(&value, name, &evaluated, at)?;
        }
        Ok(value)
    }

    fn print(&mut self, value: &Value, at: At<'_>) -> Result<(), Error> {
        match value {
            Value::Missing => self.out.push_str("<no value>"),
            Value::Struct(s) if s.pointer => {
                self.out.push('&');
                self.out.push_str(&print_value(value));
            }
            v => self.out.push_str(&print_value(v)),
        }
        let _ = at;
        Ok(())
    }

    fn call(&mut self, dot: &Value, name: &str, args: &[Arg], last: Option<Value>, at: At<'_>) -> Result<Value, Error> {
        // `and` and `or` evaluate their arguments only as far as needed.
        if name == "and" || name == "or" {
            let total = args.len() + usize::from(last.is_some());
            if total == 0 {
                return Err(at.err(format!("wrong number of args for {name}: want at least 1 got 0")));
            }
            let mut value = Value::Missing;
            for a in args {
                value = self.arg(dot, a, at)?;
                if truth(&value) != (name == "and") {
                    return Ok(value);
                }
            }
            if let Some(l) = last {
                value = l;
            }
            return Ok(value);
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for a in args {
            values.push(self.arg(dot, a, at)?);
        }
        values.extend(last);
        builtin(name, values, at)
    }
}

/// An argument of a function taking `any`: a missing value is nil.
fn any_arg(v: Value) -> Value {
    match v {
        Value::Missing => Value::Nil,
        v => v,
    }
}

fn field(receiver: &Value, name: &str, args: &[Value], at: At<'_>) -> Result<Value, Error> {
    let no_args = |v: Value| {
        if args.is_empty() { Ok(v) } else { Err(at.err(format!("{name} is not a method but has arguments"))) }
    };
    match receiver {
        Value::Struct(s) => match lookup(s, name) {
            Some(_) if !args.is_empty() => {
                Err(at.err(format!("{name} has arguments but cannot be invoked as function")))
            }
            Some(v) => Ok(v),
            None => Err(at.err(format!("can't evaluate field {name} in type {}", receiver.type_name()))),
        },
        Value::Map(m) => no_args(m.get(name).cloned().unwrap_or(Value::Missing)),
        Value::Time(t, type_name) => time_method(t.as_ref(), type_name, name, args, at),
        Value::Missing | Value::Nil => Ok(Value::Missing),
        Value::NilPtr(t) => Err(at.err(format!("nil pointer evaluating {t}.{name}"))),
        other => Err(at.err(format!("can't evaluate field {name} in type {}", other.type_name()))),
    }
}

/// A field, or one promoted from an embedded struct (shallowest first, as Go).
fn lookup(s: &Struct, name: &str) -> Option<Value> {
    if let Some(f) = s.fields.iter().find(|f| f.name == name) {
        return Some(f.value.clone());
    }
    s.fields.iter().filter(|f| f.embedded).find_map(|f| match &f.value {
        Value::Struct(inner) => lookup(inner, name),
        _ => None,
    })
}

fn time_method(
    t: Option<&jiff::Zoned>,
    type_name: &'static str,
    name: &str,
    args: &[Value],
    at: At<'_>,
) -> Result<Value, Error> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(at.err(format!("wrong number of args for {name}: want {n} got {}", args.len())))
        }
    };
    // Go's zero time is 0001-01-01 00:00:00 UTC.
    let part = |f: fn(&jiff::Zoned) -> i64, zero: i64| t.map_or(zero, f);
    const ZERO_UNIX: i64 = -62_135_596_800;
    let v = match name {
        // metav1.Time embeds time.Time as its field `Time`.
        "Time" if type_name != "time.Time" => return Ok(Value::Time(t.cloned(), "time.Time")),
        "UTC" => {
            want(0)?;
            Value::Time(t.map(|t| t.with_time_zone(jiff::tz::TimeZone::UTC)), "time.Time")
        }
        // Times are in the local zone already (the sink's `TZ`).
        "Local" => {
            want(0)?;
            Value::Time(t.cloned(), "time.Time")
        }
        "String" => {
            want(0)?;
            Value::Str(super::go_time(t))
        }
        "IsZero" => {
            want(0)?;
            Value::Bool(t.is_none())
        }
        "Unix" => {
            want(0)?;
            Value::Int(t.map_or(ZERO_UNIX, |t| t.timestamp().as_second()), "int64")
        }
        "UnixMilli" => {
            want(0)?;
            Value::Int(t.map_or(ZERO_UNIX * 1000, |t| t.timestamp().as_millisecond()), "int64")
        }
        "Year" => Value::Int(part(|z| i64::from(z.year()), 1), "int"),
        "YearDay" => Value::Int(part(|z| i64::from(z.day_of_year()), 1), "int"),
        "Day" => Value::Int(part(|z| i64::from(z.day()), 1), "int"),
        "Hour" => Value::Int(part(|z| i64::from(z.hour()), 0), "int"),
        "Minute" => Value::Int(part(|z| i64::from(z.minute()), 0), "int"),
        "Second" => Value::Int(part(|z| i64::from(z.second()), 0), "int"),
        "Nanosecond" => Value::Int(part(|z| i64::from(z.subsec_nanosecond()), 0), "int"),
        "Format" => {
            want(1)?;
            match &args[0] {
                Value::Str(layout) => Value::Str(format_time(t, layout)),
                other => {
                    return Err(at.err(format!("wrong type for value; expected string; got {}", other.type_name())));
                }
            }
        }
        _ => return Err(at.err(format!("can't evaluate field {name} in type {type_name}"))),
    };
    if !matches!(name, "UTC" | "Local" | "String" | "IsZero" | "Unix" | "UnixMilli" | "Format") {
        want(0)?;
    }
    Ok(v)
}

/// Go's basic kinds, for comparisons.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

fn kind(v: &Value) -> Option<Kind> {
    match v {
        Value::Bool(_) => Some(Kind::Bool),
        Value::Int(_, _) => Some(Kind::Int),
        Value::Float(_) => Some(Kind::Float),
        Value::Str(_) => Some(Kind::Str),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value, ordered: bool, at: At<'_>) -> Result<Ordering, Error> {
    let nil = |v: &Value| matches!(v, Value::Missing | Value::Nil | Value::NilPtr(_));
    match (kind(a), kind(b)) {
        (Some(x), Some(y)) if x != y => Err(at.err("incompatible types for comparison")),
        (Some(Kind::Bool), _) if ordered => Err(at.err("invalid type for comparison")),
        (Some(_), Some(_)) => Ok(match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            (Value::Int(x, _), Value::Int(y, _)) => x.cmp(y),
            (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Less),
            (Value::Str(x), Value::Str(y)) => x.cmp(y),
            _ => Ordering::Less,
        }),
        _ if ordered => Err(at.err("invalid type for comparison")),
        // Go: a nil (or missing) value equals only another; other kinds differ silently.
        _ if nil(a) || nil(b) => Ok(if nil(a) && nil(b) { Ordering::Equal } else { Ordering::Less }),
        (None, None)
            if matches!(a, Value::Struct(_) | Value::Time(..))
                && std::mem::discriminant(a) == std::mem::discriminant(b) =>
        {
            Ok(if a == b { Ordering::Equal } else { Ordering::Less })
        }
        (None, None) => Err(at.err(format!("non-comparable type {}", print_value(a)))),
        _ => Err(at.err("incompatible types for comparison")),
    }
}

fn builtin(name: &str, args: Vec<Value>, at: At<'_>) -> Result<Value, Error> {
    let count = |want: usize| {
        if args.len() == want {
            Ok(())
        } else {
            Err(at.err(format!("wrong number of args for {name}: want {want} got {}", args.len())))
        }
    };
    let at_least = |want: usize| {
        if args.len() >= want {
            Ok(())
        } else {
            Err(at.err(format!("wrong number of args for {name}: want at least {want} got {}", args.len())))
        }
    };
    let call_err = |msg: String| at.err(format!("error calling {name}: {msg}"));
    Ok(match name {
        "not" => {
            count(1)?;
            Value::Bool(!truth(&args[0]))
        }
        "eq" => {
            at_least(1)?;
            let mut args = args;
            if args.len() < 2 {
                return Err(call_err("missing argument for comparison".into()));
            }
            let first = args.remove(0);
            let mut equal = false;
            for other in &args {
                if compare(&first, other, false, at).map_err(|e| call_err(strip(&e)))? == Ordering::Equal {
                    equal = true;
                    break;
                }
            }
            Value::Bool(equal)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            count(2)?;
            let ord = compare(&args[0], &args[1], name != "ne", at).map_err(|e| call_err(strip(&e)))?;
            Value::Bool(match name {
                "ne" => ord != Ordering::Equal,
                "lt" => ord == Ordering::Less,
                "le" => ord != Ordering::Greater,
                "gt" => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            })
        }
        "len" => {
            count(1)?;
            match &args[0] {
                Value::Str(s) => Value::Int(s.len() as i64, "int"),
                Value::List(l) => Value::Int(l.len() as i64, "int"),
                Value::Map(m) => Value::Int(m.len() as i64, "int"),
                Value::Missing | Value::Nil | Value::NilPtr(_) => return Err(call_err("len of nil pointer".into())),
                other => return Err(call_err(format!("len of type {}", other.type_name()))),
            }
        }
        "index" => {
            at_least(1)?;
            let mut item = args[0].clone();
            for idx in &args[1..] {
                item = match (&item, idx) {
                    (Value::List(l), Value::Int(i, _)) => match usize::try_from(*i).ok().and_then(|i| l.get(i)) {
                        Some(v) => v.clone(),
                        None => return Err(call_err(format!("index out of range: {i}"))),
                    },
                    (Value::Str(s), Value::Int(i, _)) => {
                        match usize::try_from(*i).ok().and_then(|i| s.as_bytes().get(i)) {
                            Some(b) => Value::Int(i64::from(*b), "int"),
                            None => return Err(call_err(format!("index out of range: {i}"))),
                        }
                    }
                    // A missing key is the element type's zero value.
                    (Value::Map(m), Value::Str(k)) => m.get(k).cloned().unwrap_or_else(|| Value::str("")),
                    (Value::Map(_), other) => {
                        return Err(call_err(format!("value has type {}; should be string", other.type_name())));
                    }
                    (Value::Missing | Value::Nil | Value::NilPtr(_), _) => {
                        return Err(call_err("index of untyped nil".into()));
                    }
                    (other, _) => return Err(call_err(format!("can't index item of type {}", other.type_name()))),
                };
            }
            item
        }
        "slice" => {
            at_least(1)?;
            let item = args[0].clone();
            let mut idx = Vec::new();
            for a in &args[1..] {
                match a {
                    Value::Int(i, _) if *i >= 0 => idx.push(*i as usize),
                    _ => return Err(call_err("cannot index slice/array with nil".into())),
                }
            }
            let len = match &item {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                other => return Err(call_err(format!("can't slice item of type {}", other.type_name()))),
            };
            let (lo, hi) = (idx.first().copied().unwrap_or(0), idx.get(1).copied().unwrap_or(len));
            if idx.len() > 2 || lo > hi || hi > len {
                return Err(call_err(format!("index out of range: {}", if hi > len { hi } else { lo })));
            }
            match item {
                Value::Str(s) => Value::Str(String::from_utf8_lossy(&s.as_bytes()[lo..hi]).into_owned()),
                Value::List(l) => Value::List(l[lo..hi].to_vec()),
                _ => Value::Missing,
            }
        }
        "print" => Value::Str(sprint(&args.into_iter().map(any_arg).collect::<Vec<_>>())),
        "println" => Value::Str(sprintln(&args.into_iter().map(any_arg).collect::<Vec<_>>())),
        "printf" => {
            at_least(1)?;
            let mut args: Vec<Value> = args.into_iter().map(any_arg).collect();
            let format = match args.remove(0) {
                Value::Str(s) => s,
                other => {
                    return Err(at.err(format!("wrong type for value; expected string; got {}", other.type_name())));
                }
            };
            Value::Str(printf(&format, &args))
        }
        "js" | "html" | "urlquery" => {
            // Go formats the arguments as `print` does, unless there is one string.
            let args: Vec<Value> = args.into_iter().map(any_arg).collect();
            let text = match args.as_slice() {
                [Value::Str(s)] => s.clone(),
                _ => sprint(&args),
            };
            Value::Str(match name {
                "js" => js_escape(&text),
                "html" => html_escape(&text),
                _ => query_escape(&text),
            })
        }
        _ => return Err(at.err(format!("function \"{name}\" not defined"))),
    })
}

/// The message of an exec error, without its `template: ... at <...>: ` prefix.
fn strip(e: &Error) -> String {
    e.0.rsplit_once(">: ").map_or_else(|| e.0.clone(), |(_, m)| m.to_owned())
}
