//! `ccrun events` (and `system events`): the event log (see [`crate::events`]),
//! past events with `--since`/`--until`, then new ones as they are appended until
//! `--until` (or forever).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::cli::GlobalOpts;
use crate::events::{Event, EventLog, Filter};
use crate::formatted::Format;

/// How often a follower looks for new events.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Flags of `events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Show events since a time: RFC 3339, Unix seconds, or a duration ago (10m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stop at a time (same forms as --since); without it, new events are followed
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Filter (type=, event=, container=, image=, volume=, network=, label=); repeatable
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Output format: "json" or a Go template such as '{{.Type}} {{.Action}}'
    #[arg(long)]
    pub format: Option<String>,
}

/// The fields a `--format` template sees: the Go names of Docker's event message.
fn template_fields(event: &Event) -> serde_json::Value {
    serde_json::json!({
        "Status": event.action,
        "ID": event.actor.id,
        "From": event.actor.attributes.get("image").cloned().unwrap_or_default(),
        "Type": event.kind,
        "Action": event.action,
        "Actor": { "ID": event.actor.id, "Attributes": event.actor.attributes },
        "Scope": event.scope,
        "Time": event.time,
        "TimeNano": event.time_nano,
    })
}

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Runs `events`.
pub fn events(global: &GlobalOpts, args: EventsArgs) -> Result<i32> {
    let filter = Filter::parse(&args.filter)?;
    let format = args.format.as_deref().map(Format::parse).transpose()?;
    let since = args
        .since
        .as_deref()
        .map(super::logs::parse_when)
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(super::logs::parse_when)
        .transpose()?;
    let log = EventLog::new(&global.store_root());
    // As in Docker, past events are shown only when a time bound asks for them;
    // without --until (or with one still ahead) new events are followed.
    let replay = since.is_some() || until.is_some();
    let follow = until.is_none_or(|u| u > SystemTime::now());
    let (from, to) = (since.map(nanos), until.map(nanos));
    let wanted = |e: &Event| {
        from.is_none_or(|f| e.time_nano >= f)
            && to.is_none_or(|t| e.time_nano <= t)
            && filter.matches(e)
    };
    let mut out = std::io::stdout().lock();
    let mut print = |e: &Event| -> Result<bool> {
        let line = match &format {
            None => e.line(),
            Some(f) => f.line(&e.to_json(), &template_fields(e))?,
        };
        // A reader that went away (`| head`) ends the command quietly.
        Ok(writeln!(out, "{line}").and_then(|()| out.flush()).is_ok())
    };
    if !follow {
        for event in log.read_all()?.iter().filter(|e| wanted(e)) {
            if !print(event)? {
                break;
            }
        }
        return Ok(0);
    }
    // One reader from the start (or the end) of the log: no event is shown twice or
    // lost between the past and what follows.
    let mut follower = log.follow(replay)?;
    loop {
        for event in follower.poll()?.iter().filter(|e| wanted(e)) {
            if !print(event)? {
                return Ok(0);
            }
        }
        if until.is_some_and(|u| SystemTime::now() > u) {
            return Ok(0);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
