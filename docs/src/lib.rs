//! The guides in `docs/`, compiled: every Rust code block in them is a doctest
//! (`cargo test -p eventer-docs`), so an example that stops compiling, or asserting what
//! it says, fails the build instead of misleading a reader. Blocks in other languages are
//! not compiled; a block without a language is Rust to rustdoc, so plain text is marked
//! `text`.

macro_rules! guides {
    ($($name:ident = $file:literal),* $(,)?) => {
        /// The guides compiled below, by file name.
        #[cfg(test)]
        const GUIDES: &[&str] = &[$($file),*];

        $(
            #[cfg(doctest)]
            #[doc = include_str!(concat!("../", $file))]
            pub struct $name;
        )*
    };
}

guides! {
    Architecture = "architecture.md",
    DingTalk = "dingtalk.md",
    Elasticsearch = "elasticsearch.md",
    Kafka = "kafka.md",
    Lark = "lark.md",
    MigratingFromKubeEventer = "migrating-from-kube-eventer.md",
    NodeProblemDetector = "node-problem-detector.md",
    Reference = "reference.md",
    Slack = "slack.md",
    Sls = "sls.md",
    Troubleshooting = "troubleshooting.md",
    Webhook = "webhook.md",
    WeCom = "wecom.md",
    WritingASink = "writing-a-sink.md",
}

#[cfg(test)]
mod tests {
    /// A new guide's code is checked only once it is listed above.
    #[test]
    fn every_guide_is_compiled() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .expect("docs/ is readable")
            .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".md"))
            .collect();
        found.sort();
        assert_eq!(found, super::GUIDES);
    }
}
