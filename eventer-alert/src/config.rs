//! [`AlertConfig`]: how often a chat sink may speak.

use std::time::Duration;

use eventer_core::{Error, Result, uri::Options};
use serde::{Deserialize, Serialize};

/// The engine's timing: grouping, repeats and the message budget. The defaults suit a
/// service allowing 20 messages a minute (DingTalk, WeCom, Lark).
///
/// ```
/// use std::time::Duration;
/// use eventer_alert::AlertConfig;
/// use eventer_core::uri::ComponentUri;
/// let uri: ComponentUri = "chat:https://chat.example/hook?budget=10&repeat_interval=30m".parse()?;
/// let config = AlertConfig::from_options(&mut uri.options())?;
/// assert_eq!((config.budget, config.repeat_interval), (10, Duration::from_secs(1800)));
/// assert_eq!(config.group_wait, Duration::from_secs(1));
/// # Ok::<(), eventer_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AlertConfig {
    /// After the first alert arrives, wait this long for more to send with it. Default 1s.
    #[serde(with = "eventer_core::duration")]
    pub group_wait: Duration,
    /// Least time between two sends; alerts arriving sooner are held and sent together.
    /// Default 2s.
    #[serde(with = "eventer_core::duration")]
    pub group_interval: Duration,
    /// The same object and reason alerts again at most this often; repeats in between are
    /// counted into the next notification. 0 turns repeat collapsing off. Default 1h.
    #[serde(with = "eventer_core::duration")]
    pub repeat_interval: Duration,
    /// Messages allowed per `budget_window`, a little under the service's limit. Default 18.
    pub budget: u32,
    /// The rolling window of the budget. Default 1m.
    #[serde(with = "eventer_core::duration")]
    pub budget_window: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            group_wait: Duration::from_secs(1),
            group_interval: Duration::from_secs(2),
            repeat_interval: Duration::from_secs(3600),
            budget: 18,
            budget_window: Duration::from_secs(60),
        }
    }
}

impl AlertConfig {
    /// Allow `budget` messages per rolling `window`.
    #[must_use]
    pub fn budget(mut self, budget: u32, window: Duration) -> Self {
        self.budget = budget;
        self.budget_window = window;
        self
    }

    /// Set `group_wait`, `group_interval` and `repeat_interval`.
    #[must_use]
    pub fn timing(mut self, group_wait: Duration, group_interval: Duration, repeat_interval: Duration) -> Self {
        self.group_wait = group_wait;
        self.group_interval = group_interval;
        self.repeat_interval = repeat_interval;
        self
    }

    /// The defaults, changed by the options named by its fields (taken out of `options`;
    /// add `eventer_core::config::names::<AlertConfig>()` to a factory's options).
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn from_options(options: &mut Options) -> Result<Self> {
        Self::from_options_or(options, AlertConfig::default())
    }

    /// `defaults` (a service's own budget, say), changed by the options given, as
    /// [`AlertConfig::from_options`] changes the engine's defaults.
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn from_options_or(options: &mut Options, defaults: AlertConfig) -> Result<Self> {
        let given: Given = options.take()?;
        let config = AlertConfig {
            group_wait: given.group_wait.unwrap_or(defaults.group_wait),
            group_interval: given.group_interval.unwrap_or(defaults.group_interval),
            repeat_interval: given.repeat_interval.unwrap_or(defaults.repeat_interval),
            budget: given.budget.unwrap_or(defaults.budget),
            budget_window: given.budget_window.unwrap_or(defaults.budget_window),
        };
        config.validate()?;
        Ok(config)
    }

    /// Check what serde or the URI parser cannot.
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn validate(&self) -> Result<()> {
        if self.budget == 0 {
            return Err(Error::config("option budget: must be at least 1"));
        }
        if self.budget_window.is_zero() {
            return Err(Error::config("option budget_window: must be more than 0"));
        }
        Ok(())
    }
}

/// The options of [`AlertConfig`] that were given: the same names, none defaulted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Given {
    #[serde(default, with = "eventer_core::duration::option")]
    group_wait: Option<Duration>,
    #[serde(default, with = "eventer_core::duration::option")]
    group_interval: Option<Duration>,
    #[serde(default, with = "eventer_core::duration::option")]
    repeat_interval: Option<Duration>,
    budget: Option<u32>,
    #[serde(default, with = "eventer_core::duration::option")]
    budget_window: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use eventer_core::uri::ComponentUri;

    use super::*;

    #[test]
    fn options_and_errors() {
        let parse = |u: &str| {
            let uri: ComponentUri = u.parse().unwrap();
            AlertConfig::from_options(&mut uri.options())
        };
        assert_eq!(parse("chat:x").unwrap(), AlertConfig::default());
        let c = parse("chat:x?group_wait=20ms&group_interval=0s&budget_window=3s").unwrap();
        assert_eq!(
            c,
            AlertConfig::default()
                .timing(Duration::from_millis(20), Duration::ZERO, Duration::from_secs(3600))
                .budget(18, Duration::from_secs(3))
        );
        assert_eq!(parse("chat:x?budget=0").unwrap_err().to_string(), "option budget: must be at least 1");
        assert_eq!(
            parse("chat:x?budget_window=0s").unwrap_err().to_string(),
            "option budget_window: must be more than 0"
        );
        assert!(
            parse("chat:x?group_wait=soon").unwrap_err().to_string().starts_with("option group_wait: invalid duration")
        );
        // A service's own defaults, changed only where an option is given.
        let service = AlertConfig::default().budget(4, Duration::from_secs(3));
        let uri: ComponentUri = "chat:x?budget_window=5s".parse().unwrap();
        let c = AlertConfig::from_options_or(&mut uri.options(), service.clone()).unwrap();
        assert_eq!(c, service.budget(4, Duration::from_secs(5)));
        assert_eq!(eventer_core::config::names::<Given>(), eventer_core::config::names::<AlertConfig>());
        let json = serde_json::to_string(&AlertConfig::default()).unwrap();
        assert_eq!(serde_json::from_str::<AlertConfig>(&json).unwrap(), AlertConfig::default());
        assert_eq!(serde_json::from_str::<AlertConfig>(r#"{"budget":5}"#).unwrap().budget, 5);
    }
}
