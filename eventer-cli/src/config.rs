//! `--config eventer.yaml` and how it combines with the flags.
//!
//! The file says what the flags say:
//!
//! ```yaml
//! source: kubernetes:https://kubernetes.default      # a URI, as --source takes it
//! sinks:
//!   - dingtalk:https://oapi.dingtalk.com/robot/send?access_token=${DINGTALK_TOKEN}&level=Warning
//!   - uri: sls:https://cn-hangzhou.log.aliyuncs.com  # or a URI plus options, typed
//!     options:
//!       project: k8s-events
//!       logStore: events
//!       maxBatchLogs: 1000
//!       internal: false
//!       label: {cluster: prod, team: infra}           # or a list: [cluster,prod, ...]
//!       accessKeySecret: ${SLS_SECRET}
//! checkpoint: configmap:kube-system/eventer
//! frequency: 10s
//! shutdownTimeout: 30s
//! livenessTimeout: 5m
//! healthz: { ip: 0.0.0.0, port: 8084 }
//! leaderElection: { enabled: true, leaseName: eventer, namespace: kube-system }
//! log: { format: json, verbosity: 1 }
//! maxProcs: 2
//! ```
//!
//! Option values keep their YAML types (numbers, booleans, lists, maps) and reach each
//! component's settings struct as they are (see `eventer_core::config`); a list is the
//! option repeated. `$VAR`/`${VAR}` are expanded in URIs and option values (never elsewhere). A flag given on
//! the command line wins over the file's value; `--sink` flags replace the file's sinks.

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    time::Duration,
};

use eventer_core::{Registry, config::Value, registry::Role, uri::ComponentUri};
use serde::{Deserialize, Deserializer, de};

use crate::{
    Failure,
    args::{Flags, LogFormat},
};

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    source: Option<Component>,
    #[serde(default)]
    sinks: Vec<Component>,
    checkpoint: Option<Component>,
    #[serde(default, with = "eventer_core::duration::option")]
    frequency: Option<Duration>,
    #[serde(default, with = "eventer_core::duration::option")]
    shutdown_timeout: Option<Duration>,
    #[serde(default, with = "eventer_core::duration::option")]
    liveness_timeout: Option<Duration>,
    #[serde(default)]
    healthz: Healthz,
    #[serde(default)]
    leader_election: LeaderElection,
    #[serde(default)]
    log: Log,
    max_procs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Healthz {
    ip: Option<IpAddr>,
    port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LeaderElection {
    enabled: Option<bool>,
    lease_name: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Log {
    format: Option<LogFormat>,
    verbosity: Option<u8>,
}

/// A source, sink or checkpoint: a URI string, or `{uri, options}`.
#[derive(Debug)]
struct Component {
    uri: String,
    options: BTreeMap<String, OptionValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentParts {
    uri: String,
    #[serde(default)]
    options: BTreeMap<String, OptionValue>,
}

impl<'de> Deserialize<'de> for Component {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Component;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URI string, or a map with `uri` and `options`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Component, E> {
                Ok(Component { uri: s.to_owned(), options: BTreeMap::new() })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Component, A::Error> {
                let parts = ComponentParts::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Component { uri: parts.uri, options: parts.options })
            }
        }
        d.deserialize_any(V)
    }
}

/// An option's typed value: a scalar, a list (the option repeated) or a map of scalars
/// (`label: {cluster: prod}`), handed to the component as it is, to read as its
/// settings' types say.
struct OptionValue(Value);

/// It may be a secret, and only the component knows: never shown.
impl fmt::Debug for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for OptionValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let scalar = |v: &Value| !matches!(v, Value::List(_) | Value::Map(_));
        let value = Value::deserialize(d)?;
        let flat = match &value {
            Value::List(items) => items.iter().all(scalar),
            Value::Map(entries) => entries.iter().all(|(_, v)| scalar(v)),
            _ => true,
        };
        if flat {
            Ok(OptionValue(value))
        } else {
            Err(de::Error::custom("an option value must be a string, number or boolean, or a list or map of them"))
        }
    }
}

/// Where a component came from, for error messages: `--sink=<uri>` or `eventer.yaml: sinks[1]`.
#[derive(Debug, Clone)]
pub(crate) struct Origin(String);

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A component URI with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) origin: Origin,
    pub(crate) uri: ComponentUri,
}

/// Leader-election settings.
#[derive(Debug, Clone)]
pub(crate) struct Leader {
    pub(crate) lease_name: String,
    pub(crate) namespace: Option<String>,
}

/// Flags and file combined, defaults applied.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) source: Located,
    pub(crate) sinks: Vec<Located>,
    pub(crate) checkpoint: Option<Located>,
    pub(crate) frequency: Option<Duration>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) liveness_timeout: Duration,
    pub(crate) healthz: SocketAddr,
    pub(crate) leader: Option<Leader>,
    pub(crate) log_format: LogFormat,
    pub(crate) verbosity: u8,
    pub(crate) max_procs: i64,
}

impl Settings {
    /// Combine the flags with `--config`, if any. The registry knows which options a URI's
    /// scheme has, for showing URIs in errors.
    pub(crate) fn resolve(flags: &Flags, registry: &Registry) -> Result<Settings, Failure> {
        let (file, name) = match &flags.config {
            Some(path) => (read(path)?, path.display().to_string()),
            None => (File::default(), String::new()),
        };
        Settings::combine(flags, file, &name, registry)
    }

    /// Parse a config file's text and combine it with `flags` (`name` for messages).
    pub(crate) fn from_text(flags: &Flags, text: &str, name: &str, registry: &Registry) -> Result<Settings, Failure> {
        Settings::combine(flags, parse(text, name)?, name, registry)
    }

    fn combine(flags: &Flags, file: File, name: &str, registry: &Registry) -> Result<Settings, Failure> {
        let flag_uri = |flag: &str, role: Role, value: &str| {
            let origin = Origin(format!("{flag}={}", registry.redact_uri(role, value)));
            let uri =
                value.parse().map_err(|e: eventer_core::Error| Failure::usage(format!("{origin}: {}", e.chain())))?;
            Ok::<_, Failure>(Located { origin, uri })
        };
        let in_file = |what: String| Origin(format!("--config={name}: {what}"));

        let source = match (&flags.source, file.source) {
            (Some(flag), _) => flag_uri("--source", Role::Source, flag)?,
            (None, Some(c)) => c.resolve(in_file("source".into()))?,
            (None, None) => {
                return Err(Failure::usage(
                    "--source: a source is required (e.g. --source=kubernetes:https://kubernetes.default)",
                ));
            }
        };
        let sinks = if flags.sinks.is_empty() {
            let mut sinks = Vec::with_capacity(file.sinks.len());
            for (i, c) in file.sinks.into_iter().enumerate() {
                sinks.push(c.resolve(in_file(format!("sinks[{i}]")))?);
            }
            sinks
        } else {
            flags.sinks.iter().map(|s| flag_uri("--sink", Role::Sink, s)).collect::<Result<_, _>>()?
        };
        if sinks.is_empty() {
            return Err(Failure::usage("--sink: at least one sink is required (e.g. --sink=stdout)"));
        }
        let checkpoint = match (&flags.checkpoint, file.checkpoint) {
            (Some(flag), _) => Some(flag_uri("--checkpoint", Role::Checkpoint, flag)?),
            (None, Some(c)) => Some(c.resolve(in_file("checkpoint".into()))?),
            (None, None) => None,
        };
        let leader = match flags.leader_elect.or(file.leader_election.enabled) {
            Some(true) => Some(Leader {
                lease_name: flags
                    .leader_elect_lease_name
                    .clone()
                    .or(file.leader_election.lease_name)
                    .unwrap_or_else(|| "eventer".into()),
                namespace: flags.leader_elect_namespace.clone().or(file.leader_election.namespace),
            }),
            _ => None,
        };
        Ok(Settings {
            source,
            sinks,
            checkpoint,
            frequency: flags.frequency.or(file.frequency),
            shutdown_timeout: flags.shutdown_timeout.or(file.shutdown_timeout).unwrap_or(Duration::from_secs(30)),
            liveness_timeout: flags.liveness_timeout.or(file.liveness_timeout).unwrap_or(Duration::from_secs(300)),
            healthz: SocketAddr::new(
                flags.healthz_ip.or(file.healthz.ip).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                flags.healthz_port.or(file.healthz.port).unwrap_or(8084),
            ),
            leader,
            log_format: flags.log_format.or(file.log.format).unwrap_or_default(),
            verbosity: match flags.verbosity() {
                0 => file.log.verbosity.unwrap_or(0),
                v => v,
            },
            max_procs: flags.max_procs.or(file.max_procs).unwrap_or(1),
        })
    }
}

fn read(path: &Path) -> Result<File, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("--config={}: cannot read: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

fn parse(text: &str, name: &str) -> Result<File, Failure> {
    let flag = format!("--config={name}");
    // The message names the field (`sinks[1].options`) and never echoes a value.
    serde_path_to_error::deserialize::<_, Option<File>>(serde_norway::Deserializer::from_str(text))
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            let path = e.path().to_string();
            let mut inner = one_line(&e.into_inner().to_string());
            // serde_norway prefixes nested errors with part of the path we print anyway.
            if let Some((_, rest)) = inner.split_once(": ").filter(|(h, _)| path.starts_with(h)) {
                inner = rest.to_owned();
            }
            Failure::usage(if path == "." { format!("{flag}: {inner}") } else { format!("{flag}: {path}: {inner}") })
        })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Component {
    fn resolve(self, origin: Origin) -> Result<Located, Failure> {
        let fail = |e: eventer_core::Error| Failure::usage(format!("{origin}: {}", e.chain()));
        let base: ComponentUri = self.uri.parse().map_err(fail)?;
        let mut values = Vec::new();
        for (key, OptionValue(value)) in self.options {
            let value =
                value.expand_env().map_err(|e| Failure::usage(format!("{origin}: option {key}: {}", e.chain())))?;
            values.push((key, value));
        }
        Ok(Located { origin, uri: base.with_values(values) })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::Args;

    fn flags(args: &[&str]) -> Flags {
        Args::try_parse_from(std::iter::once("eventer").chain(args.iter().copied())).unwrap().flags
    }

    fn with_file(yaml: &str, args: &[&str]) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eventer.yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = format!("--config={}", path.display());
        let mut all = vec![config.as_str()];
        all.extend_from_slice(args);
        Settings::resolve(&flags(&all), &Registry::with_builtins())
            .map_err(|f| f.message.replace(&path.display().to_string(), "F"))
    }

    #[test]
    fn flags_alone_get_defaults() {
        let s =
            Settings::resolve(&flags(&["--source=file:x.json", "--sink=stdout"]), &Registry::with_builtins()).unwrap();
        assert_eq!(s.healthz, "0.0.0.0:8084".parse().unwrap());
        assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
        assert!(s.leader.is_none() && s.checkpoint.is_none() && s.frequency.is_none());
        assert_eq!(s.sinks[0].origin.to_string(), "--sink=stdout");
    }

    #[test]
    fn file_and_flags_combine() {
        let yaml = r#"
source: kubernetes:https://10.0.0.1:6443?inClusterConfig=false
sinks:
  - stdout?level=Warning
  - uri: dingtalk:https://oapi.dingtalk.com/robot/send
    options:
      access_token: ${HOME}
      label: [a, b]
      at_all: true
      queue_size: 10
checkpoint: file:/tmp/cp.json
frequency: 10s
healthz: { port: 9000 }
leaderElection: { enabled: true, namespace: ops }
log: { format: json, verbosity: 1 }
"#;
        // An unset variable is an error naming it (never a value).
        let unset = yaml.replace("${HOME}", "${EVENTER_TEST_UNSET_VARIABLE}");
        let err = with_file(&unset, &[]).unwrap_err();
        assert_eq!(
            err,
            "--config=F: sinks[1]: option access_token: environment variable EVENTER_TEST_UNSET_VARIABLE is not set"
        );
        let home = std::env::var("HOME").unwrap();
        {
            let s = with_file(yaml, &["--frequency=2s", "--healthz-ip=127.0.0.1"]).unwrap();
            assert_eq!(s.source.uri.scheme(), "kubernetes");
            assert_eq!(s.sinks.len(), 2);
            let pairs = s.sinks[1].uri.pairs();
            assert!(pairs.contains(&("access_token".into(), Value::Text(home.clone()))));
            assert!(pairs.contains(&("label".into(), Value::List(vec!["a".into(), "b".into()]))));
            assert!(pairs.contains(&("at_all".into(), Value::Bool(true))));
            assert!(s.sinks[1].origin.to_string().ends_with("eventer.yaml: sinks[1]"));
            assert!(s.sinks[1].uri.to_string().contains("access_token=***"));
            assert_eq!(s.frequency, Some(Duration::from_secs(2)), "the flag wins");
            assert_eq!(s.healthz, "127.0.0.1:9000".parse().unwrap(), "each field combines on its own");
            assert_eq!(s.leader.as_ref().unwrap().lease_name, "eventer");
            assert_eq!(s.leader.as_ref().unwrap().namespace.as_deref(), Some("ops"));
            assert_eq!((s.log_format, s.verbosity), (LogFormat::Json, 1));
            // --sink replaces the file's sinks; --leader-elect=false turns election off.
            let s = with_file(yaml, &["--sink=stdout", "--leader-elect=false"]).unwrap();
            assert_eq!(s.sinks.len(), 1);
            assert!(s.leader.is_none());
        }
    }

    #[test]
    fn bad_files_name_the_problem() {
        let err = |yaml: &str| with_file(yaml, &[]).unwrap_err();
        let cases = [
            (
                "sinks: [stdout]\n",
                "--source: a source is required (e.g. --source=kubernetes:https://kubernetes.default)",
            ),
            (
                "source: file:x\nsink: [stdout]\n",
                "--config=F: sink: unknown field `sink`, expected one of `source`, `sinks`,",
            ),
            (
                "source: file:x\nsinks: [{uri: stdout, option: {}}]\n",
                "--config=F: sinks[0].option: unknown field `option`",
            ),
            (
                "source: file:x\nsinks: stdout\n",
                "--config=F: sinks: invalid type: string \"stdout\", expected a sequence",
            ),
            ("source: file:x\nsinks: [stdout]\nfrequency: soon\n", "--config=F: frequency: invalid duration `soon`"),
            (
                "source: file:x\nsinks: [{uri: stdout, options: {level: {a: [1]}}}]\n",
                "--config=F: sinks[0].options.level: an option value must be",
            ),
            ("source: file:x\nsinks: [\":x\"]\n", "--config=F: sinks[0]: invalid scheme ``"),
            ("source: [\n", "--config=F: "),
        ];
        for (yaml, want) in cases {
            let got = err(yaml);
            assert!(got.starts_with(want), "{yaml:?}: got {got:?}");
            assert!(!got.contains('\n'), "one line: {got:?}");
        }
        let missing =
            Settings::resolve(&flags(&["--config=/no/such.yaml"]), &Registry::with_builtins()).unwrap_err().message;
        assert!(missing.starts_with("--config=/no/such.yaml: cannot read: "), "{missing}");
    }
}
