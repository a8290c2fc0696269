//! `inspect`, `container inspect`, `image inspect` and `volume inspect`: low-level
//! information on containers, images and volumes as a JSON array, or through a Go
//! template with `-f`.
//!
//! As in Docker, the objects found are printed and every name that was not found is
//! reported on stderr as `Error: No such object: NAME`, with exit status 1.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::GlobalOpts;
use crate::containers::details::ContainerDetails;
use crate::containers::ContainerStore;
use crate::template::Template;

/// What kind of object a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectType {
    /// A container
    Container,
    /// An image
    Image,
    /// A volume
    Volume,
}

/// Flags shared by every `inspect` command.
#[derive(Debug, clap::Args)]
pub struct InspectOpts {
    /// Format the output using a Go template, e.g. '{{.State.Status}}'
    #[arg(short, long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// Display total file sizes (SizeRw, SizeRootFs) for containers
    #[arg(short, long)]
    pub size: bool,
    /// Names or ids
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// Flags of the top-level `inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Only look for this kind of object
    #[arg(long = "type", value_enum, value_name = "container|image|volume")]
    pub kind: Option<ObjectType>,
    #[command(flatten)]
    pub opts: InspectOpts,
}

/// One object found.
#[derive(Serialize)]
#[serde(untagged)]
enum Inspected {
    Container(Box<ContainerDetails>),
    Image(super::image::InOrder),
    Volume(super::volume::VolumeDetails),
}

/// Runs `inspect`, looking for containers first, then images, then volumes, unless
/// `kind` says which.
pub fn inspect(global: &GlobalOpts, kind: Option<ObjectType>, opts: &InspectOpts) -> Result<i32> {
    // A bad template is reported before anything is looked up.
    parse_template(opts.format.as_deref())?;
    let root = global.store_root();
    let containers = match kind {
        None | Some(ObjectType::Container) => Some(ContainerStore::open(&root)?),
        _ => None,
    };
    let images = match kind {
        Some(ObjectType::Container | ObjectType::Volume) => None,
        _ => Some(
            ccrun_image::Store::open(&root)
                .with_context(|| format!("opening image store in {}", root.display()))?,
        ),
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &opts.names {
        if let Some(store) = &containers {
            if let Ok(record) = store.find(name) {
                let details = ContainerDetails::build(store, &record, opts.size)
                    .with_context(|| format!("inspecting container {name}"))?;
                found.push(Inspected::Container(Box::new(details)));
                continue;
            }
        }
        if let Some(store) = &images {
            match super::image::image_json(store, name) {
                Ok(Some(json)) => {
                    found.push(Inspected::Image(json));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    errors.push(format!("Error: {}", crate::exit::one_line(&e)));
                    continue;
                }
            }
        }
        if matches!(kind, None | Some(ObjectType::Volume)) {
            if let Some(details) = super::volume::volume_details(global, name)? {
                found.push(Inspected::Volume(details));
                continue;
            }
        }
        let what = match kind {
            None => "object",
            Some(ObjectType::Container) => "container",
            Some(ObjectType::Image) => "image",
            Some(ObjectType::Volume) => "volume",
        };
        errors.push(format!("Error: No such {what}: {name}"));
    }
    print_inspected(&found, opts.format.as_deref(), &errors)
}

fn parse_template(format: Option<&str>) -> Result<Option<Template>> {
    format
        .map(|f| Template::parse(&crate::template::docker_format(f).1))
        .transpose()
        .context("parsing --format")
}

/// Prints inspected objects as Docker does: a JSON array (fields in the order of
/// their types, as Docker's), or each object through the `--format` template, one
/// per line; then the `errors` (objects not found) on stderr, which make the exit
/// status 1.
pub fn print_inspected<T: Serialize>(
    found: &[T],
    format: Option<&str>,
    errors: &[String],
) -> Result<i32> {
    let text = match parse_template(format)? {
        Some(template) => {
            let mut text = String::new();
            for item in found {
                let value = serde_json::to_value(item).context("serialising")?;
                text.push_str(
                    &template
                        .render(&value)
                        .context("executing the --format template")?,
                );
                text.push('\n');
            }
            text
        }
        None => to_docker_json(&found)? + "\n",
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    for e in errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

/// Pretty JSON indented by four spaces, as Docker prints it.
fn to_docker_json(value: &impl Serialize) -> Result<String> {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    value.serialize(&mut ser).context("serialising")?;
    String::from_utf8(buf).context("serialising")
}
