//! Manifest media types, parsing, consistency checks and platform choice from an index.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Docker's image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A gzip-compressed layer in a Docker manifest.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// An uncompressed layer in a Docker manifest.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// A gzip-compressed OCI layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A zstd-compressed OCI layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// An uncompressed OCI layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// The two kinds of single-image manifest, with the media types that go in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Docker's image manifest, schema 2.
    Docker,
    /// The OCI image manifest.
    Oci,
}

/// How a layer blob is compressed, as its media type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// Not at all.
    None,
}

impl Schema {
    /// The schema of a stored manifest: its `mediaType`, else its config's (OCI
    /// allows leaving the manifest's out).
    pub fn of(manifest: &serde_json::Value) -> Schema {
        let media_type = manifest["mediaType"]
            .as_str()
            .or_else(|| manifest["config"]["mediaType"].as_str());
        match media_type {
            Some(DOCKER_MANIFEST | DOCKER_CONFIG) => Schema::Docker,
            _ => Schema::Oci,
        }
    }

    /// The manifest's media type.
    pub fn manifest_type(self) -> &'static str {
        match self {
            Schema::Docker => DOCKER_MANIFEST,
            Schema::Oci => OCI_MANIFEST,
        }
    }

    /// The config's media type.
    pub fn config_type(self) -> &'static str {
        match self {
            Schema::Docker => DOCKER_CONFIG,
            Schema::Oci => OCI_CONFIG,
        }
    }

    /// The media type of a layer compressed so, if this schema has one.
    pub fn layer_type(self, compression: LayerCompression) -> Option<&'static str> {
        match (self, compression) {
            (Schema::Docker, LayerCompression::Gzip) => Some(DOCKER_LAYER_GZIP),
            (Schema::Docker, LayerCompression::None) => Some(DOCKER_LAYER),
            (Schema::Docker, LayerCompression::Zstd) => None,
            (Schema::Oci, LayerCompression::Gzip) => Some(OCI_LAYER_GZIP),
            (Schema::Oci, LayerCompression::Zstd) => Some(OCI_LAYER_ZSTD),
            (Schema::Oci, LayerCompression::None) => Some(OCI_LAYER),
        }
    }
}

/// The compression a layer media type names, if it is one we know.
pub fn layer_compression(media_type: &str) -> Option<LayerCompression> {
    match media_type {
        DOCKER_LAYER_GZIP | OCI_LAYER_GZIP => Some(LayerCompression::Gzip),
        OCI_LAYER_ZSTD => Some(LayerCompression::Zstd),
        DOCKER_LAYER | OCI_LAYER => Some(LayerCompression::None),
        _ => None,
    }
}

/// The `Accept` header for manifest requests: every type we can pull.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A manifest as fetched: either one image or an index of per-platform images.
#[derive(Debug)]
pub enum Fetched {
    /// A single-platform image manifest.
    Image(Box<ImageManifest>),
    /// A multi-platform index or manifest list.
    Index(Box<ImageIndex>),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
}

/// Parses manifest bytes, checking the body's `mediaType` against the HTTP
/// `Content-Type` so a registry cannot make us read one kind as another.
pub fn parse(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Fetched> {
    let invalid = |message: String| Error::InvalidContent {
        what: what.to_string(),
        message,
    };
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if probe.schema_version != Some(2) {
        return Err(invalid(format!(
            "schemaVersion {:?} is not supported (only 2)",
            probe.schema_version
        )));
    }
    // Only a manifest media type in Content-Type is a claim to check; registries
    // may send generic types such as application/json for bodies that name their own.
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| {
            [
                DOCKER_MANIFEST,
                DOCKER_MANIFEST_LIST,
                OCI_MANIFEST,
                OCI_INDEX,
            ]
            .contains(c)
        });
    let kind = match (probe.media_type.as_deref(), content_type) {
        (Some(m), Some(c)) if m != c => {
            return Err(invalid(format!(
                "mediaType {m} disagrees with Content-Type {c}"
            )))
        }
        (Some(m), _) => m.to_string(),
        (None, Some(c)) => c.to_string(),
        // OCI allows omitting mediaType; tell the kinds apart by their fields.
        (None, None) if probe.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) if probe.layers.is_some() => OCI_MANIFEST.to_string(),
        (None, None) => return Err(invalid("no mediaType".to_string())),
    };
    match kind.as_str() {
        DOCKER_MANIFEST | OCI_MANIFEST => {
            let m: ImageManifest =
                serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
            Ok(Fetched::Image(Box::new(m)))
        }
        DOCKER_MANIFEST_LIST | OCI_INDEX => {
            let i: ImageIndex =
                serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
            Ok(Fetched::Index(Box::new(i)))
        }
        other => Err(invalid(format!("unsupported media type {other}"))),
    }
}

/// Picks the entry of `index` for `wanted`, never an attestation or unknown/unknown entry.
pub fn choose_platform(index: &ImageIndex, wanted: &Platform, reference: &str) -> Result<Digest> {
    let mut available = Vec::new();
    for m in index.manifests() {
        if is_attestation(m) {
            continue;
        }
        let Some(p) = m.platform() else { continue };
        let os = p.os().to_string();
        let arch = p.architecture().to_string();
        let variant = p.variant().as_deref();
        available.push(match variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        });
        if wanted.matches(&os, &arch, variant) {
            return Digest::parse(m.digest().as_ref());
        }
    }
    Err(Error::NoMatchingPlatform {
        reference: reference.to_string(),
        wanted: wanted.to_string(),
        available: if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        },
    })
}

/// Attestation manifests (BuildKit's provenance/SBOM) ride along in indexes with
/// platform unknown/unknown; they are not runnable images.
fn is_attestation(d: &Descriptor) -> bool {
    let annotated = d
        .annotations()
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest");
    let unknown = d.platform().as_ref().is_some_and(|p| {
        p.os().to_string() == "unknown" || p.architecture().to_string() == "unknown"
    });
    annotated || unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn index() -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D3}","size":1,
              "platform":{{"os":"unknown","architecture":"unknown"}},
              "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}
            ]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn picks_platform_and_skips_attestations() {
        let Fetched::Index(i) = parse(&index(), Some(OCI_INDEX), "index").expect("parse") else {
            panic!("not an index")
        };
        let amd: Platform = "linux/amd64".parse().expect("platform");
        let arm: Platform = "linux/arm64".parse().expect("platform");
        let s390: Platform = "linux/s390x".parse().expect("platform");
        assert_eq!(choose_platform(&i, &amd, "x").expect("amd").to_string(), D1);
        assert_eq!(choose_platform(&i, &arm, "x").expect("arm").to_string(), D2);
        let err = choose_platform(&i, &s390, "x").expect_err("s390x");
        assert!(
            err.to_string().contains("linux/amd64, linux/arm64/v8"),
            "{err}"
        );
    }

    #[test]
    fn rejects_content_type_mismatch() {
        let err = parse(&index(), Some(DOCKER_MANIFEST), "index").expect_err("mismatch");
        assert!(err.to_string().contains("disagrees"), "{err}");
        assert!(parse(br#"{"schemaVersion":1}"#, None, "m").is_err());
    }
}
