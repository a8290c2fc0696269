//! runc's logging (logrus): log lines (errors, and with `--debug` debug lines) go to
//! `--log FILE` in the chosen format, or to stderr when there is no log file. An error
//! is also written to stderr as its bare message when the lines go to a file, as runc
//! 1.1 does. conmon and containerd's shim read the file when a command fails and show
//! the `msg` of its error lines, and clients and test suites grep stderr for
//! `level=error`, so both shapes matter.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::cli::LogFormat;

/// One JSON log line, in the field order runc (logrus) writes.
#[derive(Serialize)]
struct Line<'a> {
    level: &'a str,
    msg: &'a str,
    time: &'a str,
}

/// Where log lines go.
#[derive(Debug)]
pub struct Logger {
    file: Option<std::fs::File>,
    format: LogFormat,
    debug: bool,
}

impl Logger {
    /// Opens `path` for appending; a file that cannot be opened is reported on stderr
    /// once and then left out, so the command still runs and still reports errors.
    pub fn open(path: Option<&Path>, format: LogFormat, debug: bool) -> Logger {
        let file = path.and_then(|p| {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!("ccrun-oci: opening log file {}: {e}", p.display());
                    None
                }
            }
        });
        Logger {
            file,
            format,
            debug,
        }
    }

    /// Logs an error: a log line (to the log file, else stderr) and, with a log file,
    /// the bare message on stderr, as runc does.
    pub fn error(&mut self, msg: &str) {
        if self.file.is_some() {
            eprintln!("{msg}");
        }
        self.write("error", msg);
    }

    /// Logs a debug line when `--debug` was given (to the log file, else stderr).
    pub fn debug(&mut self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    fn write(&mut self, level: &str, msg: &str) {
        let line = format_line(self.format, level, msg, &crate::now_rfc3339());
        // Nothing sensible is left to do when the log itself cannot be written.
        let _ = match self.file.as_mut() {
            Some(file) => file.write_all(line.as_bytes()),
            None => std::io::stderr().write_all(line.as_bytes()),
        };
    }
}

/// One log line, newline included.
fn format_line(format: LogFormat, level: &str, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            let line = Line { level, msg, time };
            let mut text = serde_json::to_string(&line).unwrap_or_default();
            text.push('\n');
            text
        }
        LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_runcs_shape() {
        let line = format_line(LogFormat::Json, "error", "a \"b\"", "T");
        assert_eq!(
            line,
            "{\"level\":\"error\",\"msg\":\"a \\\"b\\\"\",\"time\":\"T\"}\n"
        );
    }

    #[test]
    fn text_lines_quote_the_message() {
        let line = format_line(LogFormat::Text, "error", "no such", "T");
        assert_eq!(line, "time=\"T\" level=error msg=\"no such\"\n");
    }
}
