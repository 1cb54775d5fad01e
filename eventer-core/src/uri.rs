//! kube-eventer's component URIs: `<scheme>[:<target>][?<options>]`.
//!
//! `--sink=dingtalk:https://oapi.dingtalk.com/robot/send?access_token=X&level=Warning`
//! splits into scheme `dingtalk`, target `https://oapi.dingtalk.com/robot/send` and the
//! options `access_token=X`, `level=Warning`. As in kube-eventer, `$VAR` and `${VAR}` are
//! replaced from the environment (so secrets can stay out of manifests); `$$` is a literal `$`.
//!
//! [`redact`] hides secret option values and URL passwords wherever a URI is shown.

use std::{fmt, str::FromStr, time::Duration};

use serde::de::DeserializeOwned;

use crate::{Error, Result, config::Value};

/// Option names whose values are secrets, compared case-insensitively.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "sign",
    "secret",
    "token",
    "password",
    "pw",
    "accesskeyid",
    "accesskeysecret",
    "securitytoken",
    "writekey",
    "key",
    "apikey",
    "api_key",
];

/// Words that name a secret, for [`looks_secret`].
const SECRET_WORDS: &[&str] =
    &["secret", "token", "password", "passwd", "key", "sign", "signature", "credential", "credentials"];

/// Whether an option name holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str())
        || key.ends_with("secret")
        || key.ends_with("token")
        || key.ends_with("password")
}

/// Whether an option name holds a secret or is a near miss of one: a mistyped secret
/// option is rejected as unknown, and its value must not be shown with the error.
///
/// A near miss is a name whose last word (split at `_`, `-`, `.` and where lower case turns
/// to upper) is at most one edit from a word naming a secret (`accessKeySecrect`,
/// `secret_key`, `signature`), or which, without `_`, `-` and `.`, is at most two edits
/// from a secret name of six letters or more (`access_tokn`, `acessKeyId`). An edit is a
/// letter added, removed, changed, or two neighbours swapped.
///
/// ```
/// use eventer_core::uri::looks_secret;
/// assert!(looks_secret("accessKeySecrect") && looks_secret("access_tokn") && looks_secret("signature"));
/// assert!(!looks_secret("level") && !looks_secret("signatureVersion") && !looks_secret("logStore"));
/// ```
pub fn looks_secret(key: &str) -> bool {
    if is_secret_key(key) {
        return true;
    }
    let last = key
        .char_indices()
        .rev()
        .find(|&(i, c)| {
            matches!(c, '_' | '-' | '.')
                || (c.is_uppercase() && key[..i].chars().next_back().is_some_and(char::is_lowercase))
        })
        .map_or(key, |(i, c)| if c.is_uppercase() { &key[i..] } else { &key[i + c.len_utf8()..] })
        .to_lowercase();
    let squashed: String = key.chars().filter(|c| !matches!(c, '_' | '-' | '.')).collect::<String>().to_lowercase();
    SECRET_WORDS.iter().any(|w| within(&last, w, 1))
        || SECRET_KEYS.iter().filter(|k| k.len() >= 6).any(|k| within(&squashed, &k.replace('_', ""), 2))
}

/// Whether `a` is at most `max` edits from `b` (optimal string alignment distance).
fn within(a: &str, b: &str, max: usize) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > max {
        return false;
    }
    // Three rows of the distance table: two back (for swaps), previous, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (prev[j] + 1).min(row[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut prev, row);
    }
    prev[b.len()] <= max
}

/// What may be shown of each option of a URI, decided in order: a secret's value is
/// hidden, and so is an unknown option's; after a secret's value, whatever is no known
/// option is left out, as it may be the rest of a secret that held an `&`
/// (`access_token=TOKEN&s3cr3t&level=Warning`).
struct Shown<'a> {
    /// The scheme's options; `None` trusts every name (a URI that was validated).
    known: Option<&'a [&'a str]>,
    after_secret: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    Value,
    Hidden,
    Omitted,
}

impl<'a> Shown<'a> {
    fn new(known: Option<&'a [&'a str]>) -> Self {
        Shown { known, after_secret: false }
    }

    /// `bare`: the option has no `=` (what a secret's `&` leaves behind); `in_text`: it was
    /// split from the text after the previous one, not given on its own.
    fn next(&mut self, key: &str, bare: bool, in_text: bool) -> Show {
        let unknown = self.known.is_some_and(|known| !known.contains(&key));
        if self.after_secret && in_text && (unknown || (self.known.is_none() && bare)) {
            return Show::Omitted;
        }
        self.after_secret = looks_secret(key);
        if unknown || self.after_secret { Show::Hidden } else { Show::Value }
    }
}

/// A parsed component URI. Its `Display` and `Debug` are redacted.
#[derive(Clone, PartialEq)]
pub struct ComponentUri {
    scheme: String,
    target: String,
    options: Vec<(String, Value)>,
    /// How many of the options (the first) came from the URI's text; the others were given
    /// one by one, so none of them is the rest of a secret that held an `&`.
    in_text: usize,
}

impl ComponentUri {
    /// The scheme (`dingtalk`, `sls`, `kubernetes`, `stdout`, ...).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// What follows `scheme:` up to the options, e.g. a webhook URL or a file path.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The options, in order, with repeats.
    pub fn pairs(&self) -> &[(String, Value)] {
        &self.options
    }

    /// A consumable view of the options that reports the ones nobody used.
    pub fn options(&self) -> Options {
        Options {
            scheme: self.scheme.clone(),
            pairs: self.options.iter().map(|(k, v)| (k.clone(), v.clone(), false)).collect(),
            in_text: self.in_text,
            known: Vec::new(),
        }
    }

    /// A URI from parts, as a config file gives them.
    pub fn from_parts(scheme: &str, target: &str, options: Vec<(String, Value)>) -> Result<Self> {
        validate_scheme(scheme)?;
        Ok(ComponentUri { scheme: scheme.to_owned(), target: target.to_owned(), options, in_text: 0 })
    }

    /// This URI with more options, given one by one with typed values (a config file's
    /// `options:`).
    ///
    /// ```
    /// use eventer_core::{config::Value, uri::ComponentUri};
    /// let uri: ComponentUri = "sls?project=p".parse()?;
    /// let uri = uri.with_values([("maxBatchLogs".to_owned(), Value::Int(100))]);
    /// assert_eq!(uri.to_string(), "sls?project=p&maxBatchLogs=100");
    /// # Ok::<(), eventer_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_values(mut self, options: impl IntoIterator<Item = (String, Value)>) -> Self {
        self.in_text = self.in_text.min(self.options.len());
        self.options.extend(options);
        self
    }
}

fn validate_scheme(scheme: &str) -> Result<()> {
    let ok = !scheme.is_empty()
        && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if ok { Ok(()) } else { Err(Error::config(format!("invalid scheme `{}`", redact(scheme)))) }
}

impl FromStr for ComponentUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.starts_with('"') || s.starts_with('\'') {
            return Err(Error::config("the URI is quoted; remove the quotes around it"));
        }
        let (scheme, rest) = split_scheme(s);
        validate_scheme(scheme)?;
        let rest = expand_env(rest)?;
        let (target, query) = split_query(&rest);
        let options: Vec<(String, Value)> = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.into_owned(), Value::Text(v.into_owned())))
            .collect();
        let in_text = options.len();
        Ok(ComponentUri { scheme: scheme.to_ascii_lowercase(), target: target.to_owned(), options, in_text })
    }
}

/// `scheme` and what follows its `:`.
fn split_scheme(s: &str) -> (&str, &str) {
    let split = s.find([':', '?']).unwrap_or(s.len());
    (&s[..split], s[split..].strip_prefix(':').unwrap_or(&s[split..]))
}

/// The target and the options' text.
fn split_query(rest: &str) -> (&str, &str) {
    match rest.split_once('?') {
        Some(parts) => parts,
        // kube-eventer appends options to a URL that already has `?access_token=`;
        // a target without `?` may still carry `&k=v` options after it.
        None => match rest.split_once('&') {
            Some((t, q)) if !t.contains('=') => (t, q),
            _ => (rest, ""),
        },
    }
}

/// A URI as the user wrote it, safe to show: [`redact`], and the options judged against
/// `known`, which gives the options of a scheme (`None`: an unknown scheme, none are
/// known). Values of secrets and of unknown options show as `***`; after a secret's value,
/// whatever is no known option is left out, as it may be the rest of a secret that held
/// an `&`.
///
/// ```
/// use eventer_core::uri::redact_uri;
/// let known = |_: &str| Some(vec!["access_token", "level"]);
/// assert_eq!(
///     redact_uri("dingtalk:https://h/send?access_token=TOKEN&s3cr3t&level=Warning&colour=red", known),
///     "dingtalk:https://h/send?access_token=***&level=Warning&colour=***"
/// );
/// ```
pub fn redact_uri<K: AsRef<str>>(raw: &str, known: impl FnOnce(&str) -> Option<Vec<K>>) -> String {
    // A quoted URI is refused, but still shown: judge what is inside the quotes.
    let lead = raw.len() - raw.trim_start_matches(['"', '\'', ' ']).len();
    let (scheme, rest) = split_scheme(&raw[lead..]);
    let known = known(&scheme.to_ascii_lowercase()).unwrap_or_default();
    let known: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
    let (target, query) = split_query(rest);
    let mut out = raw[..raw.len() - rest.len()].to_owned();
    out.push_str(&redact(target));
    if let Some(&sep) = rest.as_bytes().get(target.len()) {
        out.push(char::from(sep));
    }
    let mut shown = Shown::new(Some(&known));
    let mut sep = "";
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (key, _) = form_urlencoded::parse(part.as_bytes()).next().unwrap_or_default();
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        match shown.next(&key, !part.contains('='), true) {
            Show::Value => out.push_str(&format!("{sep}{}", redact(part))),
            Show::Hidden if value.is_empty() => out.push_str(&format!("{sep}{name}")),
            Show::Hidden => out.push_str(&format!("{sep}{name}=***")),
            Show::Omitted => continue,
        }
        sep = "&";
    }
    out
}

impl fmt::Display for ComponentUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        if !self.target.is_empty() {
            write!(f, ":{}", redact(&self.target))?;
        }
        let mut sep = '?';
        let mut shown = Shown::new(None);
        for (i, (k, v)) in self.options.iter().enumerate() {
            let texts = match shown.next(k, *v == Value::Text(String::new()), i < self.in_text) {
                Show::Value => v.texts(),
                Show::Hidden => vec!["***".to_owned()],
                Show::Omitted => continue,
            };
            for v in texts {
                write!(f, "{sep}{k}={v}")?;
                sep = '&';
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ComponentUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComponentUri({self})")
    }
}

/// Replace `$VAR` and `${VAR}` from the environment; `$$` is a literal `$`.
///
/// # Errors
/// When a variable is not set (naming it, never its value).
pub fn expand_env(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(|| Error::config("unterminated `${` in URI"))?;
            (&braced[..end], end + 2)
        } else if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
        } else {
            let value =
                std::env::var(name).map_err(|_| Error::config(format!("environment variable {name} is not set")))?;
            out.push_str(&value);
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Hide secrets in any text that may hold a URI: values of secret options
/// (`access_token=...`, `accessKeySecret=...`) and `user:password@` userinfo.
///
/// ```
/// use eventer_core::uri::redact;
/// assert_eq!(
///     redact("https://oapi.dingtalk.com/robot/send?access_token=abc123&sign=SECxyz&level=Warning"),
///     "https://oapi.dingtalk.com/robot/send?access_token=***&sign=***&level=Warning"
/// );
/// assert_eq!(redact("http://admin:hunter2@host:9200/"), "http://admin:***@host:9200/");
/// // Webhooks whose path is the credential: Lark/Feishu bots and Slack.
/// assert_eq!(
///     redact("https://open.feishu.cn/open-apis/bot/v2/hook/0a1b2c?sign=s"),
///     "https://open.feishu.cn/open-apis/bot/v2/hook/***?sign=***"
/// );
/// assert_eq!(redact("https://hooks.slack.com/services/T0/B0/xyz"), "https://hooks.slack.com/services/***");
/// ```
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // userinfo: `scheme://user:pass@`
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let mut end = tail.find(['/', '?', '#', ' ', '"', '\'']).unwrap_or(tail.len());
        // `host:9&next=http://u:p@h` (a URL in another URL's option): no userinfo here,
        // and the scan must not swallow the next URL's `http:`.
        if !tail[..end].contains('@')
            && let Some(amp) = tail[..end].find('&')
        {
            end = amp;
        }
        match tail[..end].rfind('@') {
            Some(at) => {
                let userinfo = &tail[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_path_tokens(&redact_pairs(&out))
}

/// Hide the path credentials of webhooks: Lark/Feishu's `/open-apis/bot/v2/hook/<token>`
/// and Slack's `/services/T…/B…/<secret>`.
fn redact_path_tokens(text: &str) -> String {
    let end_of = |s: &str| s.find(['?', '#', ' ', '"', '\'', '&', '\n']).unwrap_or(s.len());
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        const LARK: &str = "/bot/v2/hook/";
        let lark = rest.find(LARK).map(|i| i + LARK.len());
        let slack = rest.match_indices("/services/").map(|(i, m)| i + m.len()).find(|&at| {
            let mut parts = rest[at..at + end_of(&rest[at..])].split('/');
            parts.next().is_some_and(|t| t.starts_with('T')) && parts.next().is_some_and(|b| b.starts_with('B'))
        });
        let Some(at) = lark.into_iter().chain(slack).min() else { break };
        let end = at + end_of(&rest[at..]);
        out.push_str(&rest[..at]);
        if end > at {
            out.push_str("***");
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `key=value` pairs, also percent-encoded (`key%3Dvalue%26next`, a webhook pasted
/// encoded): then the whole query is one odd option name, echoed by its error.
fn redact_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let encoded_at = |i: usize, code: &str| text.get(i..i + 3).is_some_and(|t| t.eq_ignore_ascii_case(code));
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let eq = match bytes[i] {
            b'=' => 1,
            b'%' if encoded_at(i, "%3D") => 3,
            _ => 0,
        };
        if eq > 0 {
            let start = text[..i]
                .char_indices()
                .rev()
                .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
                .map_or(0, |(p, c)| p + c.len_utf8());
            let mut key = &text[start..i];
            // After an escape (`%26sign`) the key starts past its two hex digits.
            if start > 0 && bytes[start - 1] == b'%' {
                key = key.get(2..).unwrap_or_default();
            }
            if !key.is_empty() && looks_secret(key) {
                let value = i + eq;
                let span_end = |from: usize| {
                    let end = text[from..]
                        .find(['&', ' ', '"', '\'', ',', ')', '\n', ';', '#'])
                        .map_or(text.len(), |p| from + p);
                    // `...=TOKEN: unknown option`: the colon is the message's.
                    if end > from && text[..end].ends_with(':') && text[end..].chars().next().is_none_or(|c| c == ' ') {
                        end - 1
                    } else {
                        end
                    }
                };
                let mut end = span_end(value);
                if let Some(amp) = (value..end).find(|&j| encoded_at(j, "%26")) {
                    end = amp;
                } else {
                    // `access_token=TOKEN&s3cr3t`: a part with no `=` after a secret is no
                    // option but the rest of the secret, cut at its `&`.
                    while text[end..].starts_with('&') {
                        let next = span_end(end + 1);
                        let part = &text[end + 1..next];
                        if part.is_empty() || part.contains('=') || part.to_ascii_uppercase().contains("%3D") {
                            break;
                        }
                        end = next;
                    }
                }
                out.push_str(&text[copied..value]);
                out.push_str("***");
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// The options of a [`ComponentUri`], taken by the settings structs that read them
/// ([`Options::take`]), so that [`Options::finish`] can reject the ones nobody knows.
#[derive(Clone)]
pub struct Options {
    scheme: String,
    pairs: Vec<(String, Value, bool)>,
    in_text: usize,
    /// The names every `take` read, for listing the known options.
    known: Vec<&'static str>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, v, _)| {
                // A value may be a whole URL whose path or query is the credential (`webhook=`).
                format!("{k}={}", if looks_secret(k) { "***".to_owned() } else { redact(&v.texts().join(",")) })
            }))
            .finish()
    }
}

impl Options {
    /// Deserialize the settings struct `T` from the options named by its fields (see
    /// [`crate::config`]), leaving the others for the next reader. A repeated option is
    /// a list; for a single value its repeats must agree.
    ///
    /// # Errors
    /// A configuration error naming the option: missing, or a value that does not parse.
    pub fn take<T: DeserializeOwned>(&mut self) -> Result<T> {
        let fields = crate::config::names::<T>();
        self.known.extend_from_slice(fields);
        let mut entries: Vec<(&str, Value)> = Vec::new();
        for (key, value, used) in &mut self.pairs {
            let Some(&name) = fields.iter().find(|f| **f == key.as_str()) else { continue };
            *used = true;
            match entries.iter_mut().find(|(k, _)| *k == name) {
                Some((_, Value::List(items))) => items.push(value.clone()),
                Some((_, first)) => *first = Value::List(vec![first.clone(), value.clone()]),
                None => entries.push((name, value.clone())),
            }
        }
        T::deserialize(crate::config::OptionsDeserializer { entries }).map_err(|e| Error::config(e.0))
    }

    /// Every option no reader took, in order, as text (a list's items one by one), now
    /// taken: for a component that passes what is not its own on (the webhook sink keeps
    /// its URL's own query parameters).
    ///
    /// ```
    /// let uri: eventer_core::uri::ComponentUri = "webhook:https://h/send?key=K&method=POST&x=1".parse()?;
    /// #[derive(serde::Deserialize)]
    /// struct Own {
    ///     method: String,
    /// }
    /// let mut options = uri.options();
    /// assert_eq!(options.take::<Own>()?.method, "POST");
    /// assert_eq!(options.rest(), [("key".to_owned(), "K".to_owned()), ("x".to_owned(), "1".to_owned())]);
    /// options.finish()?;
    /// # Ok::<(), eventer_core::Error>(())
    /// ```
    pub fn rest(&mut self) -> Vec<(String, String)> {
        let mut rest = Vec::new();
        for (key, value, used) in self.pairs.iter_mut().filter(|(_, _, used)| !*used) {
            *used = true;
            rest.extend(value.texts().into_iter().map(|text| (key.clone(), text)));
        }
        rest
    }

    /// Fail on options no [`Options::take`] read, naming them and listing the known ones.
    ///
    /// # Errors
    /// `unknown option x for dingtalk (known: ...)`.
    ///
    /// An unknown option right after a secret's value is not named: it may be the rest of a
    /// secret that held an `&` (`access_token=TOKEN&s3cr3t`).
    pub fn finish(self) -> Result<()> {
        let known = self.known;
        let mut unknown: Vec<&str> = Vec::new();
        let mut cut_secrets: Vec<&str> = Vec::new();
        let mut shown = Shown::new(Some(known.as_slice()));
        let mut secret = "";
        for (i, (key, value, used)) in self.pairs.iter().enumerate() {
            let show = shown.next(key, *value == Value::Text(String::new()), i < self.in_text);
            if show != Show::Omitted && looks_secret(key) {
                secret = key;
            }
            match show {
                _ if *used => {}
                Show::Omitted => cut_secrets.push(secret),
                _ => unknown.push(key),
            }
        }
        unknown.dedup();
        cut_secrets.dedup();
        let mut problems = Vec::new();
        if !unknown.is_empty() {
            let mut known = known.clone();
            known.sort_unstable();
            known.dedup();
            problems.push(format!(
                "unknown option{} {} for {} (known: {})",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                self.scheme,
                known.join(", ")
            ));
        }
        for secret in cut_secrets {
            problems.push(format!(
                "option {secret}: its value is followed by `&` and text that is no option of {} (not shown, as it \
                 may be part of the secret; write `&` inside a value as %26)",
                self.scheme
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(Error::config(problems.join("; "))) }
    }
}

/// Parse a duration: `500ms`, `30s`, `5m`, `1h30m`, `2h 5m`.
///
/// # Errors
/// A message saying what is wrong with the text.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration `{s}` ({e}); use e.g. 500ms, 30s, 5m, 1h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ComponentUri {
        s.parse().unwrap()
    }

    #[test]
    fn debug_hides_secrets_inside_values() {
        let uri = parse("lark:?webhook=https://open.feishu.cn/open-apis/bot/v2/hook/HOOK-TOKEN&sign=SIGN&label=prod");
        let shown = format!("{:?}", uri.options());
        assert!(shown.contains("label=prod") && shown.contains("sign=***"), "{shown}");
        assert!(!shown.contains("HOOK-TOKEN") && !shown.contains("SIGN\""), "{shown}");
    }

    #[test]
    fn kube_eventer_uri_shapes() {
        let u = parse(
            "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=t0k&label=c1&label=c2&level=Warning&sign=SECx",
        );
        assert_eq!(u.scheme(), "dingtalk");
        assert_eq!(u.target(), "https://oapi.dingtalk.com/robot/send");
        #[derive(serde::Deserialize)]
        struct Labels {
            label: Vec<String>,
            access_token: String,
        }
        let l: Labels = u.options().take().unwrap();
        assert_eq!((l.label, l.access_token.as_str()), (vec!["c1".to_owned(), "c2".to_owned()], "t0k"));

        let u = parse("sls:https://sls.aliyuncs.com?logStore=ls&project=p&label=k,v");
        assert_eq!((u.scheme(), u.target()), ("sls", "https://sls.aliyuncs.com"));
        assert_eq!(u.pairs().len(), 3);

        let u = parse("kubernetes:https://kubernetes.default");
        assert_eq!(u.target(), "https://kubernetes.default");
        assert!(u.pairs().is_empty());

        let u = parse("kubernetes:?inClusterConfig=false");
        assert_eq!(u.target(), "");
        assert_eq!(u.pairs()[0], ("inClusterConfig".to_owned(), Value::Text("false".to_owned())));

        assert_eq!(parse("log").scheme(), "log");
        let u = parse("stdout?format=json");
        assert_eq!((u.scheme(), u.target()), ("stdout", ""));
        let u = parse("file:examples/events.json");
        assert_eq!(u.target(), "examples/events.json");
    }

    /// What a DingTalk-like sink reads.
    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only which options it takes matters")]
    struct Chat {
        access_token: Option<String>,
        level: Option<String>,
    }

    #[test]
    fn options_are_validated() {
        #[derive(Debug, serde::Deserialize)]
        struct Stdout {
            format: Option<String>,
        }
        let u = parse("stdout?format=json&formt=x&level=Warning&level=Normal");
        let mut o = u.options();
        assert_eq!(o.take::<Stdout>().unwrap().format.as_deref(), Some("json"));
        assert_eq!(o.take::<Chat>().unwrap_err().to_string(), "option level: given more than once");
        let err = o.finish().unwrap_err();
        assert_eq!(err.to_string(), "unknown option formt for stdout (known: access_token, format, level)");

        #[derive(Debug, serde::Deserialize)]
        struct Typed {
            b: Option<bool>,
            #[serde(default, with = "crate::duration::option")]
            d: Option<Duration>,
            #[expect(dead_code, reason = "only its error matters")]
            n: Option<u32>,
            missing: Option<String>,
        }
        let err = |uri: &str| parse(uri).options().take::<Typed>().unwrap_err().to_string();
        assert_eq!(err("x?b=maybe"), "option b: invalid boolean `maybe`");
        assert!(err("x?d=3 parsecs").starts_with("option d: invalid duration `3 parsecs`"));
        assert_eq!(err("x?n=x"), "option n: invalid number `x`");
        let t: Typed = parse("x?d=1m30s&b=true").options().take().unwrap();
        assert_eq!((t.d, t.b, t.missing), (Some(Duration::from_secs(90)), Some(true), None));
    }

    #[test]
    fn bad_uris() {
        assert!("".parse::<ComponentUri>().is_err());
        assert!(":foo".parse::<ComponentUri>().is_err());
        assert!("1abc:foo".parse::<ComponentUri>().is_err());
        let err = "\"kafka:?brokers=x\"".parse::<ComponentUri>().unwrap_err();
        assert!(err.to_string().contains("quoted"));
    }

    #[test]
    fn env_expansion() {
        // Cargo and nextest set CARGO_PKG_NAME for the test process; set_var would need unsafe.
        let u = parse("dingtalk:https://h/robot/send?access_token=${CARGO_PKG_NAME}&label=$$1&x=$CARGO_PKG_NAME.y");
        #[derive(serde::Deserialize)]
        struct Expanded {
            access_token: String,
            label: String,
            x: String,
        }
        let e: Expanded = u.options().take().unwrap();
        assert_eq!((e.access_token.as_str(), e.label.as_str()), (env!("CARGO_PKG_NAME"), "$1"));
        assert_eq!(e.x, format!("{}.y", env!("CARGO_PKG_NAME")));
        let err = "x:?a=$EVENTER_SURELY_UNSET_VAR".parse::<ComponentUri>().unwrap_err();
        assert_eq!(err.to_string(), "environment variable EVENTER_SURELY_UNSET_VAR is not set");
        // The expanded secret is redacted when the URI is shown.
        assert!(u.to_string().starts_with("dingtalk:https://h/robot/send?access_token=***&"));
    }

    #[test]
    fn redaction() {
        let u = parse("sls:https://sls.aliyuncs.com?project=p&accessKeyId=AKID&accessKeySecret=SK&label=a,b");
        let shown = u.to_string();
        assert_eq!(shown, "sls:https://sls.aliyuncs.com?project=p&accessKeyId=***&accessKeySecret=***&label=a,b");
        assert_eq!(format!("{u:?}"), format!("ComponentUri({shown})"));
        assert_eq!(
            redact(
                "error sending request for url (https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1&sign=zz%3D)"
            ),
            "error sending request for url (https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=1&sign=***)"
        );
        assert_eq!(redact("mysql:?root:pw@tcp(h:3306)/db"), "mysql:?root:pw@tcp(h:3306)/db");
        assert_eq!(redact("x password=abc y"), "x password=*** y");
        // Found by the `uri` fuzz target: a multi-byte character before `=`.
        assert_eq!(redact("file:ы=mp/cp.json"), "file:ы=mp/cp.json");
        assert_eq!(redact("ыtoken=abc"), "ыtoken=***");
        // A webhook pasted percent-encoded is one odd option name, echoed by its error.
        assert_eq!(
            redact("send?access_token%3DTOK%26sign%3dSEC%26level%3DWarning: missing"),
            "send?access_token%3D***%26sign%3d***%26level%3DWarning: missing"
        );
        // A URL with a password inside another URL's options.
        assert_eq!(
            redact("sls:?endpoint=http://127.0.0.1:9&metadataEndpoint=http://md:PASS@127.0.0.1:9&x=1"),
            "sls:?endpoint=http://127.0.0.1:9&metadataEndpoint=http://md:***@127.0.0.1:9&x=1"
        );
        assert_eq!(redact("http://u:p&w@h/x"), "http://u:***@h/x");
    }

    #[test]
    fn near_misses_of_secret_names_are_secret() {
        for name in [
            "accessKeySecrect",
            "signature",
            "secret_key",
            "access_tokn",
            "acess_token",
            "accesKeyId",
            "AccessKeySecret",
            "apiKey",
            "client-secert",
            "passwrd",
        ] {
            assert!(looks_secret(name), "{name}");
            assert_eq!(redact(&format!("x?{name}=S3CR3T&level=Warning")), format!("x?{name}=***&level=Warning"));
        }
        for name in ["level", "logStore", "signatureVersion", "regionId", "at_mobiles", "kinds", "auth", "id", "name"] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn an_ampersand_in_a_secret_hides_the_rest_of_it() {
        // Without the URI's scheme: a part with no `=` after a secret is the secret's rest.
        assert_eq!(redact("send?access_token=TOKEN&s3cr3t&level=Warning"), "send?access_token=***&level=Warning");
        assert_eq!(redact("sign=SEC&a&b: unknown option"), "sign=***: unknown option");
        let u = parse("dingtalk:https://h/send?access_token=TOKEN&s3cr3t&level=Warning");
        assert_eq!(u.to_string(), "dingtalk:https://h/send?access_token=***&level=Warning");
        // With the scheme's options: everything up to the next known option, `=` or not.
        let known = |_: &str| Some(vec!["access_token", "sign", "level"]);
        for (raw, shown) in [
            (
                "dingtalk:https://h/send?access_token=TOKEN&s3cr3t&level=Warning",
                "dingtalk:https://h/send?access_token=***&level=Warning",
            ),
            (
                "dingtalk:https://h/send?access_token=TOK&s3=cr3t&x&level=Warning",
                "dingtalk:https://h/send?access_token=***&level=Warning",
            ),
            (
                "dingtalk:https://h/send&access_token=TOK&sign=SEC&more",
                "dingtalk:https://h/send&access_token=***&sign=***",
            ),
            ("\"dingtalk:?level=Normal&colour=red&bare\"", "\"dingtalk:?level=Normal&colour=***&bare\""),
            ("dingtalk:?accessTokn=TOK&extra=1&level=Normal", "dingtalk:?accessTokn=***&level=Normal"),
            ("dingtalk", "dingtalk"),
            ("dingtalk:?", "dingtalk:?"),
        ] {
            assert_eq!(redact_uri(raw, known), shown, "{raw}");
        }
        // An unknown scheme knows no option.
        assert_eq!(redact_uri("kafka:?brokers=h:9092&topic=t", |_| None::<Vec<&str>>), "kafka:?brokers=***&topic=***");
    }

    #[test]
    fn unknown_options_after_a_secret_are_not_named() {
        let finish = |u: &ComponentUri| {
            let mut o = u.options();
            o.take::<Chat>().unwrap();
            o.finish().unwrap_err().to_string()
        };
        let err = finish(&parse("dingtalk:?access_token=TOKEN&s3cr3t&level=Warning&colour=red"));
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(err.starts_with("unknown option colour for dingtalk (known: access_token, level); option access_token: its value is followed by `&` and text that is no option of dingtalk"), "{err}");
        let err = finish(&parse("dingtalk:?access_token=TOKEN&s3=cr3t"));
        assert!(err.starts_with("option access_token: its value is followed by"), "{err}");
        assert!(!err.contains("cr3t"), "{err}");
        // Options given one by one (a config file's) are each their own, never a secret's rest.
        let u = parse("dingtalk:?access_token=TOKEN").with_values([("colour".into(), "red".into())]);
        assert!(finish(&u).starts_with("unknown option colour for dingtalk"));
        assert_eq!(u.to_string(), "dingtalk?access_token=***&colour=red");
    }
}
