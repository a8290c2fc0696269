//! `ccrun logs`: prints a detached container's log (kept by its monitor in the CRI
//! format, see `ccrun_monitor::logfile`), stdout lines to stdout and stderr lines to
//! stderr, optionally following it while the container runs.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use ccrun_monitor::logfile::{self, Entry, Follower, Stream};

use crate::cli::GlobalOpts;
use crate::containers::record::LOG_FILE;
use crate::containers::{ContainerStore, Status};

/// Flags of `logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow the log output while the container runs
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end ("all" for every line)
    #[arg(short = 'n', long, default_value = "all", value_name = "N")]
    pub tail: String,
    /// Show lines since a time: RFC 3339 (2026-11-23T10:00:00Z), Unix seconds, or a
    /// duration ago (10m, 1h30m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Show lines before a time (same forms as --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Prefix every line with its timestamp
    #[arg(short, long)]
    pub timestamps: bool,
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// One log line: the entries of one stream up to a newline (or a trailing partial).
struct Line {
    time: SystemTime,
    stream: Stream,
    content: Vec<u8>,
    complete: bool,
}

/// Joins partial entries into lines, per stream.
#[derive(Default)]
struct Assembler {
    pending: [Option<Line>; 2],
}

impl Assembler {
    fn push(&mut self, entry: Entry, out: &mut Vec<Line>) {
        let slot = &mut self.pending[stream_index(entry.stream)];
        let line = slot.get_or_insert_with(|| Line {
            time: entry.time,
            stream: entry.stream,
            content: Vec::new(),
            complete: false,
        });
        line.content.extend_from_slice(&entry.content);
        if !entry.partial {
            line.complete = true;
            if let Some(line) = slot.take() {
                out.push(line);
            }
        }
    }

    /// Partial lines still waiting for their end (shown as they are at the end of a log).
    fn flush(&mut self, out: &mut Vec<Line>) {
        for slot in &mut self.pending {
            if let Some(line) = slot.take() {
                out.push(line);
            }
        }
        out.sort_by_key(|l| l.time);
    }
}

fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// Parses `--since`/`--until`.
pub fn parse_when(text: &str) -> Result<SystemTime> {
    if let Some(t) = logfile::parse_time(text) {
        return Ok(t);
    }
    if let Ok(secs) = text.parse::<f64>() {
        if secs >= 0.0 {
            return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
        }
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(SystemTime::now() - ago);
    }
    bail!("invalid time {text:?}: use RFC 3339, Unix seconds or a duration like 10m")
}

/// Filters and prints log lines.
struct Printer {
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    timestamps: bool,
}

impl Printer {
    fn wanted(&self, line: &Line) -> bool {
        self.since.is_none_or(|s| line.time >= s) && self.until.is_none_or(|u| line.time < u)
    }

    fn print(&self, lines: &[Line]) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        let mut stderr = std::io::stderr().lock();
        for line in lines.iter().filter(|l| self.wanted(l)) {
            let out: &mut dyn Write = match line.stream {
                Stream::Stdout => &mut stdout,
                Stream::Stderr => &mut stderr,
            };
            if self.timestamps {
                write!(out, "{} ", logfile::format_time(line.time))?;
            }
            out.write_all(&line.content)?;
            if line.complete {
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Ok(())
    }
}

/// Runs `logs`.
pub fn logs(global: &GlobalOpts, args: LogsArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let record = store.find(&args.container)?;
    if record.options.log_driver == crate::containers::options::LogDriver::None {
        bail!("configured logging driver does not support reading (container {} uses --log-driver none)", record.name);
    }
    let path = store.dir_of(&record.id).join(LOG_FILE);
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .with_context(|| format!("invalid --tail {n:?}: a number or \"all\""))?,
        ),
    };
    let printer = Printer {
        since: args.since.as_deref().map(parse_when).transpose()?,
        until: args.until.as_deref().map(parse_when).transpose()?,
        timestamps: args.timestamps,
    };
    let (mut follower, entries) =
        Follower::open(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut assembler = Assembler::default();
    let mut lines = Vec::new();
    for entry in entries {
        assembler.push(entry, &mut lines);
    }
    if !args.follow {
        assembler.flush(&mut lines);
    }
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    printer.print(&lines[skip..])?;
    if !args.follow {
        return Ok(0);
    }
    loop {
        // Checked before reading, so that the last read sees everything written.
        let running = store
            .get(&record.id)?
            .is_some_and(|r| r.status == Status::Running);
        let mut lines = Vec::new();
        for entry in follower
            .poll()
            .with_context(|| format!("reading {}", path.display()))?
        {
            assembler.push(entry, &mut lines);
        }
        if !running {
            assembler.flush(&mut lines);
        }
        printer.print(&lines)?;
        if !running {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
