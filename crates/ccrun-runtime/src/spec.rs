//! Loading a bundle's `config.json`. The runtime spec says a runtime MUST ignore
//! properties it does not know (newer spec versions and other runtimes' extensions add
//! them), so keys outside the spec model are ignored and reported at debug level, by
//! JSON path: `oci-spec`'s serde model drops them, and the loader finds them by
//! re-serializing the parsed [`Spec`] and comparing it with the input document. Fields
//! the model knows but ccrun does not honour are still refused (see
//! [`crate::unsupported`]), and so is an `ociVersion` that is not a SemVer 2.0 version.

use std::path::Path;

use oci_spec::runtime::{Process, Spec};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::unsupported;

/// Name of the runtime configuration inside a bundle.
pub const CONFIG_FILE: &str = "config.json";

/// A parsed document and the JSON paths of the keys in it that were ignored as
/// unknown.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    /// The document in the spec model.
    pub value: T,
    /// Paths (`linux.fooBar`, `mounts[2].opts`) of the keys the model does not know.
    pub ignored: Vec<String>,
}

/// Reads and checks `<bundle>/config.json`: it must parse, carry a valid `ociVersion`
/// and ask for nothing ccrun does not honour (see [`crate::unsupported`]); unknown
/// keys are ignored.
pub fn load(bundle: &Path) -> Result<Spec> {
    load_reporting(bundle).map(|p| p.value)
}

/// [`load`], also returning the keys that were ignored as unknown (for a caller that
/// shows them, as `ccrun-oci --debug` does).
pub fn load_reporting(bundle: &Path) -> Result<Parsed<Spec>> {
    let path = bundle.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
    let parsed = parse_reporting(&text)?;
    unsupported::check(&parsed.value)?;
    Ok(parsed)
}

/// Parses a `config.json` document, ignoring keys the spec model does not know.
pub fn parse(text: &str) -> Result<Spec> {
    parse_reporting(text).map(|p| p.value)
}

/// [`parse`], also returning the ignored keys.
pub fn parse_reporting(text: &str) -> Result<Parsed<Spec>> {
    let parsed: Parsed<Spec> = parse_checked(text, CONFIG_FILE)?;
    check_version(parsed.value.version())?;
    Ok(parsed)
}

/// Parses a process document (`runc exec --process FILE`) the same way, `name` naming
/// it in errors.
pub fn parse_process(text: &str, name: &str) -> Result<Process> {
    parse_checked(text, name).map(|p| p.value)
}

/// Refuses an `ociVersion` that is not a SemVer 2.0 version (`1.2.0`, `1.0.2-dev`),
/// which the runtime spec requires it to be.
pub fn check_version(version: &str) -> Result<()> {
    if is_semver(version) {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!(
            "{CONFIG_FILE}: ociVersion {version:?} is not a valid SemVer 2.0 version"
        )))
    }
}

/// `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]` as SemVer 2.0 defines them: numbers
/// without leading zeros, dot-separated identifiers of `[0-9A-Za-z-]`.
fn is_semver(v: &str) -> bool {
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let number = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
    };
    let identifiers = |s: &str, numeric_rule: bool| {
        s.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && (!numeric_rule || !id.bytes().all(|b| b.is_ascii_digit()) || number(id))
        })
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| number(p))
        && pre.is_none_or(|p| identifiers(p, true))
        && build.is_none_or(|b| identifiers(b, false))
}

fn parse_checked<T: DeserializeOwned + Serialize>(text: &str, name: &str) -> Result<Parsed<T>> {
    let input: Value =
        serde_json::from_str(text).map_err(|e| Error::InvalidSpec(format!("{name}: {e}")))?;
    let parsed: T = serde_json::from_value(input.clone())
        .map_err(|e| Error::InvalidSpec(format!("{name}: {e}")))?;
    let back = serde_json::to_value(&parsed)
        .map_err(|e| Error::InvalidSpec(format!("{name}: re-encoding: {e}")))?;
    let ignored = unknown_fields(&input, &back);
    for key in &ignored {
        tracing::debug!("{name}: ignoring unknown property {key}");
    }
    Ok(Parsed {
        value: parsed,
        ignored,
    })
}

/// JSON paths (`linux.fooBar`, `mounts[2].opts`) of keys in `input` that are missing
/// from `parsed`, its round trip through the spec model. A `null` value counts as
/// absent, as serde reads it.
pub fn unknown_fields(input: &Value, parsed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", input, parsed, &mut out);
    out
}

fn walk(path: &str, input: &Value, parsed: &Value, out: &mut Vec<String>) {
    match (input, parsed) {
        (Value::Object(inp), Value::Object(back)) => {
            for (key, value) in inp {
                if value.is_null() {
                    continue;
                }
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match back.get(key) {
                    Some(b) => walk(&sub, value, b, out),
                    None => out.push(sub),
                }
            }
        }
        // Elements keep their order through the model, except sets of plain strings
        // (capabilities), whose elements have no keys to lose.
        (Value::Array(inp), Value::Array(back)) => {
            for (i, (value, b)) in inp.iter().zip(back).enumerate() {
                walk(&format!("{path}[{i}]"), value, b, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                    "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"]}},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "mount"}], "sysctl": {"net.ipv4.ip_forward": "1"}},
        "annotations": {"a.b": "c"},
        "hostname": null
    }"#;

    #[test]
    fn known_document_parses() {
        parse(MINIMAL).expect("parse");
    }

    /// Every field the runtime spec (1.2) defines for Linux survives the round trip, and
    /// so do the configs runc and crun generate: nothing known is reported unknown.
    #[test]
    fn every_spec_field_is_known() {
        for doc in [
            include_str!("testdata/full-config.json"),
            include_str!("testdata/runc-spec.json"),
            include_str!("testdata/runc-spec-rootless.json"),
            include_str!("testdata/crun-spec.json"),
        ] {
            let input: Value = serde_json::from_str(doc).expect("json");
            let spec: Spec = serde_json::from_value(input.clone()).expect("spec");
            let back = serde_json::to_value(&spec).expect("encode");
            assert_eq!(unknown_fields(&input, &back), Vec::<String>::new());
            parse(doc).expect("parse");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_named_by_path() {
        let doc = MINIMAL
            .replace(r#""sysctl""#, r#""fooBar": 1, "sysctl""#)
            .replace(r#""source": "proc""#, r#""source": "proc", "opts": []"#)
            .replace(
                r#""hostname": null"#,
                r#""hostname": null, "unknown": {"a": 1}"#,
            );
        let parsed = parse_reporting(&doc).expect("unknown keys are ignored");
        assert_eq!(
            parsed.ignored,
            ["linux.fooBar", "mounts[0].opts", "unknown"]
        );
        assert_eq!(parsed.value, parse(MINIMAL).expect("minimal"));
    }

    #[test]
    fn process_documents_ignore_unknown_fields_too() {
        let doc = r#"{"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}"#;
        let plain = parse_process(doc, "process.json").expect("process");
        let extra = doc.replace(r#""cwd""#, r#""cwdd": 1, "cwd""#);
        assert_eq!(parse_process(&extra, "process.json").expect("extra"), plain);
    }

    #[test]
    fn known_fields_of_the_wrong_type_are_still_errors() {
        let doc = MINIMAL.replace(r#""uid": 0,"#, r#""uid": "zero","#);
        let err = parse(&doc).expect_err("wrong type").to_string();
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn oci_version_must_be_semver() {
        for good in ["1.2.0", "1.0.2-dev", "1.0.0-rc.1+build.5", "0.0.0"] {
            parse(&MINIMAL.replace("1.2.0", good)).expect(good);
        }
        for bad in [
            "", "1.2", "v1.2.0", "1.02.0", "1.2.0-", "1.2.0-01", "1.2.0+", "latest",
        ] {
            let err = parse(&MINIMAL.replace("1.2.0", bad))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("not a valid SemVer"), "{bad}: {err}");
        }
    }
}
