//! The config.json `hako spec` writes: byte for byte what `runc spec` of runc 1.3.6 writes (tab
//! indents, runc's key order, `hostname: runc`, no trailing newline, no ambient capabilities),
//! so scripts that patch it (sed, jq, adding a namespace) behave the same with either tool.
//! Only `ociVersion` differs: runc writes the runtime-spec version it implements (1.2.1 for
//! runc 1.3), hako writes its own, [`crate::SPEC_VERSION`].

use serde_json::Value;

/// `runc spec` (1.3.6), captured verbatim; `@OCI_VERSION@` is [`crate::SPEC_VERSION`].
const DEFAULT: &str = include_str!("runc-spec.json");
/// `runc spec --rootless` (1.3.6), captured verbatim; `@UID@`/`@GID@` are the caller's euid and
/// egid, as runc fills them in.
const ROOTLESS: &str = include_str!("runc-spec-rootless.json");

/// The text `spec` writes. `rootless`: the caller's (euid, egid), mapped to root in a user
/// namespace (`spec --rootless`).
pub fn default_spec_text(rootless: Option<(u32, u32)>) -> String {
    match rootless {
        None => DEFAULT.to_string(),
        Some((uid, gid)) => ROOTLESS
            .replace("@UID@", &uid.to_string())
            .replace("@GID@", &gid.to_string()),
    }
    .replacen("@OCI_VERSION@", crate::SPEC_VERSION, 1)
}

/// [`default_spec_text`] as a JSON value.
pub fn default_spec(rootless: Option<(u32, u32)>) -> Value {
    serde_json::from_str(&default_spec_text(rootless)).expect("runc's spec is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        for rootless in [None, Some((1000, 1000))] {
            let text = default_spec_text(rootless);
            let (spec, unknown) = crate::bundle::parse_spec(&text).unwrap();
            assert!(unknown.is_empty(), "{unknown:?}");
            crate::validate::validate(&spec).unwrap();
        }
    }

    #[test]
    fn rootless_maps_the_caller() {
        let v = default_spec(Some((1000, 1001)));
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(v["linux"]["gidMappings"][0]["hostID"], 1001);
    }
}
