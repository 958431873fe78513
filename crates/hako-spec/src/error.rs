use std::path::PathBuf;

/// Every way an input can be wrong. Each variant names the file or the JSON field at fault, because
/// callers (podman, containerd) show this text to the user verbatim.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Malformed JSON or a field of the wrong type; `field` is the JSON path (`process.user.uid`).
    #[error("{path}: invalid {field}: {message}")]
    Parse {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("config.json: {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("invalid id format: {0:?}")]
    InvalidId(String),
}

impl SpecError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
