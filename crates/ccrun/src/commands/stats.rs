//! `ccrun stats`: a live table of the resource usage of containers, refreshed every
//! second, or one reading with `--no-stream` (see [`crate::containers::stats`]).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::GlobalOpts;
use crate::containers::stats::{binary_size, Sampler, Usage};
use crate::containers::{ContainerStore, Record, Status};
use crate::format::human_size;
use crate::formatted::Format;

/// Between two readings (Docker's daemon samples as often).
const INTERVAL: Duration = Duration::from_secs(1);

/// Flags of `stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Print one reading and exit
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate ids
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format: "table", "json", a Go template ('{{.Name}} {{.CPUPerc}}') or
    /// "table TEMPLATE"
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (name, id or unique id prefix) [default: all running]
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Template fields with their column headers (Docker's names).
const FIELDS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

const DEFAULT_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

fn row(record: &Record, shown: &str, usage: &Usage, no_trunc: bool) -> Value {
    let s = &usage.sample;
    let running = record.status == Status::Running;
    let dash = |text: String| if running { text } else { "--".to_string() };
    json!({
        "Container": shown,
        "ID": if no_trunc { record.id.clone() } else { record.short_id().to_string() },
        "Name": record.name,
        "CPUPerc": dash(format!("{:.2}%", usage.cpu_percent)),
        "MemUsage": dash(format!("{} / {}", binary_size(s.memory), binary_size(s.memory_limit))),
        "MemPerc": dash(format!("{:.2}%", usage.memory_percent())),
        "NetIO": dash(format!("{} / {}", human_size(s.net.0), human_size(s.net.1))),
        "BlockIO": dash(format!("{} / {}", human_size(s.block.0), human_size(s.block.1))),
        "PIDs": dash(s.pids.to_string()),
    })
}

/// The containers to show this round: those named, else the running ones (all
/// with `-a`), as they are now.
fn targets(store: &ContainerStore, args: &StatsArgs) -> Result<Vec<(Record, String)>> {
    if args.containers.is_empty() {
        return Ok(store
            .list()?
            .into_iter()
            .filter(|r| args.all || r.status == Status::Running)
            .map(|r| {
                let shown = r.short_id().to_string();
                (r, shown)
            })
            .collect());
    }
    args.containers
        .iter()
        .map(|name| Ok((store.find(name)?, name.clone())))
        .collect()
}

/// Runs `stats`.
pub fn stats(global: &GlobalOpts, args: StatsArgs) -> Result<i32> {
    let format = Format::parse(match args.format.as_deref() {
        None | Some("table") => DEFAULT_TABLE,
        Some(other) => other,
    })?;
    let store = ContainerStore::open(&global.store_root())?;
    let mut sampler = Sampler::default();
    let live_screen = !args.no_stream && std::io::stdout().is_terminal();
    // The first reading only gives the CPU % a starting point.
    for (record, _) in targets(&store, &args)? {
        let _ = sampler.usage(global, &record);
    }
    loop {
        std::thread::sleep(INTERVAL);
        let mut rows = Vec::new();
        for (record, shown) in targets(&store, &args)? {
            let usage = match sampler.usage(global, &record) {
                Ok(usage) => usage,
                // It stopped between the listing and the reading.
                Err(_) if !args.containers.is_empty() => Usage::default(),
                Err(_) => continue,
            };
            let value = row(&record, &shown, &usage, args.no_trunc);
            rows.push((value.clone(), value));
        }
        let mut out = std::io::stdout().lock();
        if live_screen {
            // Clear the screen and go home, as docker stats does on a terminal.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        format.print(&mut out, FIELDS, &rows)?;
        if out.flush().is_err() || args.no_stream {
            return Ok(0);
        }
    }
}
