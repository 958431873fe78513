//! runc-compatible logging: `--log FILE` (created or truncated first thing) in `text` (logrus
//! style) or `json` (one object per line). No threads, no buffering beyond a line.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    file: Option<File>,
    format: Format,
    min: Level,
}

static LOGGER: Mutex<Option<Logger>> = Mutex::new(None);

/// Sets the log destination. With no file, lines go to stderr.
pub fn init(path: Option<&Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(p)?,
        ),
        None => None,
    };
    *LOGGER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Logger {
        file,
        format,
        min: if debug { Level::Debug } else { Level::Info },
    });
    Ok(())
}

/// True when log lines land in a file (so errors must also be printed to stderr, like runc).
pub fn to_file() -> bool {
    LOGGER
        .lock()
        .map(|l| l.as_ref().is_some_and(|l| l.file.is_some()))
        .unwrap_or(false)
}

pub fn line(format: Format, level: Level, msg: &str, time: &str) -> String {
    match format {
        Format::Json => {
            serde_json::json!({"level": level.name(), "msg": msg, "time": time}).to_string()
        }
        Format::Text => format!(
            "time={:?} level={} msg={}",
            time,
            level.name(),
            serde_json::Value::String(msg.to_string())
        ),
    }
}

pub fn log(level: Level, msg: &str) {
    let mut guard = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    let (format, min) = guard
        .as_ref()
        .map(|l| (l.format, l.min))
        .unwrap_or((Format::Text, Level::Info));
    if level < min {
        return;
    }
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let text = line(format, level, msg, &time) + "\n";
    match guard.as_mut().and_then(|l| l.file.as_mut()) {
        Some(f) => {
            let _ = f.write_all(text.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}

/// Whether `--debug` is on (so callers can skip work whose only use is a debug line).
pub fn debug_enabled() -> bool {
    LOGGER
        .lock()
        .map(|l| l.as_ref().is_some_and(|l| l.min == Level::Debug))
        .unwrap_or(false)
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}
pub fn warn(msg: &str) {
    log(Level::Warning, msg)
}
pub fn error(msg: &str) {
    log(Level::Error, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_shape() {
        let l = line(
            Format::Json,
            Level::Error,
            "boom \"x\"",
            "2026-11-22T13:00:00Z",
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert_eq!(v["time"], "2026-11-22T13:00:00Z");
    }

    #[test]
    fn text_line_shape() {
        let l = line(Format::Text, Level::Warning, "a b", "T");
        assert_eq!(l, r#"time="T" level=warning msg="a b""#);
    }
}
