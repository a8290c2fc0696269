//! `ccrun image history IMAGE`: the steps that built an image, newest first, from its
//! config's `history`, each non-empty step with the size of its layer.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::cli::GlobalOpts;
use crate::format::{human_size, print_table, since};
use crate::formatted::Format;

/// Flags of `image history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human-readable form (--human=false for raw values)
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub human: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: "json" or a Go template ('{{.CreatedBy}}', 'table {{.Size}}')
    #[arg(long)]
    pub format: Option<String>,
    /// The image (name or id)
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// The fields of a `--format` template, with their column headers.
const FIELDS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

/// Runs `image history`.
pub fn history(global: &GlobalOpts, args: HistoryArgs) -> Result<i32> {
    let root = global.store_root();
    let store = ccrun_image::Store::open(&root)
        .with_context(|| format!("opening image store in {}", root.display()))?;
    let Some(image) = store.resolve(&args.image)? else {
        bail!("no such image: {}", args.image);
    };
    let id = image.record.id.to_string();
    let hex = id.strip_prefix("sha256:").unwrap_or(&id);
    let history = image.config.history().clone().unwrap_or_default();
    // Each step that made a layer owns the next layer directory, bottom up.
    let mut layers = image.layer_dirs.iter();
    let mut rows: Vec<Value> = Vec::new();
    for step in &history {
        let size = if step.empty_layer() == Some(true) {
            0
        } else {
            layers.next().map_or(0, |dir| ccrun_image::tree_size(dir))
        };
        let created = step.created().clone().unwrap_or_default();
        let created_by = step.created_by().clone().unwrap_or_default();
        let created_by = if args.no_trunc || created_by.chars().count() <= 45 {
            created_by
        } else {
            format!("{}…", created_by.chars().take(44).collect::<String>())
        };
        rows.push(json!({
            "ID": "<missing>",
            "CreatedSince": if args.human { since(&created) } else { created.clone() },
            "CreatedAt": created,
            "CreatedBy": created_by,
            "Size": if args.human { human_size(size) } else { size.to_string() },
            "Comment": step.comment().clone().unwrap_or_default(),
        }));
    }
    rows.reverse();
    // The newest step is the image itself, as in Docker.
    let shown_id = if args.no_trunc {
        id.clone()
    } else {
        hex[..12.min(hex.len())].to_string()
    };
    if let Some(top) = rows.first_mut() {
        top["ID"] = Value::String(shown_id.clone());
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        use std::io::Write;
        for row in &rows {
            writeln!(out, "{}", row["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    match args.format.as_deref() {
        None | Some("table") => {
            let mut table = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
                .map(String::from)
                .to_vec()];
            for row in &rows {
                table.push(
                    ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
                        .iter()
                        .map(|f| row[f].as_str().unwrap_or_default().to_string())
                        .collect(),
                );
            }
            print_table(&mut out, &table)?;
        }
        Some(format) => {
            let format = Format::parse(format)?;
            let rows: Vec<(Value, Value)> = rows.into_iter().map(|r| (r.clone(), r)).collect();
            format.print(&mut out, FIELDS, &rows)?;
        }
    }
    Ok(0)
}
