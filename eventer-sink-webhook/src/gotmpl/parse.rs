//! Lexing and parsing Go text/template source into a tree, with Go's rules for delimiters,
//! trim markers (`{{- ` and ` -}}`), comments, literals, pipelines and variable scopes.

use super::{Error, exec::FUNCS};

/// A position in the source, for messages: `body:LINE:COL` as Go prints it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) col: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    /// `{{pipeline}}`, printed unless it declares variables.
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub(crate) pipe: Pipe,
    pub(crate) list: Vec<Node>,
    pub(crate) otherwise: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub(crate) pos: Pos,
    /// The source of the action, for messages (`at <.Foo>`).
    pub(crate) text: String,
    /// Variables declared (`$x :=`) or assigned (`$x =`).
    pub(crate) decl: Vec<String>,
    pub(crate) assign: bool,
    pub(crate) cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    pub(crate) args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Dot,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `.A.B`: fields of dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    /// A function name.
    Func(String),
    /// `(pipeline).A.B`.
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `.A.B`, or with `attached` the fields right after a `)` or a variable.
    Field(Vec<String>, bool),
    Dot,
    Var(String),
    Str(String),
    Num(String),
    Char(char),
    Declare,
    Assign,
    Pipe,
    LParen,
    RParen,
    Comma,
}

/// The source split into texts and actions (tokens), trims applied, comments dropped.
enum Piece {
    Text(String),
    Action { pos: Pos, text: String, toks: Vec<Tok> },
}

fn pos_at(src: &str, offset: usize) -> Pos {
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    Pos { line, col }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn lex(src: &str) -> Result<Vec<Piece>, Error> {
    let mut pieces = Vec::new();
    let mut rest = 0;
    let mut trim_next = false;
    while rest <= src.len() {
        let Some(open) = src[rest..].find("{{").map(|i| rest + i) else {
            let mut text = &src[rest..];
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_owned()));
            }
            break;
        };
        let mut text = &src[rest..open];
        if trim_next {
            text = text.trim_start_matches(is_space);
        }
        let mut inner = open + 2;
        // `{{- ` trims: the `-` must be followed by a space, else `{{-3}}` is a number.
        if src[inner..].starts_with('-') && src[inner + 1..].starts_with(is_space) {
            text = text.trim_end_matches(is_space);
            inner += 2;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_owned()));
        }
        let pos = pos_at(src, open);
        let (toks, end, trim) = lex_action(src, inner, pos)?;
        trim_next = trim;
        if let Some(toks) = toks {
            pieces.push(Piece::Action { pos, text: src[open..end].to_owned(), toks });
        }
        rest = end;
    }
    Ok(pieces)
}

/// Lex one action from `start` (after `{{` and any trim marker). Returns its tokens
/// (`None` for a comment), the offset after `}}`, and whether it trims what follows.
fn lex_action(src: &str, start: usize, pos: Pos) -> Result<(Option<Vec<Tok>>, usize, bool), Error> {
    let err = |msg: String| Error::parse(pos, msg);
    let close = |i: usize| -> Option<(usize, bool)> {
        if src[i..].starts_with("}}") {
            Some((i + 2, false))
        } else if src[i..].starts_with(" -}}")
            || src[i..].starts_with("\t-}}")
            || src[i..].starts_with("\n-}}")
            || src[i..].starts_with("\r-}}")
        {
            Some((i + 4, true))
        } else {
            None
        }
    };
    // Go accepts a comment only right after the delimiter (and its trim marker), and
    // only right before the closing one.
    if src[start..].starts_with("/*") {
        let Some(end) = src[start + 2..].find("*/").map(|i| start + 2 + i + 2) else {
            return Err(err("unclosed comment".into()));
        };
        return match close(end) {
            Some((end, trim)) => Ok((None, end, trim)),
            None => Err(err("comment ends before closing delimiter".into())),
        };
    }
    let bytes = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = start;
    let mut spaced = true;
    loop {
        if i >= src.len() {
            return Err(err("unclosed action".into()));
        }
        if let Some((end, trim)) = close(i) {
            return Ok((Some(toks), end, trim));
        }
        let c = src[i..].chars().next().unwrap_or(' ');
        if c == '\n' || c == '\r' {
            // Go allows newlines inside actions since 1.16.
            i += 1;
            spaced = true;
            continue;
        }
        if is_space(c) {
            i += 1;
            spaced = true;
            continue;
        }
        let was_spaced = std::mem::replace(&mut spaced, false);
        match c {
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if src[i..].starts_with(":=") => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let (s, end) = lex_quoted(src, i).map_err(err)?;
                toks.push(Tok::Str(s));
                i = end;
            }
            '`' => {
                let Some(end) = src[i + 1..].find('`') else {
                    return Err(err("unterminated raw quoted string".into()));
                };
                toks.push(Tok::Str(src[i + 1..i + 1 + end].to_owned()));
                i += end + 2;
            }
            '\'' => {
                let (s, end) = lex_char(src, i).map_err(err)?;
                toks.push(Tok::Char(s));
                i = end;
            }
            '$' => {
                let end = ident_end(src, i + 1);
                toks.push(Tok::Var(src[i..end].to_owned()));
                i = end;
            }
            '.' if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let mut fields = Vec::new();
                while src[i..].starts_with('.') {
                    let end = ident_end(src, i + 1);
                    if end == i + 1 {
                        break;
                    }
                    fields.push(src[i + 1..end].to_owned());
                    i = end;
                }
                if fields.is_empty() {
                    toks.push(Tok::Dot);
                    i += 1;
                } else {
                    let attached = !was_spaced && matches!(toks.last(), Some(Tok::RParen | Tok::Var(_)));
                    toks.push(Tok::Field(fields, attached));
                }
            }
            c if c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && next_is_number(src, i + 1)) => {
                let mut end = i + 1;
                while end < src.len() {
                    let b = bytes[end];
                    let exp_sign = (b == b'-' || b == b'+') && matches!(bytes[end - 1], b'e' | b'E' | b'p' | b'P');
                    if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || exp_sign {
                        end += 1;
                    } else {
                        break;
                    }
                }
                toks.push(Tok::Num(src[i..end].to_owned()));
                i = end;
            }
            c if c.is_alphabetic() || c == '_' => {
                let end = ident_end(src, i);
                toks.push(Tok::Ident(src[i..end].to_owned()));
                i = end;
            }
            c => return Err(err(format!("unexpected {c:?} in command"))),
        }
    }
}

fn next_is_number(src: &str, i: usize) -> bool {
    src.as_bytes().get(i).is_some_and(|b| b.is_ascii_digit() || *b == b'.')
}

fn ident_end(src: &str, start: usize) -> usize {
    src[start..].char_indices().find(|(_, c)| !(c.is_alphanumeric() || *c == '_')).map_or(src.len(), |(i, _)| start + i)
}

/// A Go interpreted string literal starting at `start` (the opening quote).
fn lex_quoted(src: &str, start: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, start + 1 + i + 1)),
            '\n' => break,
            '\\' => out.push(unescape(&mut chars, '"')?),
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

fn lex_char(src: &str, start: usize) -> Result<(char, usize), String> {
    let mut chars = src[start + 1..].char_indices();
    let c = match chars.next() {
        Some((_, '\\')) => unescape(&mut chars, '\'')?,
        Some((_, c)) if c != '\'' && c != '\n' => c,
        _ => return Err("malformed character constant".into()),
    };
    match chars.next() {
        Some((i, '\'')) => Ok((c, start + 1 + i + 1)),
        _ => Err("malformed character constant".into()),
    }
}

fn unescape(chars: &mut std::str::CharIndices<'_>, quote: char) -> Result<char, String> {
    let bad = || "invalid syntax in escape".to_owned();
    let hex = |chars: &mut std::str::CharIndices<'_>, n: usize| -> Result<char, String> {
        let digits: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
        if digits.len() != n {
            return Err(bad());
        }
        u32::from_str_radix(&digits, 16).ok().and_then(char::from_u32).ok_or_else(bad)
    };
    Ok(match chars.next().map(|(_, c)| c) {
        Some('n') => '\n',
        Some('t') => '\t',
        Some('r') => '\r',
        Some('a') => '\x07',
        Some('b') => '\x08',
        Some('f') => '\x0c',
        Some('v') => '\x0b',
        Some('\\') => '\\',
        Some(c) if c == quote => c,
        Some('x') => hex(chars, 2)?,
        Some('u') => hex(chars, 4)?,
        Some('U') => hex(chars, 8)?,
        Some(d @ '0'..='7') => {
            let rest: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
            u32::from_str_radix(&format!("{d}{rest}"), 8).ok().and_then(char::from_u32).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    })
}

/// Parse a template. Functions must be known; variables must be declared before use.
pub(crate) fn parse(src: &str) -> Result<Vec<Node>, Error> {
    let pieces = lex(src)?;
    let mut p = Parser { pieces: pieces.into_iter().peekable(), vars: vec![vec!["$".to_owned()]], loops: 0 };
    let (list, end) = p.list()?;
    match end {
        Stop::Eof => Ok(list),
        Stop::End(pos) => Err(Error::parse(pos, "unexpected {{end}}".into())),
        Stop::Else(pos, _) => Err(Error::parse(pos, "unexpected {{else}}".into())),
    }
}

enum Stop {
    Eof,
    End(Pos),
    /// `{{else}}`, or `{{else if ...}}` / `{{else with ...}}` with the keyword and the rest.
    Else(Pos, Option<(String, String, Vec<Tok>)>),
}

struct Parser {
    pieces: std::iter::Peekable<std::vec::IntoIter<Piece>>,
    /// Variables in scope, innermost last.
    vars: Vec<Vec<String>>,
    /// Depth of `range`s, for `break` and `continue`.
    loops: usize,
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), Error> {
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            match piece {
                Piece::Text(t) => nodes.push(Node::Text(t)),
                Piece::Action { pos, text, toks } => {
                    let keyword = match toks.first() {
                        Some(Tok::Ident(k)) => k.as_str(),
                        _ => "",
                    };
                    match keyword {
                        "end" if toks.len() == 1 => return Ok((nodes, Stop::End(pos))),
                        "else" => {
                            let rest = match toks.get(1) {
                                None => None,
                                Some(Tok::Ident(k)) if k == "if" || k == "with" => {
                                    Some((k.clone(), text.clone(), toks[2..].to_vec()))
                                }
                                _ => return Err(Error::parse(pos, "unexpected token in else".into())),
                            };
                            return Ok((nodes, Stop::Else(pos, rest)));
                        }
                        "if" | "range" | "with" => {
                            let node = self.branch(keyword, pos, text, &toks[1..])?;
                            nodes.push(node);
                        }
                        "break" | "continue" if toks.len() == 1 => {
                            if self.loops == 0 {
                                return Err(Error::parse(pos, format!("{{{{{keyword}}}}} outside {{{{range}}}}")));
                            }
                            nodes.push(if keyword == "break" { Node::Break } else { Node::Continue });
                        }
                        "define" | "template" | "block" => {
                            return Err(Error::parse(pos, format!("{{{{{keyword}}}}} is not supported by eventer")));
                        }
                        "end" | "break" | "continue" => {
                            return Err(Error::parse(pos, format!("unexpected token in {keyword}")));
                        }
                        _ => {
                            let pipe = self.pipeline(pos, text, &toks, "command")?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn branch(&mut self, keyword: &str, pos: Pos, text: String, toks: &[Tok]) -> Result<Node, Error> {
        self.vars.push(Vec::new());
        let pipe = self.pipeline(pos, text, toks, keyword)?;
        if keyword == "range" {
            self.loops += 1;
        }
        let listed = self.list();
        if keyword == "range" {
            self.loops -= 1;
        }
        let (list, end) = listed?;
        self.vars.pop();
        let otherwise = match end {
            Stop::Eof => return Err(Error::parse(pos, "unexpected EOF".into())),
            Stop::End(_) => None,
            Stop::Else(_, None) => {
                self.vars.push(Vec::new());
                let (list, end) = self.list()?;
                self.vars.pop();
                match end {
                    Stop::End(_) => Some(list),
                    Stop::Eof => return Err(Error::parse(pos, "unexpected EOF".into())),
                    Stop::Else(p, _) => return Err(Error::parse(p, "expected end; found {{else}}".into())),
                }
            }
            Stop::Else(p, Some((inner, text, rest))) => {
                // `{{else if x}}` is `{{else}}{{if x}}...{{end}}` sharing the outer `{{end}}`.
                if keyword == "range" || (inner == "with" && keyword != "with") || (inner == "if" && keyword != "if") {
                    return Err(Error::parse(p, format!("unexpected {inner} in else of {keyword}")));
                }
                Some(vec![self.branch(&inner, p, text, &rest)?])
            }
        };
        let branch = Branch { pipe, list, otherwise };
        Ok(match keyword {
            "if" => Node::If(branch),
            "range" => Node::Range(branch),
            _ => Node::With(branch),
        })
    }

    fn declared(&self, name: &str) -> bool {
        self.vars.iter().any(|scope| scope.iter().any(|v| v == name))
    }

    fn pipeline(&mut self, pos: Pos, text: String, toks: &[Tok], context: &str) -> Result<Pipe, Error> {
        let err = |msg: String| Error::parse(pos, msg);
        let mut decl = Vec::new();
        let mut assign = false;
        let mut toks = toks;
        // `$x :=`, `$x =`, `$i, $e :=` (range only).
        let declaration = match toks {
            [Tok::Var(v), Tok::Declare | Tok::Assign, ..] => Some((vec![v.clone()], 1)),
            [Tok::Var(a), Tok::Comma, Tok::Var(b), Tok::Declare | Tok::Assign, ..] if context == "range" => {
                Some((vec![a.clone(), b.clone()], 3))
            }
            [Tok::Var(_), Tok::Comma, ..] => return Err(err("too many declarations in command".into())),
            _ => None,
        };
        if let Some((vars, at)) = declaration {
            assign = toks[at] == Tok::Assign;
            if assign {
                for v in &vars {
                    if !self.declared(v) {
                        return Err(err(format!("undefined variable \"{v}\"")));
                    }
                }
            }
            decl = vars;
            toks = &toks[at + 1..];
        }
        let mut cmds = Vec::new();
        for part in split_top(toks, &Tok::Pipe) {
            cmds.push(self.command(pos, part)?);
        }
        if cmds.is_empty() {
            return Err(err(format!("missing value for {context}")));
        }
        // Declared after the pipeline is parsed: `{{$x := $x}}` reads the outer `$x`.
        if !assign && let Some(scope) = self.vars.last_mut() {
            scope.extend(decl.iter().cloned());
        }
        Ok(Pipe { pos, text, decl, assign, cmds })
    }

    fn command(&mut self, pos: Pos, toks: &[Tok]) -> Result<Cmd, Error> {
        let err = |msg: String| Error::parse(pos, msg);
        if toks.is_empty() {
            return Err(err("missing command".into()));
        }
        let mut args = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let arg = match &toks[i] {
                Tok::Dot => Arg::Dot,
                Tok::Ident(name) => match name.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    f if FUNCS.contains(&f) => Arg::Func(f.to_owned()),
                    f => return Err(err(format!("function \"{f}\" not defined"))),
                },
                Tok::Field(fields, _) => Arg::Field(fields.clone()),
                Tok::Var(v) => {
                    if !self.declared(v) {
                        return Err(err(format!("undefined variable \"{v}\"")));
                    }
                    match toks.get(i + 1) {
                        Some(Tok::Field(fields, true)) => {
                            i += 1;
                            Arg::Var(v.clone(), fields.clone())
                        }
                        _ => Arg::Var(v.clone(), Vec::new()),
                    }
                }
                Tok::Str(s) => Arg::Str(s.clone()),
                Tok::Char(c) => Arg::Int(i64::from(u32::from(*c))),
                Tok::Num(n) => number(n).ok_or_else(|| err(format!("bad number syntax: \"{n}\"")))?,
                Tok::LParen => {
                    let close = matching_paren(toks, i).ok_or_else(|| err("unclosed left paren".into()))?;
                    let inner = self.pipeline(pos, String::new(), &toks[i + 1..close], "parenthesized pipeline")?;
                    i = close;
                    match toks.get(i + 1) {
                        Some(Tok::Field(fields, true)) => {
                            i += 1;
                            Arg::Sub(Box::new(inner), fields.clone())
                        }
                        _ => Arg::Sub(Box::new(inner), Vec::new()),
                    }
                }
                Tok::RParen => return Err(err("unexpected right paren".into())),
                Tok::Declare | Tok::Assign => return Err(err("unexpected declaration in command".into())),
                Tok::Comma => return Err(err("unexpected \",\" in command".into())),
                Tok::Pipe => return Err(err("missing command".into())),
            };
            // A literal or variable cannot take arguments; Go says so at parse time.
            if i > 0
                && args.len() == 1
                && let Some(Arg::Bool(_) | Arg::Nil | Arg::Int(_) | Arg::Float(_) | Arg::Str(_) | Arg::Dot) =
                    args.first()
            {
                return Err(err(format!("can't give argument to non-function {}", describe(&args[0]))));
            }
            if matches!(arg, Arg::Nil) && toks.len() == 1 {
                return Err(err("nil is not a command".into()));
            }
            args.push(arg);
            i += 1;
        }
        Ok(Cmd { args })
    }
}

fn describe(arg: &Arg) -> String {
    match arg {
        Arg::Bool(b) => b.to_string(),
        Arg::Nil => "nil".into(),
        Arg::Int(n) => n.to_string(),
        Arg::Float(f) => f.to_string(),
        Arg::Str(s) => format!("{s:?}"),
        _ => ".".into(),
    }
}

/// `toks` split at `sep` outside parentheses.
fn split_top<'a>(toks: &'a [Tok], sep: &Tok) -> Vec<&'a [Tok]> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::LParen => depth += 1,
            Tok::RParen => depth = depth.saturating_sub(1),
            t if t == sep && depth == 0 => {
                parts.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < toks.len() || !parts.is_empty() {
        parts.push(&toks[start..]);
    }
    parts
}

fn matching_paren(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// A Go number literal: an integer when it is one (decimal, hex, octal, binary, `_`
/// separators), else a float.
fn number(text: &str) -> Option<Arg> {
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let clean = digits.replace('_', "");
    let lower = clean.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit()) {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    };
    if let Some(n) = int {
        return Some(Arg::Int(if neg { -n } else { n }));
    }
    if lower.starts_with("0x") {
        return None;
    }
    let f = lower.parse::<f64>().ok().filter(|f| f.is_finite())?;
    Some(Arg::Float(if neg { -f } else { f }))
}
