//! Go's `fmt` (`%v` printing, `Sprint`, `Sprintln`, `Sprintf`), `time.Time.String` and
//! `Format`, and the escapers behind `js`, `html` and `urlquery`.

use std::fmt::Write as _;

use jiff::{Zoned, tz::TimeZone};

use super::Value;

/// Go's zero `time.Time`.
fn zero_time() -> Zoned {
    jiff::civil::date(1, 1, 1).at(0, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap_or_default()
}

fn zoned(t: Option<&Zoned>) -> Zoned {
    t.cloned().unwrap_or_else(zero_time)
}

/// `time.Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`, the fraction's
/// trailing zeros dropped and no fraction when it is zero.
pub(crate) fn go_time(t: Option<&Zoned>) -> String {
    format_time(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// `time.Time.Format(layout)`, with Go's reference-time layout elements.
pub(crate) fn format_time(t: Option<&Zoned>, layout: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    let z = zoned(t);
    let month = MONTHS[usize::from(z.month().unsigned_abs()) - 1];
    let day = DAYS[usize::from(z.weekday().to_sunday_zero_offset().unsigned_abs())];
    let hour12 = match z.hour() % 12 {
        0 => 12,
        h => h,
    };
    let nanos = z.subsec_nanosecond();
    let mut out = String::new();
    let mut rest = layout;
    // Longest elements first where one is a prefix of another, as Go's `nextStdChunk`.
    let elements: &[&str] = &[
        "January",
        "Jan",
        "Monday",
        "Mon",
        "MST",
        "2006",
        "-07:00:00",
        "-070000",
        "-07:00",
        "-0700",
        "-07",
        "Z07:00:00",
        "Z070000",
        "Z07:00",
        "Z0700",
        "Z07",
        "002",
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "15",
        "_2",
        "PM",
        "pm",
        "1",
        "2",
        "3",
        "4",
        "5",
    ];
    while !rest.is_empty() {
        // Fractional seconds: `.000`, `,999` (after a seconds element or anywhere, as Go 1.17+).
        if let Some(sep @ ('.' | ',')) = rest.chars().next() {
            let digits = rest[1..].bytes().take_while(|b| *b == b'0' || *b == b'9').count();
            let same = digits > 0 && rest[1..1 + digits].bytes().all(|b| b == rest.as_bytes()[1]);
            if same && !rest[1 + digits..].starts_with(|c: char| c.is_ascii_digit()) {
                let full = format!("{nanos:09}");
                let frac = &full[..digits.min(9)];
                if rest.as_bytes()[1] == b'0' {
                    out.push(sep);
                    out.push_str(frac);
                } else {
                    let trimmed = frac.trim_end_matches('0');
                    if !trimmed.is_empty() {
                        out.push(sep);
                        out.push_str(trimmed);
                    }
                }
                rest = &rest[1 + digits..];
                continue;
            }
        }
        let Some(element) = elements.iter().find(|e| rest.starts_with(**e)) else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        // `Jan`/`Mon` only as whole words' starts: Go matches `January` before `Jan` and
        // requires that a lower-case letter does not follow `Mon` (`Monday` matched first).
        if (*element == "Jan" || *element == "Mon") && rest[3..].starts_with(|c: char| c.is_ascii_lowercase()) {
            out.push_str(&rest[..1]);
            rest = &rest[1..];
            continue;
        }
        match *element {
            "January" => out.push_str(month),
            "Jan" => out.push_str(&month[..3]),
            "Monday" => out.push_str(day),
            "Mon" => out.push_str(&day[..3]),
            "MST" => out.push_str(&abbreviation(&z)),
            "2006" => write!(out, "{:04}", z.year()).unwrap_or(()),
            "06" => write!(out, "{:02}", z.year().rem_euclid(100)).unwrap_or(()),
            "01" => write!(out, "{:02}", z.month()).unwrap_or(()),
            "1" => write!(out, "{}", z.month()).unwrap_or(()),
            "02" => write!(out, "{:02}", z.day()).unwrap_or(()),
            "_2" => write!(out, "{:>2}", z.day()).unwrap_or(()),
            "2" => write!(out, "{}", z.day()).unwrap_or(()),
            "002" => write!(out, "{:03}", z.day_of_year()).unwrap_or(()),
            "15" => write!(out, "{:02}", z.hour()).unwrap_or(()),
            "03" => write!(out, "{hour12:02}").unwrap_or(()),
            "3" => write!(out, "{hour12}").unwrap_or(()),
            "04" => write!(out, "{:02}", z.minute()).unwrap_or(()),
            "4" => write!(out, "{}", z.minute()).unwrap_or(()),
            "05" => write!(out, "{:02}", z.second()).unwrap_or(()),
            "5" => write!(out, "{}", z.second()).unwrap_or(()),
            "PM" => out.push_str(if z.hour() >= 12 { "PM" } else { "AM" }),
            "pm" => out.push_str(if z.hour() >= 12 { "pm" } else { "am" }),
            e => out.push_str(&offset(z.offset().seconds(), e)),
        }
        rest = &rest[element.len()..];
    }
    out
}

/// The zone's abbreviation as Go prints it (`UTC`, `CST`; `+08` where the zone has none).
fn abbreviation(z: &Zoned) -> String {
    z.strftime("%Z").to_string()
}

/// A numeric zone element (`-0700`, `-07:00`, `-07`, `-070000`, `-07:00:00`, and their `Z`
/// forms, which print `Z` at offset zero).
fn offset(seconds: i32, element: &str) -> String {
    let (iso, numeric) = match element.strip_prefix('Z') {
        Some(rest) => (true, rest),
        None => (false, element.strip_prefix('-').unwrap_or(element)),
    };
    if iso && seconds == 0 {
        return "Z".into();
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    match numeric {
        "07:00:00" => format!("{sign}{h:02}:{m:02}:{s:02}"),
        "070000" => format!("{sign}{h:02}{m:02}{s:02}"),
        "07:00" => format!("{sign}{h:02}:{m:02}"),
        "0700" => format!("{sign}{h:02}{m:02}"),
        _ => format!("{sign}{h:02}"),
    }
}

/// `fmt.Sprint`: operands formatted with `%v`, a space between two when neither is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&print_value(a));
    }
    out
}

/// `fmt.Sprintln`: operands with `%v`, always a space between, and a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut out = args.iter().map(print_value).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

/// `%v`.
pub(crate) fn print_value(v: &Value) -> String {
    value_with(v, false)
}

fn value_with(v: &Value, plus: bool) -> String {
    match v {
        Value::Missing => "<no value>".into(),
        Value::Nil | Value::NilPtr(_) => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n, _) => n.to_string(),
        Value::Float(f) => float_v(*f),
        Value::Str(s) => s.clone(),
        Value::Time(t, _) => go_time(t.as_ref()),
        Value::List(l) => format!("[{}]", l.iter().map(|v| value_with(v, plus)).collect::<Vec<_>>().join(" ")),
        Value::Map(m) => format!(
            "map[{}]",
            m.iter().map(|(k, v)| format!("{k}:{}", value_with(v, plus))).collect::<Vec<_>>().join(" ")
        ),
        Value::Struct(s) => format!(
            "{{{}}}",
            s.fields
                .iter()
                .map(|f| if plus {
                    format!("{}:{}", f.name, value_with(&f.value, plus))
                } else {
                    value_with(&f.value, plus)
                })
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// A float as `%v` prints it: `%g` with the shortest digits (`%e` form when the exponent
/// is below -4 or at least 6, as strconv decides for the shortest representation).
fn float_v(f: f64) -> String {
    float_g(f, None, 6)
}

/// `%g` with an optional precision; `eprec` is the exponent from which `%e` form is used
/// for the shortest representation.
fn float_g(f: f64, precision: Option<usize>, shortest_eprec: i32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let sci = match precision {
        Some(p) => format!("{:.*e}", p.max(1) - 1, f),
        None => format!("{f:e}"),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let eprec = match precision {
        Some(p) => i32::try_from(p.max(1)).unwrap_or(i32::MAX),
        None => shortest_eprec,
    };
    if exp < -4 || exp >= eprec {
        let mantissa = if precision.is_some() && mantissa.contains('.') {
            mantissa.trim_end_matches('0').trim_end_matches('.')
        } else {
            mantissa
        };
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        match precision {
            Some(p) => {
                let decimals = usize::try_from((i32::try_from(p.max(1)).unwrap_or(1) - 1 - exp).max(0)).unwrap_or(0);
                let s = format!("{f:.decimals$}");
                if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
            }
            None => format!("{f}"),
        }
    }
}

/// Go's `unicode.IsPrint`, closely enough: letters, marks, numbers, punctuation, symbols
/// and the ASCII space; not other spaces, controls or format characters.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{AD}' | '\u{600}'..='\u{605}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E000}'..='\u{F8FF}'))
}

/// `strconv.Quote`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32).unwrap_or(()),
            c if (c as u32) < 0x10000 => write!(out, "\\u{:04x}", c as u32).unwrap_or(()),
            c => write!(out, "\\U{:08x}", c as u32).unwrap_or(()),
        }
    }
    out.push('"');
    out
}

/// `template.JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => write!(out, "\\u00{:02X}", c as u32).unwrap_or(()),
            c if (c as u32) >= 0x80 && !is_print(c) => write!(out, "\\u{:04X}", c as u32).unwrap_or(()),
            c => out.push(c),
        }
    }
    out
}

/// `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            b => write!(out, "%{b:02X}").unwrap_or(()),
        }
    }
    out
}

/// One `%` directive's flags.
#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// `fmt.Sprintf`, with Go's verbs and its in-band error notes (`%!d(string=x)`,
/// `%!s(MISSING)`, `%!(EXTRA ...)`).
pub(crate) fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            chars.next();
        }
        // Go refuses widths and precisions above a million: a digit run that long ends the
        // directive (`%!(NOVERB)`), a `*` argument that large is `%!(BADWIDTH)`.
        const TOO_LARGE: usize = 1_000_000;
        let number =
            |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, next: &mut usize| -> Result<Option<usize>, bool> {
                if chars.peek() == Some(&'*') {
                    chars.next();
                    let n = match args.get(*next) {
                        Some(Value::Int(n, _)) => usize::try_from(*n).ok().filter(|n| *n <= TOO_LARGE),
                        _ => None,
                    };
                    *next += 1;
                    return n.map(Some).ok_or(true);
                }
                let mut n: Option<usize> = None;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    if n.is_some_and(|n| n > TOO_LARGE) {
                        return Err(false);
                    }
                    n = Some(n.unwrap_or(0) * 10 + d as usize);
                    chars.next();
                }
                Ok(n)
            };
        match number(&mut chars, &mut next) {
            Ok(w) => spec.width = w,
            Err(true) => out.push_str("%!(BADWIDTH)"),
            Err(false) => {
                out.push_str("%!(NOVERB)");
                break;
            }
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            match number(&mut chars, &mut next) {
                Ok(p) => spec.precision = Some(p.unwrap_or(0)),
                Err(true) => out.push_str("%!(BADPREC)"),
                Err(false) => {
                    out.push_str("%!(NOVERB)");
                    break;
                }
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            write!(out, "%!{verb}(MISSING)").unwrap_or(());
            continue;
        };
        next += 1;
        out.push_str(&format_one(verb, arg, spec));
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| match a {
                Value::Nil => "<nil>".to_owned(),
                a => format!("{}={}", go_type(a), print_value(a)),
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// The dynamic type as `%T` prints it.
fn go_type(v: &Value) -> String {
    match v {
        Value::Nil | Value::Missing => "<nil>".into(),
        other => other.type_name(),
    }
}

fn bad(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil | Value::Missing => format!("%!{verb}(<nil>)"),
        a => format!("%!{verb}({}={})", go_type(a), print_value(a)),
    }
}

fn pad(s: String, spec: Spec, numeric: bool) -> String {
    let Some(width) = spec.width else { return s };
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let fill = width - len;
    if spec.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if spec.zero && numeric {
        // Zeros go after the sign.
        let (sign, digits) = match s.strip_prefix(['-', '+', ' ']) {
            Some(d) => (&s[..1], d),
            None => ("", s.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else if spec.zero {
        format!("{}{s}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn sign(s: String, negative: bool, spec: Spec) -> String {
    if negative {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn truncate(s: &str, precision: Option<usize>) -> String {
    match precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_owned(),
    }
}

fn format_one(verb: char, arg: &Value, spec: Spec) -> String {
    // Lists format each element with the verb.
    if let Value::List(items) = arg
        && verb != 'T'
        && !(verb == 'v' && spec.sharp)
    {
        let inner: Vec<String> = items.iter().map(|i| format_one(verb, i, Spec { width: None, ..spec })).collect();
        return pad(format!("[{}]", inner.join(" ")), spec, false);
    }
    match (verb, arg) {
        ('T', a) => pad(go_type(a), spec, false),
        ('v', Value::Int(n, _)) => pad(sign(n.to_string(), *n < 0, spec), spec, true),
        ('v', Value::Float(f)) => pad(sign(float_v(*f), *f < 0.0, spec), spec, true),
        ('v', Value::Str(s)) if spec.sharp => pad(quote(s), spec, false),
        ('v', Value::Struct(_)) if spec.plus => pad(value_with(arg, true), spec, false),
        ('v', a) => pad(truncate(&print_value(a), None), spec, false),
        ('s', Value::Str(s)) => pad(truncate(s, spec.precision), spec, false),
        ('s', Value::Time(t, _)) => pad(truncate(&go_time(t.as_ref()), spec.precision), spec, false),
        ('s', a @ (Value::Map(_) | Value::Struct(_))) => pad(print_value(a), spec, false),
        ('q', Value::Str(s)) => pad(quote(&truncate(s, spec.precision)), spec, false),
        ('q', Value::Time(t, _)) => pad(quote(&go_time(t.as_ref())), spec, false),
        ('q', Value::Int(n, _)) => match u32::try_from(*n).ok().and_then(char::from_u32) {
            Some(c) => {
                let q = quote(&c.to_string());
                let inner = &q[1..q.len() - 1];
                pad(
                    format!(
                        "'{}'",
                        if c == '\'' {
                            "\\'"
                        } else if c == '"' {
                            "\""
                        } else {
                            inner
                        }
                    ),
                    spec,
                    false,
                )
            }
            None => pad("'\u{FFFD}'".into(), spec, false),
        },
        ('d', Value::Int(n, _)) => {
            let digits = n.unsigned_abs().to_string();
            let digits = match spec.precision {
                Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
                _ => digits,
            };
            let s = if *n < 0 { format!("-{digits}") } else { digits };
            pad(sign(s, *n < 0, spec), spec, spec.precision.is_none())
        }
        ('b' | 'o' | 'x' | 'X', Value::Int(n, _)) => {
            let abs = n.unsigned_abs();
            let digits = match verb {
                'b' => format!("{abs:b}"),
                'o' => format!("{abs:o}"),
                'x' => format!("{abs:x}"),
                _ => format!("{abs:X}"),
            };
            let prefix = match (spec.sharp, verb) {
                (true, 'x') => "0x",
                (true, 'X') => "0X",
                (true, 'o') => "0",
                _ => "",
            };
            let s = format!("{}{prefix}{digits}", if *n < 0 { "-" } else { "" });
            pad(sign(s, *n < 0, spec), spec, true)
        }
        ('x' | 'X', Value::Str(s)) => {
            let hex: String = s
                .bytes()
                .map(|b| if verb == 'x' { format!("{b:02x}") } else { format!("{b:02X}") })
                .collect::<Vec<_>>()
                .join(if spec.space { " " } else { "" });
            pad(hex, spec, false)
        }
        ('c', Value::Int(n, _)) => {
            pad(u32::try_from(*n).ok().and_then(char::from_u32).unwrap_or('\u{FFFD}').to_string(), spec, false)
        }
        ('U', Value::Int(n, _)) => pad(format!("U+{:04X}", n), spec, false),
        ('t', Value::Bool(b)) => pad(b.to_string(), spec, false),
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Float(f)) => {
            let s = match verb {
                'e' | 'E' => {
                    let s = format!("{:.*e}", spec.precision.unwrap_or(6), f);
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    format!("{m}{verb}{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                }
                'f' | 'F' => format!("{:.*}", spec.precision.unwrap_or(6), f),
                _ => {
                    let g = float_g(*f, spec.precision, 6);
                    if verb == 'G' { g.to_uppercase() } else { g }
                }
            };
            pad(sign(s, *f < 0.0, spec), spec, true)
        }
        (verb, a) => bad(verb, a),
    }
}
