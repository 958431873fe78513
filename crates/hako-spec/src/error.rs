use std::path::PathBuf;

/// Every way an input can be wrong. Each variant names the file or the JSON field at fault, because
/// callers (podman, containerd) show this text to the user verbatim.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("bundle {}: {}", path.display(), io_text(source))]
    Bundle {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {}", path.display(), io_text(source))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Malformed JSON or a field of the wrong type; `field` is the JSON path (`process.user.uid`).
    #[error("{}: invalid {field}: {message}", path.display())]
    Parse {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("config.json: {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// runc's wording, which callers and runc's bats tests match on.
    // runc's words, without the id: scripts match the whole text.
    #[error("invalid container ID format")]
    InvalidId(String),
    #[error("container id cannot be empty")]
    EmptyId,
    #[error("{}: malformed JSON: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
}

impl SpecError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// An io::Error worded the way Go (and so runc) words it: "no such file or directory", lowercase,
/// without Rust's " (os error N)". Callers match on these texts (podman maps them to exit codes).
pub fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}
