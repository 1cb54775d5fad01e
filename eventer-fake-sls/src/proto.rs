//! The fake's own decoding of SLS's `LogGroup` (written separately from the sink's, so that
//! an encoding bug in one is not mirrored in the other). `string` fields reject invalid UTF-8.

/// `Log.Content`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Content {
    /// Key.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `Log`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Log {
    /// `__time__`, Unix seconds.
    #[prost(uint32, required, tag = "1")]
    pub time: u32,
    /// Fields.
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<Content>,
    /// Nanoseconds part of the time.
    #[prost(fixed32, optional, tag = "4")]
    pub time_ns: Option<u32>,
}

impl Log {
    /// The value of `key`, if the log has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.contents.iter().find(|c| c.key == key).map(|c| c.value.as_str())
    }
}

/// `LogTag`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LogTag {
    /// Key.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `LogGroup`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LogGroup {
    /// Logs.
    #[prost(message, repeated, tag = "1")]
    pub logs: Vec<Log>,
    /// `Reserved` (Go: `Category`).
    #[prost(string, optional, tag = "2")]
    pub reserved: Option<String>,
    /// `__topic__`.
    #[prost(string, optional, tag = "3")]
    pub topic: Option<String>,
    /// `__source__`.
    #[prost(string, optional, tag = "4")]
    pub source: Option<String>,
    /// `MachineUUID`.
    #[prost(string, optional, tag = "5")]
    pub machine_uuid: Option<String>,
    /// Tags.
    #[prost(message, repeated, tag = "6")]
    pub log_tags: Vec<LogTag>,
}
