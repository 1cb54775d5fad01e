//! A third-party chat sink built on the alert engine: `chat:<url>` posts
//! `{"text": "…"}` to a webhook, the shape of most chat robots.
//!
//! All it writes is the [`ChatService`]: how an alert and a digest read, the size limit,
//! and what each HTTP answer means. Grouping, repeats, digests, the budget and the pause
//! after a 429 are [`AlertSink`]'s.
//!
//! `--sink='chat:http://127.0.0.1:8080/hook?label=prod&timezone=Asia/Shanghai&budget=18'`
//! takes [`AlertConfig::OPTIONS`] and:
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `label` | none | repeatable; lines at the top of each message |
//! | `timezone` | `TZ`, else UTC | IANA zone of the times shown |
//! | `max_bytes` | `4000` | largest request body |
//! | `timeout` | `10s` | one request |

use std::{fmt, fmt::Write as _, sync::Arc, time::Duration};

use async_trait::async_trait;
use eventer_alert::{Alert, AlertConfig, AlertSink, Answer, ChatService, Digest, Limits, Zone, json_len, truncate};
use eventer_core::{
    BoxSink, BuildContext, Error, ErrorKind, Level, Registry, Result, SinkFactory, config::names, uri::Options,
};
use serde::Deserialize;

/// The URI scheme.
pub const SCHEME: &str = "chat";

/// The sink: the alert engine around a [`ChatWebhook`].
pub type ChatSink = AlertSink<ChatWebhook>;

/// How long to hold everything after a 429 without `Retry-After`: a minute, the window of
/// most chat robots' limits.
const DEFAULT_PAUSE: Duration = Duration::from_secs(60);
/// A digest line keeps at most this much of an event's message.
const LINE_MESSAGE_BYTES: usize = 200;

/// Posts `{"text": "…"}` to one URL.
pub struct ChatWebhook {
    http: reqwest::Client,
    url: String,
    labels: Vec<String>,
    zone: Zone,
    max_bytes: usize,
}

impl fmt::Debug for ChatWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Webhook URLs carry their token in the path or the query: show the host only.
        let rest = self.url.split_once("://").map_or("", |(_, rest)| rest);
        let host = rest.split(['/', '?']).next().unwrap_or_default().rsplit('@').next().unwrap_or_default();
        f.debug_struct("ChatWebhook").field("host", &host).finish_non_exhaustive()
    }
}

impl ChatWebhook {
    /// A webhook at `url` (http or https).
    ///
    /// # Errors
    /// A configuration error: not an http(s) URL, or no HTTP client.
    pub fn new(url: &str, labels: Vec<String>, zone: Zone, max_bytes: usize, timeout: Duration) -> Result<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::config("chat needs an http(s) URL: chat:https://…"));
        }
        // reqwest is built without a default crypto provider; installing fails only when
        // one is already installed, which is fine.
        rustls::crypto::ring::default_provider().install_default().ok();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::config("cannot build the HTTP client").with_source(e.without_url()))?;
        Ok(ChatWebhook { http, url: url.to_owned(), labels, zone, max_bytes })
    }

    fn body(&self, text: &str) -> String {
        serde_json::json!({ "text": text }).to_string()
    }

    fn header(&self) -> String {
        self.labels.iter().fold(String::new(), |out, l| out + l + "\n")
    }
}

#[async_trait]
impl ChatService for ChatWebhook {
    const NAME: &'static str = "chat";

    fn limits(&self) -> Limits {
        Limits::new(self.max_bytes)
    }

    fn render_one(&self, Alert { event: ev, count }: Alert<'_>, max_bytes: usize) -> String {
        let head = format!(
            "{}[{}] {} {}/{} {} (x{count}) at {}\n",
            self.header(),
            ev.level,
            ev.involved_object.kind,
            ev.involved_object.namespace,
            ev.involved_object.name,
            ev.reason,
            self.zone.long(ev),
        );
        // Cut the message, never the alert.
        let room = max_bytes.saturating_sub(self.body(&head).len());
        self.body(&(head + &fit(&ev.message, room)))
    }

    fn digest_line(&self, Alert { event: ev, count }: Alert<'_>) -> String {
        let message: String = truncate(ev.message.trim(), LINE_MESSAGE_BYTES)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let obj = &ev.involved_object;
        format!(
            "- {} {} {}/{} {} (x{count}, {}): {message}",
            ev.level,
            obj.kind,
            obj.namespace,
            obj.name,
            ev.reason,
            self.zone.short(ev)
        )
    }

    fn render_digest(&self, Digest { lines, first, total }: Digest<'_>) -> String {
        let mut text = self.header();
        if lines.len() == total {
            writeln!(text, "{total} Kubernetes events (times in {}):", self.zone.name())
        } else {
            let last = first + lines.len().saturating_sub(1);
            writeln!(text, "Kubernetes events {first}-{last} of {total} (times in {}):", self.zone.name())
        }
        .expect("writing to a String");
        text.push_str(&lines.join("\n"));
        self.body(&text)
    }

    async fn post(&self, body: String) -> Answer {
        let sent = self.http.post(&self.url).header("content-type", "application/json").body(body).send().await;
        let response = match sent {
            Ok(r) => r,
            // reqwest errors carry the URL: drop it, tokens live there.
            Err(e) => {
                let error = Error::new(ErrorKind::Unavailable, "cannot reach the chat webhook");
                return Answer::Failed(error.with_source(e.without_url()));
            }
        };
        let status = response.status().as_u16();
        let error = |kind| Error::new(kind, format!("chat webhook answered HTTP {status}"));
        match status {
            200..=299 => Answer::Sent,
            429 => {
                let pause = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                    .map_or(DEFAULT_PAUSE, Duration::from_secs);
                tracing::error!(pause = ?pause, "Chat webhook answered 429 (too many requests); holding alerts until the pause ends.");
                Answer::TooFast { pause, error: error(ErrorKind::RateLimited) }
            }
            413 => Answer::TooLarge(error(ErrorKind::Rejected)),
            400 | 422 => Answer::Content(error(ErrorKind::Rejected)),
            401 | 403 | 404 => {
                tracing::error!(
                    status,
                    "Chat webhook refused the sink's configuration; check the URL. Alerts are rejected."
                );
                Answer::Config(error(ErrorKind::Unauthorized))
            }
            300..=399 | 408 | 500.. => Answer::Failed(error(ErrorKind::Unavailable)),
            _ => Answer::Failed(error(ErrorKind::Rejected)),
        }
    }
}

/// `message`, cut with `…` so that it takes at most `room` bytes inside a JSON string.
fn fit(message: &str, room: usize) -> String {
    if json_len(message) <= room {
        return message.to_owned();
    }
    let mut used = '…'.len_utf8();
    let mut out = String::new();
    for c in message.chars() {
        used += json_len(c.encode_utf8(&mut [0; 4]));
        if used > room {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// The chat sink's own options; the alert engine's are [`AlertConfig`]'s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    /// Lines at the top of every message (`label=`, repeatable).
    #[serde(default)]
    pub label: Vec<String>,
    /// IANA time zone of the times shown. Default: `TZ`, else UTC.
    pub timezone: Option<String>,
    /// Largest message body in bytes, at least 1000. Default 4000.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Timeout of one request. Default 10s.
    #[serde(default = "default_timeout", with = "eventer_core::duration")]
    pub timeout: Duration,
}

fn default_max_bytes() -> usize {
    4000
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Builds [`ChatSink`]s from `chat:<url>?…`; the default level is Warning.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatFactory;

impl SinkFactory for ChatFactory {
    fn options(&self) -> Vec<&'static str> {
        [names::<ChatSettings>(), names::<AlertConfig>()].concat()
    }

    fn default_level(&self) -> Option<Level> {
        Some(Level::Warning)
    }

    fn build(&self, target: &str, options: &mut Options, cx: &BuildContext) -> Result<BoxSink> {
        let settings: ChatSettings = options.take()?;
        let config = AlertConfig::from_options(options)?;
        let zone = Zone::new(settings.timezone.as_deref())?;
        if settings.max_bytes < 1000 {
            return Err(Error::config("option max_bytes: must be at least 1000"));
        }
        if settings.timeout.is_zero() {
            return Err(Error::config("option timeout: must be more than 0"));
        }
        let webhook = ChatWebhook::new(target, settings.label, zone, settings.max_bytes, settings.timeout)?;
        Ok(Box::new(AlertSink::new(webhook, config)?.with_metrics(&cx.metrics)))
    }
}

/// Register the `chat` scheme.
pub fn register(registry: &mut Registry) {
    registry.register_sink(SCHEME, Arc::new(ChatFactory));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_to_fit_escaped() {
        let message = "\"quoted\" ".repeat(100);
        let cut = fit(&message, 50);
        assert!(json_len(&cut) <= 50 && cut.ends_with('…') && cut.starts_with("\"quoted\""), "{cut}");
        assert_eq!(fit("short", 50), "short");
    }

    #[test]
    fn the_factory_reads_the_engines_options() {
        for option in names::<AlertConfig>() {
            assert!(ChatFactory.options().contains(option), "{option}");
        }
    }
}
