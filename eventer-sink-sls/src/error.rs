//! The crate's error type, converted into [`eventer_core::Error`] at the sink boundary.

use eventer_core::ErrorKind;

/// What went wrong talking to SLS or the metadata service, or in the configuration.
///
/// Messages never contain an AccessKeyId, AccessKeySecret or STS token: transport errors are
/// stripped of their URL and server messages are scrubbed of the key id in use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlsError {
    /// An invalid or missing option.
    #[error("{0}")]
    Config(String),
    /// No source of credentials worked; says what was tried.
    #[error("no SLS credentials found; tried: {0}")]
    NoCredentials(String),
    /// The ECS metadata service failed or answered something unusable.
    #[error("ECS metadata service {address}: {message}")]
    Metadata {
        /// The metadata service address.
        address: String,
        /// What failed.
        message: String,
        /// The transport error, if any (URL removed).
        #[source]
        source: Option<reqwest::Error>,
    },
    /// STS failed to exchange RRSA's OIDC token for credentials.
    #[error("STS {endpoint}: {message}")]
    Sts {
        /// The STS endpoint.
        endpoint: String,
        /// What failed (STS's code and message, or why the token file cannot be read).
        message: String,
        /// The transport error, if any (URL removed).
        #[source]
        source: Option<reqwest::Error>,
    },
    /// ACK's add-on token file cannot be read or decrypted.
    #[error("ACK add-on token file {path}: {message}")]
    AddonToken {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// SLS answered with an error.
    #[error("{0}")]
    Server(Box<ServerError>),
    /// SLS could not be reached, or did not answer in time.
    #[error("cannot reach SLS at {endpoint}")]
    Transport {
        /// The endpoint address.
        endpoint: String,
        /// The transport error (URL removed).
        #[source]
        source: reqwest::Error,
    },
}

/// An error answer from SLS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "SLS project {project} logstore {log_store} answered HTTP {status} {code}: {message} (request id {request_id}){hint}"
)]
#[non_exhaustive]
pub struct ServerError {
    /// Project written to.
    pub project: String,
    /// Logstore written to.
    pub log_store: String,
    /// HTTP status.
    pub status: u16,
    /// SLS `errorCode`, e.g. `WriteQuotaExceed`.
    pub code: String,
    /// SLS `errorMessage`, scrubbed of credentials.
    pub message: String,
    /// `x-log-requestid`, for Alibaba Cloud support.
    pub request_id: String,
    /// What to check, for errors a person must fix (starts with `; `), else empty.
    pub hint: &'static str,
}

/// Whether a failed PutLogs may succeed when sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Transient: the pipeline retries with backoff.
    Later,
    /// The STS token was refused: refresh the credentials, then retry.
    AfterRefresh,
    /// Permanent: retrying the same request cannot help.
    Never,
}

impl SlsError {
    /// Classify per protocols.md B.8: throttling, server errors, clock skew and transport
    /// failures are transient; refused STS tokens need fresh credentials; the rest is permanent.
    pub(crate) fn retry(&self) -> Retry {
        match self {
            SlsError::Config(_) | SlsError::NoCredentials(_) => Retry::Never,
            // Credentials that cannot be had now may be had later (a token file being
            // rewritten, STS unreachable): the events wait rather than being rejected.
            SlsError::Metadata { .. } | SlsError::Sts { .. } | SlsError::AddonToken { .. } => Retry::Later,
            SlsError::Transport { .. } => Retry::Later,
            SlsError::Server(e) => match (e.status, e.code.as_str()) {
                (500..=599, _) | (403, "WriteQuotaExceed" | "ShardWriteQuotaExceed") => Retry::Later,
                (400, "RequestTimeExpired") | (_, "RequestTimeout" | "InternalServerError") => Retry::Later,
                (401, c) if is_credential_code(c) => Retry::AfterRefresh,
                _ => Retry::Never,
            },
        }
    }

    /// Whether SLS refused the request for what it carries (a log it finds invalid, a body
    /// too large), so that the request without the offending log would pass; rather than
    /// for who sent it or where it goes (credentials, project, logstore, headers), which
    /// are the same for every request. An unknown 400 code counts as content: isolating the
    /// offending log costs a few requests, assuming otherwise loses the whole request.
    pub(crate) fn about_content(&self) -> bool {
        let SlsError::Server(e) = self else { return false };
        match (e.status, e.code.as_str()) {
            (413, _) => true,
            (
                400,
                "InvalidHost" | "InvalidContentType" | "InvalidContentMD5" | "ParameterInvalid" | "InvalidRequestTime"
                | "RequestTimeExpired",
            ) => false,
            (400, _) => true,
            _ => false,
        }
    }

    /// Whether SLS refused the request as too large.
    pub(crate) fn too_large(&self) -> bool {
        matches!(self, SlsError::Server(e) if e.status == 413 || e.code == "PostBodyTooLarge")
    }

    fn kind(&self) -> ErrorKind {
        match self {
            // No credentials at all is a deployment to fix (set a key or attach a RAM role),
            // found at start: `eventer` exits with the usage code, as for a bad option.
            SlsError::Config(_) | SlsError::NoCredentials(_) => ErrorKind::Config,
            SlsError::Metadata { .. } | SlsError::Transport { .. } => ErrorKind::Unavailable,
            SlsError::Sts { .. } | SlsError::AddonToken { .. } => ErrorKind::Unavailable,
            SlsError::Server(e) => match (e.status, self.retry()) {
                (403, Retry::Later) => ErrorKind::RateLimited,
                (_, Retry::Later) => ErrorKind::Unavailable,
                (401 | 403, _) => ErrorKind::Unauthorized,
                _ => ErrorKind::Rejected,
            },
        }
    }
}

/// Codes the Python SDK answers by refreshing its credentials: a refused or expired token.
fn is_credential_code(code: &str) -> bool {
    code == "Unauthorized" || code.starts_with("InvalidAccessKeyId") || code.starts_with("SecurityToken")
}

impl From<SlsError> for eventer_core::Error {
    fn from(e: SlsError) -> Self {
        // A refused STS token reaches here only after a refresh did not help (or was not
        // possible): like a RAM policy denying the write, that needs a person.
        let temporary = e.retry() == Retry::Later;
        let err = eventer_core::Error::new(e.kind(), e.to_string());
        let err = match e {
            SlsError::Metadata { source: Some(source), .. }
            | SlsError::Sts { source: Some(source), .. }
            | SlsError::Transport { source, .. } => err.with_source(source),
            _ => err,
        };
        if temporary { err.temporary() } else { err.permanent() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16, code: &str) -> SlsError {
        SlsError::Server(Box::new(ServerError {
            project: "p".into(),
            log_store: "l".into(),
            status,
            code: code.into(),
            message: "m".into(),
            request_id: "r".into(),
            hint: "",
        }))
    }

    #[test]
    fn classification_follows_the_reference() {
        for (status, code) in [
            (503, "ServerBusy"),
            (500, "InternalServerError"),
            (502, ""),
            (403, "WriteQuotaExceed"),
            (403, "ShardWriteQuotaExceed"),
            (400, "RequestTimeExpired"),
        ] {
            assert_eq!(server(status, code).retry(), Retry::Later, "{status} {code}");
            assert!(eventer_core::Error::from(server(status, code)).is_temporary());
        }
        assert_eq!(server(401, "Unauthorized").retry(), Retry::AfterRefresh);
        assert_eq!(server(401, "SecurityTokenExpired").retry(), Retry::AfterRefresh);
        assert!(!eventer_core::Error::from(server(401, "Unauthorized")).is_temporary());
        for (status, code) in [
            (401, "SignatureNotMatch"),
            (404, "ProjectNotExist"),
            (404, "LogStoreNotExist"),
            (400, "PostBodyInvalid"),
            (400, "InvalidTimestamp"),
            (403, "ProjectForbidden"),
        ] {
            assert_eq!(server(status, code).retry(), Retry::Never, "{status} {code}");
            assert!(!eventer_core::Error::from(server(status, code)).is_temporary());
        }
        assert_eq!(eventer_core::Error::from(server(403, "WriteQuotaExceed")).kind(), ErrorKind::RateLimited);
        assert_eq!(eventer_core::Error::from(server(401, "SignatureNotMatch")).kind(), ErrorKind::Unauthorized);
        assert_eq!(eventer_core::Error::from(server(404, "LogStoreNotExist")).kind(), ErrorKind::Rejected);
        assert_eq!(eventer_core::Error::from(SlsError::Config("x".into())).kind(), ErrorKind::Config);
    }

    #[test]
    fn only_refusals_of_the_content_are_worth_splitting() {
        for (status, code) in [
            (400, "PostBodyInvalid"),
            (400, "InvalidTimestamp"),
            (400, "InvalidEncoding"),
            (400, "InvalidKey"),
            (400, "InvalidLogContent"),
            (400, "PostBodyTooLarge"),
            (413, "PostBodyTooLarge"),
            (413, "RequestEntityTooLarge"),
        ] {
            assert!(server(status, code).about_content(), "{status} {code}");
            assert_eq!(server(status, code).retry(), Retry::Never, "{status} {code}");
        }
        for (status, code) in [
            (401, "SignatureNotMatch"),
            (401, "Unauthorized"),
            (403, "ProjectForbidden"),
            (404, "ProjectNotExist"),
            (404, "LogStoreNotExist"),
            (400, "InvalidHost"),
            (400, "ParameterInvalid"),
            (400, "InvalidContentType"),
            (503, "ServerBusy"),
        ] {
            assert!(!server(status, code).about_content(), "{status} {code}");
        }
        assert!(!SlsError::Config("x".into()).about_content());
        assert!(server(413, "RequestEntityTooLarge").too_large() && server(400, "PostBodyTooLarge").too_large());
        assert!(!server(400, "InvalidKey").too_large());
    }
}
