//! Loading a bundle's `config.json`. `oci-spec`'s serde model silently drops keys it
//! does not know, so a misspelt or newer field would be ignored; the loader re-serializes
//! the parsed [`Spec`] and compares it with the input document, and any key that did
//! not survive the round trip is reported with its JSON path.

use std::path::Path;

use oci_spec::runtime::{Process, Spec};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::unsupported;

/// Name of the runtime configuration inside a bundle.
pub const CONFIG_FILE: &str = "config.json";

/// Reads and checks `<bundle>/config.json`: it must parse, contain no field unknown
/// to ccrun, and ask for nothing ccrun does not honour (see [`crate::unsupported`]).
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
    let spec = parse(&text)?;
    unsupported::check(&spec)?;
    Ok(spec)
}

/// Parses a `config.json` document, rejecting fields that the spec model does not know.
pub fn parse(text: &str) -> Result<Spec> {
    parse_checked(text, CONFIG_FILE)
}

/// Parses a process document (`runc exec --process FILE`) the same way, `name` naming
/// it in errors.
pub fn parse_process(text: &str, name: &str) -> Result<Process> {
    parse_checked(text, name)
}

fn parse_checked<T: DeserializeOwned + Serialize>(text: &str, name: &str) -> Result<T> {
    let input: Value =
        serde_json::from_str(text).map_err(|e| Error::InvalidSpec(format!("{name}: {e}")))?;
    let parsed: T = serde_json::from_value(input.clone())
        .map_err(|e| Error::InvalidSpec(format!("{name}: {e}")))?;
    let back = serde_json::to_value(&parsed)
        .map_err(|e| Error::InvalidSpec(format!("{name}: re-encoding: {e}")))?;
    let unknown = unknown_fields(&input, &back);
    if !unknown.is_empty() {
        let list = unknown.join(", ");
        let noun = if unknown.len() == 1 {
            "field"
        } else {
            "fields"
        };
        return Err(Error::InvalidSpec(format!("{name}: unknown {noun} {list}")));
    }
    Ok(parsed)
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
    fn unknown_fields_are_named_by_path() {
        let doc = MINIMAL
            .replace(r#""sysctl""#, r#""fooBar": 1, "sysctl""#)
            .replace(r#""source": "proc""#, r#""source": "proc", "opts": []"#);
        let err = parse(&doc).expect_err("unknown").to_string();
        assert!(err.contains("linux.fooBar"), "{err}");
        assert!(err.contains("mounts[0].opts"), "{err}");
    }

    #[test]
    fn process_documents_are_checked_too() {
        let doc = r#"{"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}"#;
        parse_process(doc, "process.json").expect("process");
        let bad = doc.replace(r#""cwd""#, r#""cwdd": 1, "cwd""#);
        let err = parse_process(&bad, "process.json").expect_err("unknown");
        assert!(
            err.to_string()
                .ends_with("process.json: unknown field cwdd"),
            "{err}"
        );
    }

    #[test]
    fn unknown_top_level_and_nested_process_fields() {
        let doc = MINIMAL.replace(r#""cwd": "/""#, r#""cwd": "/", "user2": {}"#);
        let err = parse(&doc).expect_err("unknown").to_string();
        assert!(err.ends_with("unknown field process.user2"), "{err}");
        let doc = MINIMAL.replace(r#""uid": 0,"#, r#""uid": 0, "uidd": 1,"#);
        let err = parse(&doc).expect_err("unknown").to_string();
        assert!(err.contains("process.user.uidd"), "{err}");
    }
}
