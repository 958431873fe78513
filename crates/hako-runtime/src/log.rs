//! runc-compatible logging: `--log FILE` (created or truncated first thing) in `text` (logrus
//! style) or `json` (one object per line). No threads, no buffering beyond a line.
//!
//! The one place that formats log lines. `tracing` spans around create's phases (clone,
//! userns, cgroups, mounts, hooks, pivot, exec) and `tracing` events reach the same writer through
//! [`Layer`], installed only with `--debug`: without it no subscriber exists and every span is a
//! no-op, so a plain `run` pays nothing for them.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

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
    if debug {
        // Fails only when a subscriber is already set (a second init in tests): keep that one.
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Layer));
    }
    Ok(())
}

/// Whether phase timings may go to stderr. The init turns this off before its stdio becomes the
/// container's (a terminal, /dev/null): a timing line must not reach the container's output.
/// Lines for a `--log` file are unaffected.
static TIMINGS_TO_STDERR: AtomicBool = AtomicBool::new(true);

/// From here on, phase timings only go to a `--log` file (see `TIMINGS_TO_STDERR`).
pub fn timings_to_file_only() {
    TIMINGS_TO_STDERR.store(false, Ordering::Relaxed);
}

/// When a span was created, kept in its extensions until it closes.
struct Started(Instant);

/// The `tracing` layer: a span's duration as one debug line when it closes
/// (`phase mounts: 1.234ms`, always ms), an event as one line at its level, both written by [`log`].
pub struct Layer;

impl<S> tracing_subscriber::Layer<S> for Layer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        if let Some(s) = ctx.span(id) {
            s.extensions_mut().insert(Started(Instant::now()));
        }
    }

    fn on_close(&self, id: span::Id, ctx: LayerContext<'_, S>) {
        let Some(s) = ctx.span(&id) else { return };
        let Some(took) = s.extensions().get::<Started>().map(|t| t.0.elapsed()) else {
            return;
        };
        if TIMINGS_TO_STDERR.load(Ordering::Relaxed) || to_file() {
            // Always milliseconds, ASCII: log readers need not know Duration's µs.
            let ms = took.as_secs_f64() * 1000.0;
            log(Level::Debug, &format!("phase {}: {ms:.3}ms", s.name()));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
        struct Message(String);
        impl Visit for Message {
            fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
            fn record_str(&mut self, f: &Field, v: &str) {
                if f.name() == "message" {
                    self.0 = v.to_string();
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warning,
            tracing::Level::INFO => Level::Info,
            _ => Level::Debug,
        };
        log(level, &m.0);
    }
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
