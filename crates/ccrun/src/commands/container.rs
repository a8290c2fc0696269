//! Container subcommands that work on records: `ps` and `rm`.

use std::io::Write;

use anyhow::{bail, Result};

use crate::cli::GlobalOpts;
use crate::containers::{cleanup, ContainerStore, Record, Status};
use crate::format::{human_duration, now_secs, parse_rfc3339, print_table, since};

/// Flags of `ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format: "table" or "json" (one object per line)
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// Flags of `rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Kill and remove a running container
    #[arg(short, long)]
    pub force: bool,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Docker's STATUS column.
pub fn status_text(r: &Record) -> String {
    let ago = |t: &Option<String>| {
        t.as_deref()
            .and_then(parse_rfc3339)
            .map(|s| human_duration(now_secs() - s))
    };
    match r.status {
        Status::Created => "Created".to_string(),
        Status::Running => format!(
            "Up {}",
            ago(&r.started_at).unwrap_or_else(|| "for a while".into())
        ),
        Status::Exited => {
            let code = r
                .exit_code
                .map_or_else(|| "unknown".to_string(), |c| c.to_string());
            match ago(&r.finished_at) {
                Some(t) => format!("Exited ({code}) {t} ago"),
                None => format!("Exited ({code})"),
            }
        }
        Status::Dead => "Dead".to_string(),
    }
}

fn command_text(r: &Record, no_trunc: bool) -> String {
    let full = r.command.join(" ");
    if no_trunc || full.chars().count() <= 20 {
        format!("\"{full}\"")
    } else {
        let cut: String = full.chars().take(19).collect();
        format!("\"{cut}…\"")
    }
}

/// Runs `ps`.
pub fn ps(global: &GlobalOpts, args: PsArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let records: Vec<Record> = store
        .list()?
        .into_iter()
        .filter(|r| args.all || r.status == Status::Running)
        .collect();
    let mut out = std::io::stdout().lock();
    let id = |r: &Record| {
        if args.no_trunc {
            r.id.clone()
        } else {
            r.short_id().to_string()
        }
    };
    if args.quiet {
        for r in &records {
            writeln!(out, "{}", id(r))?;
        }
        return Ok(0);
    }
    match args.format.as_str() {
        "json" => {
            for r in &records {
                let line = serde_json::json!({
                    "ID": r.id, "Names": r.name, "Image": r.image, "ImageID": r.image_id,
                    "Command": r.command.join(" "), "CreatedAt": r.created,
                    "State": r.status.as_str(), "Status": status_text(r), "ExitCode": r.exit_code,
                    "Pid": r.pid, "Labels": r.labels,
                });
                writeln!(out, "{line}")?;
            }
        }
        "table" => {
            let mut table = vec![[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ]
            .map(String::from)
            .to_vec()];
            for r in &records {
                table.push(vec![
                    id(r),
                    r.image.clone(),
                    command_text(r, args.no_trunc),
                    since(&r.created),
                    status_text(r),
                    String::new(),
                    r.name.clone(),
                ]);
            }
            print_table(&mut out, &table)?;
        }
        other => bail!("unknown --format {other:?}: use table or json"),
    }
    Ok(0)
}

/// Runs `rm`.
pub fn rm(global: &GlobalOpts, args: RmArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let mut failed = Vec::new();
    for name in &args.containers {
        let result = store
            .find(name)
            .and_then(|r| cleanup::remove(&store, &global.state_root(), &r, args.force));
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response: {}", crate::exit::one_line(&e));
                failed.push(name.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!("could not remove {}", failed.join(", "));
    }
    Ok(0)
}
