//! Loading a bundle's config.json.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::{Result, SpecError};

/// A loaded and validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute bundle directory.
    pub dir: PathBuf,
    /// Absolute rootfs path (`root.path` resolved against the bundle).
    pub rootfs: PathBuf,
    pub spec: Spec,
    /// JSON paths of properties hako does not know; the spec says to ignore them, we log them.
    pub unknown_fields: Vec<String>,
    /// Capability names in `process.capabilities` that are no capability hako knows: left out,
    /// with a warning (runc 1.2+; runc 1.1 refused the config).
    pub unknown_capabilities: Vec<String>,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        Self::load_with(dir, true)
    }

    /// `unknown`: also collect the JSON paths of unknown properties (costs a slower parse; only
    /// worth it when they will be logged).
    pub fn load_with(dir: &Path, unknown: bool) -> Result<Bundle> {
        let dir = std::path::absolute(dir).map_err(|source| SpecError::Bundle {
            path: dir.to_path_buf(),
            source,
        })?;
        let meta = std::fs::metadata(&dir).map_err(|source| SpecError::Bundle {
            path: dir.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(SpecError::Bundle {
                path: dir,
                source: std::io::Error::from_raw_os_error(libc_enotdir()),
            });
        }
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).map_err(|source| SpecError::Read {
            path: config.clone(),
            source,
        })?;
        let (spec, unknown_fields, unknown_capabilities) =
            parse_config(&text, unknown).map_err(|(field, message)| match field.is_empty() {
                true => SpecError::Malformed {
                    path: config.clone(),
                    message,
                },
                false => SpecError::Parse {
                    path: config.clone(),
                    field,
                    message,
                },
            })?;
        let mut spec = spec;
        normalize(&mut spec);
        crate::validate::validate(&spec)?;
        let root = spec.root().as_ref().expect("validated").path();
        let rootfs = if root.is_absolute() {
            root.clone()
        } else {
            dir.join(root)
        };
        let rootfs = std::fs::canonicalize(&rootfs).map_err(|source| SpecError::Read {
            path: rootfs.clone(),
            source,
        })?;
        if !rootfs.is_dir() {
            return Err(SpecError::invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ));
        }
        Ok(Bundle {
            dir,
            rootfs,
            spec,
            unknown_fields,
            unknown_capabilities,
        })
    }
}

/// Spellings runc 1.3 accepts for what the rest of hako reads in one form: a namespace whose
/// `path` is empty is a new one (runc's configs treat "" as unset), and a relative masked or
/// read-only path is inside the rootfs, as if it began with `/` (runc and youki join it to the
/// rootfs; resolved with RESOLVE_IN_ROOT, `..` cannot leave it).
fn normalize(spec: &mut Spec) {
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let rooted = |paths: &Option<Vec<String>>| -> Option<Vec<String>> {
        let paths = paths.as_ref()?;
        paths.iter().any(|p| !p.starts_with('/')).then(|| {
            paths
                .iter()
                .map(|p| match p.starts_with('/') {
                    true => p.clone(),
                    false => format!("/{p}"),
                })
                .collect()
        })
    };
    if let Some(masked) = rooted(linux.masked_paths()) {
        linux.set_masked_paths(Some(masked));
    }
    if let Some(readonly) = rooted(linux.readonly_paths()) {
        linux.set_readonly_paths(Some(readonly));
    }
    if let Some(namespaces) = linux.namespaces_mut() {
        for ns in namespaces.iter_mut() {
            if ns.path().as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                ns.set_path(None);
            }
        }
    }
}

type Parsed = (Spec, Vec<String>, Vec<String>);

/// [`parse_spec_with`], and on a capability name oci-spec does not know, again without the
/// unknown names, which are returned third. Only that rare error pays for the second parse.
fn parse_config(text: &str, unknown: bool) -> std::result::Result<Parsed, (String, String)> {
    match parse_spec_with(text, unknown) {
        Err((field, message)) if field.starts_with("process.capabilities.") => {
            let mut value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| (String::new(), e.to_string()))?;
            let names = value
                .get_mut("process")
                .map(strip_unknown_capabilities)
                .unwrap_or_default();
            if names.is_empty() {
                return Err((field, message));
            }
            let (spec, fields) = parse_spec_with(&value.to_string(), unknown)?;
            Ok((spec, fields, names))
        }
        r => r.map(|(spec, fields)| (spec, fields, vec![])),
    }
}

/// Removes from a `process` object's capability sets every string that is not a capability name
/// oci-spec knows, and returns those names, sorted and once each (runc 1.2+ ignores them with a
/// warning, so a config written for a newer kernel still runs).
pub fn strip_unknown_capabilities(process: &mut serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    let Some(caps) = process
        .get_mut("capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return names;
    };
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        if let Some(list) = caps.get_mut(set).and_then(|l| l.as_array_mut()) {
            list.retain(|c| {
                let known = c.is_string()
                    && serde_json::from_value::<oci_spec::runtime::Capability>(c.clone()).is_ok();
                if !known {
                    if let Some(name) = c.as_str() {
                        names.push(name.to_string());
                    }
                }
                known || !c.is_string()
            });
        }
    }
    names.sort();
    names.dedup();
    names
}

const fn libc_enotdir() -> i32 {
    20 // ENOTDIR; hako-spec makes no syscalls and so does not link libc.
}

/// Loads and validates an `exec --process` file: one OCI `process` object. Errors name the field
/// as `process.<path>`, like config.json's. A missing `user` is uid 0, gid 0, as in runc (whose
/// `User` is a plain struct): callers such as runc's own tests leave it out.
pub fn load_process(path: &Path) -> Result<(oci_spec::runtime::Process, Vec<String>)> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let malformed = |e: serde_json::Error| SpecError::Malformed {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(malformed)?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("user")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    crate::attrs::crate_flag_names(&mut value);
    let unknown_capabilities = strip_unknown_capabilities(&mut value);
    let p: oci_spec::runtime::Process = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                SpecError::Malformed {
                    path: path.to_path_buf(),
                    message: inner.to_string(),
                }
            }
            _ => SpecError::Parse {
                path: path.to_path_buf(),
                field: match field.as_str() {
                    "." | "" => "process".to_string(),
                    f => format!("process.{f}"),
                },
                message: inner.to_string(),
            },
        }
    })?;
    crate::validate::validate_process(&p)?;
    Ok((p, unknown_capabilities))
}

/// Parses config.json text. On error returns `(json path, message)`, e.g.
/// `("process.user.uid", "invalid type: string \"x\", expected u32 at line 4 column 20")`.
pub fn parse_spec(text: &str) -> std::result::Result<(Spec, Vec<String>), (String, String)> {
    parse_spec_with(text, true)
}

/// `parse_spec`; without `unknown`, the common case (valid JSON) takes serde_json's plain path,
/// and only a failure is re-parsed for the field path of the error.
pub fn parse_spec_with(
    text: &str,
    unknown: bool,
) -> std::result::Result<(Spec, Vec<String>), (String, String)> {
    if !unknown {
        if let Ok(spec) = serde_json::from_str::<Spec>(text) {
            return Ok((spec, vec![]));
        }
    }
    let mut unknown = Vec::new();
    let mut json = serde_json::Deserializer::from_str(text);
    let mut record =
        |path: serde_ignored::Path<'_>| unknown.push(path.to_string().replace(".?", ""));
    let ignoring = serde_ignored::Deserializer::new(&mut json, &mut record);
    let spec: std::result::Result<Spec, (String, String)> =
        serde_path_to_error::deserialize(ignoring).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "process" && inner.to_string().starts_with("missing field `user`") {
                return (NO_USER.0.to_string(), NO_USER.1.to_string());
            }
            // A syntax error is not any field's fault: report it as malformed JSON (empty field).
            let field = match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    String::new()
                }
                _ if path == "." || path.is_empty() => "config".to_string(),
                _ => path,
            };
            // A value quoted in the message may hold a newline: the error stays one line.
            let message = with_runc_words(&field, inner.to_string()).replace('\n', "\\n");
            (field, message)
        });
    match spec {
        Ok(spec) => Ok((spec, unknown)),
        // A `process` without `user` is uid 0, gid 0 in runc (its `User` is a plain struct), as
        // for `exec --process` (load_process): add an empty one and parse again. Only on this
        // rare path, so the common config keeps its single parse.
        Err((field, message)) if field == NO_USER.0 && message == NO_USER.1 => {
            let mut value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| (String::new(), e.to_string()))?;
            if let Some(p) = value.get_mut("process").and_then(|p| p.as_object_mut()) {
                p.insert("user".into(), serde_json::Value::Object(Default::default()));
            }
            parse_spec_with(&value.to_string(), true)
        }
        // The runtime-spec's names of scheduler flags that oci-spec spells otherwise
        // (attrs::crate_flag_names), likewise only on this path.
        Err((field, message)) if field.starts_with("process.scheduler.flags") => {
            let mut value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| (String::new(), e.to_string()))?;
            let flags = value
                .get("process")
                .and_then(|p| p.pointer("/scheduler/flags"))
                .cloned();
            if let Some(p) = value.get_mut("process") {
                crate::attrs::crate_flag_names(p);
            }
            let renamed = value
                .get("process")
                .and_then(|p| p.pointer("/scheduler/flags"))
                .cloned();
            if renamed == flags {
                return Err((field, message));
            }
            parse_spec_with(&value.to_string(), true)
        }
        Err(e) => Err(e),
    }
}

/// The one error `parse_spec_with` repairs itself: `process` without `user`.
const NO_USER: (&str, &str) = ("process.user", "missing field `user`");

/// runc's words for a seccomp value it does not know ("string X is not a valid action for
/// seccomp"): scripts match them. The field and serde's list of valid values follow.
fn with_runc_words(field: &str, message: String) -> String {
    if !field.starts_with("linux.seccomp.") {
        return message;
    }
    let what = if field.ends_with("action") || field.ends_with("defaultAction") {
        "action"
    } else if field.contains(".architectures[") {
        "arch"
    } else if field.ends_with(".op") {
        "operator"
    } else {
        return message;
    };
    let Some(value) = message
        .strip_prefix("unknown variant `")
        .and_then(|r| r.split_once('`'))
        .map(|(v, _)| v.to_string())
    else {
        return message;
    };
    format!("string {value} is not a valid {what} for seccomp ({message})")
}

#[cfg(test)]
mod tests {
    use super::{parse_spec, parse_spec_with};

    #[test]
    fn seccomp_values_in_runcs_words() {
        let (field, msg) = parse_spec(
            r#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_BOGUS"}]}}}"#,
        )
        .unwrap_err();
        assert_eq!(field, "linux.seccomp.syscalls[0].action");
        assert!(
            msg.starts_with("string SCMP_ACT_BOGUS is not a valid action for seccomp"),
            "{msg}"
        );
        let (_, msg) = parse_spec(
            r#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_VAX"]}}}"#,
        )
        .unwrap_err();
        assert!(
            msg.starts_with("string SCMP_ARCH_VAX is not a valid arch for seccomp"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_capabilities_are_left_out() {
        let (spec, _, names) = super::parse_config(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_KILL","CAP_NEW"],"ambient":["CAP_NEW","CAP_OLD"]}}}"#,
            false,
        )
        .unwrap();
        assert_eq!(names, ["CAP_NEW", "CAP_OLD"]);
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 1);
        assert!(caps.ambient().as_ref().unwrap().is_empty());
        // Anything but a name is still the error it was.
        let (field, _) = super::parse_config(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{},"capabilities":{"bounding":[1]}}}"#,
            false,
        )
        .unwrap_err();
        assert_eq!(field, "process.capabilities.bounding[0]");
    }

    #[test]
    fn names_the_wrong_field() {
        let (field, msg) = parse_spec(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":"root","gid":0}}}"#,
        )
        .unwrap_err();
        assert_eq!(field, "process.user.uid");
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn collects_unknown_fields() {
        let (_, unknown) = parse_spec(
            r#"{"ociVersion":"1.0.2","frobnicate":1,"process":{"cwd":"/","user":{},"x":2}}"#,
        )
        .unwrap();
        assert_eq!(
            unknown,
            vec!["frobnicate".to_string(), "process.x".to_string()]
        );
    }

    #[test]
    fn process_without_user_is_root() {
        let (spec, _) = parse_spec_with(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"]}}"#,
            false,
        )
        .unwrap();
        let user = spec.process().as_ref().unwrap().user();
        assert_eq!((user.uid(), user.gid()), (0, 0));
    }

    #[test]
    fn scheduler_flags_by_the_specs_names() {
        let text = r#"{"ociVersion":"1.1.0","process":{"cwd":"/","user":{},"scheduler":
            {"policy":"SCHED_OTHER","flags":["SCHED_FLAG_RESET_ON_FORK","SCHED_FLAG_DL_OVERRUN",
            "SCHED_FLAG_KEEP_ALL_NOT"]}}}"#;
        // An unknown flag stays an error naming it.
        let (field, _) = parse_spec(text).unwrap_err();
        assert_eq!(field, "process.scheduler.flags[2]");
        let text = text.replace(",\n            \"SCHED_FLAG_KEEP_ALL_NOT\"", "");
        for unknown in [true, false] {
            let (spec, _) = parse_spec_with(&text, unknown).unwrap();
            let s = spec
                .process()
                .as_ref()
                .unwrap()
                .scheduler()
                .clone()
                .unwrap();
            assert_eq!(s.flags().as_ref().map(|f| f.len()), Some(2));
            // The record (written by the crate) reads back.
            let again = serde_json::to_string(&spec).unwrap();
            assert!(parse_spec_with(&again, false).is_ok(), "{again}");
        }
        let dir = std::env::temp_dir().join(format!("hako-spec-proc-{}", std::process::id()));
        std::fs::write(
            &dir,
            r#"{"cwd":"/","args":["sh"],"scheduler":{"policy":"SCHED_BATCH",
            "flags":["SCHED_FLAG_RESET_ON_FORK"]}}"#,
        )
        .unwrap();
        let p = super::load_process(&dir);
        let _ = std::fs::remove_file(&dir);
        assert!(p.unwrap().0.scheduler().is_some());
    }

    #[test]
    fn malformed_json() {
        let (field, msg) = parse_spec("{\"ociVersion\": ").unwrap_err();
        assert_eq!(field, "");
        assert!(msg.contains("EOF"), "{msg}");
    }
}
