//! The monitor's command line.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::RawFd;
use std::path::PathBuf;

/// Printed with `--help` and after argument errors.
pub const USAGE: &str = "\
usage: ccrun-monitor --pid PID --log PATH [--log-max-size BYTES] --exit-file PATH
                     [--log-format cri|json] [--log-rotated N]
                     (--stdout FD --stderr FD | --tty FD) [--stdin FD]
                     [--attach FD] [--keep-fd FD]...
                     [--health-interval MS --health-cmd ARG [--health-cmd ARG]...]
                     [-- EXIT_COMMAND [ARG]...]

Watches PID, which must be a child of this process: copies what arrives on the
output fds into the CRI log at PATH (rotated to PATH.1 beyond BYTES; 0, the
default, never rotates; N rotated files are kept, default 1), then writes the
exit file and executes EXIT_COMMAND. --attach is a listening unix socket whose
clients get the output as it comes and the container's input (--stdin, the
write end of its stdin pipe, or the --tty master) on request (see
ccrun_monitor::attach). --keep-fd fds are only held open until the end. With
--health-interval, the command of the --health-cmd words runs every MS
milliseconds while the process lives (one at a time).";

/// Where the container's output arrives.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Read ends of the stdout and stderr pipes.
    Pipes {
        /// Logged as `stdout`.
        stdout: RawFd,
        /// Logged as `stderr`.
        stderr: RawFd,
    },
    /// Master side of the container's terminal; logged as `stdout`.
    Tty(RawFd),
}

/// A valid command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    /// The container's process.
    pub pid: libc::pid_t,
    /// The log file.
    pub log: PathBuf,
    /// Rotation size of the log; 0 for none.
    pub log_max_size: u64,
    /// How log entries are written.
    pub log_format: ccrun_monitor::logfile::Format,
    /// Rotated log files kept.
    pub log_rotated: u32,
    /// The healthcheck timer, if any.
    pub health: Option<crate::health::Timer>,
    /// Where the exit code and time go.
    pub exit_file: PathBuf,
    /// The container's output.
    pub output: Output,
    /// The write end of the container's stdin pipe, handed to attach clients.
    pub stdin: Option<RawFd>,
    /// A listening unix socket for attach clients.
    pub attach: Option<RawFd>,
    /// Fds held open until the end.
    pub keep_fds: Vec<RawFd>,
    /// Executed after the exit file is written; empty for none.
    pub exit_command: Vec<OsString>,
}

impl Args {
    /// Every fd named on the command line.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds = match self.output {
            Output::Pipes { stdout, stderr } => vec![stdout, stderr],
            Output::Tty(fd) => vec![fd],
        };
        fds.extend(self.stdin);
        fds.extend(self.attach);
        fds.extend(&self.keep_fds);
        fds
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Monitor a process.
    Run(Args),
    /// Print [`USAGE`].
    Help,
}

/// Parses the arguments after the program name; the error says what is wrong.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut pid = None;
    let mut log = None;
    let mut log_max_size = None;
    let mut log_format = None;
    let mut log_rotated = None;
    let mut health_interval = None;
    let mut health_cmd = Vec::new();
    let mut exit_file = None;
    let mut stdout = None;
    let mut stderr = None;
    let mut tty = None;
    let mut stdin = None;
    let mut attach = None;
    let mut keep_fds = Vec::new();
    let mut exit_command = None;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|arg| format!("unexpected argument {arg:?}"))?;
        // Both `--name value` and `--name=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(OsString::from(value))),
            _ => (arg.as_str(), None),
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "--" => {
                exit_command = Some(args.by_ref().collect::<Vec<_>>());
                break;
            }
            "--pid" | "--log" | "--log-max-size" | "--exit-file" | "--stdout" | "--stderr"
            | "--tty" | "--stdin" | "--attach" | "--keep-fd" | "--log-format" | "--log-rotated"
            | "--health-interval" | "--health-cmd" => {}
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{name} needs a value")),
        };
        match name {
            "--pid" => set(&mut pid, name, parse_pid(name, &value)?)?,
            "--log" => set(&mut log, name, PathBuf::from(value))?,
            "--log-max-size" => set(&mut log_max_size, name, parse_number(name, &value)?)?,
            "--exit-file" => set(&mut exit_file, name, PathBuf::from(value))?,
            "--stdout" => set(&mut stdout, name, parse_fd(name, &value)?)?,
            "--stderr" => set(&mut stderr, name, parse_fd(name, &value)?)?,
            "--tty" => set(&mut tty, name, parse_fd(name, &value)?)?,
            "--log-format" => set(&mut log_format, name, parse_log_format(&value)?)?,
            "--log-rotated" => set(&mut log_rotated, name, parse_number(name, &value)?)?,
            "--health-interval" => set(&mut health_interval, name, parse_number(name, &value)?)?,
            "--health-cmd" => health_cmd.push(value),
            "--stdin" => set(&mut stdin, name, parse_fd(name, &value)?)?,
            "--attach" => set(&mut attach, name, parse_fd(name, &value)?)?,
            _ => keep_fds.push(parse_fd(name, &value)?),
        }
    }

    let output = match (stdout, stderr, tty) {
        (Some(stdout), Some(stderr), None) => Output::Pipes { stdout, stderr },
        (None, None, Some(tty)) => Output::Tty(tty),
        (None, None, None) => return Err("--stdout and --stderr, or --tty, are required".into()),
        (_, _, Some(_)) => return Err("--tty cannot be combined with --stdout or --stderr".into()),
        _ => return Err("--stdout and --stderr must be given together".into()),
    };
    let exit_command = exit_command.unwrap_or_default();
    if exit_command
        .first()
        .is_some_and(|program| program.is_empty())
    {
        return Err("the exit command is empty".into());
    }
    let health = crate::health::Timer::from_args(health_interval, health_cmd)?;
    let args = Args {
        pid: pid.ok_or("--pid is required")?,
        log: log.ok_or("--log is required")?,
        log_max_size: log_max_size.unwrap_or(0),
        log_format: log_format.unwrap_or_default(),
        log_rotated: log_rotated.unwrap_or(ccrun_monitor::logfile::DEFAULT_ROTATED_FILES),
        health,
        exit_file: exit_file.ok_or("--exit-file is required")?,
        output,
        stdin,
        attach,
        keep_fds,
        exit_command,
    };
    if args.stdin.is_some() && matches!(args.output, Output::Tty(_)) {
        return Err("--stdin cannot be combined with --tty (the terminal is the input)".into());
    }
    let mut fds = args.fds();
    fds.sort_unstable();
    if let Some(twice) = fds.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("fd {} is named twice", twice[0]));
    }
    Ok(Command::Run(args))
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), String> {
    if slot.replace(value).is_some() {
        return Err(format!("{name} is given twice"));
    }
    Ok(())
}

fn parse_number<T: std::str::FromStr>(name: &str, value: &OsString) -> Result<T, String> {
    std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("{name}: {value:?} is not a valid number"))
}

fn parse_log_format(value: &OsString) -> Result<ccrun_monitor::logfile::Format, String> {
    match value.to_str() {
        Some("cri") => Ok(ccrun_monitor::logfile::Format::Cri),
        Some("json") => Ok(ccrun_monitor::logfile::Format::Json),
        _ => Err(format!("--log-format: {value:?} is not cri or json")),
    }
}

fn parse_pid(name: &str, value: &OsString) -> Result<libc::pid_t, String> {
    match parse_number(name, value)? {
        pid if pid > 0 => Ok(pid),
        _ => Err(format!("{name}: {value:?} is not a valid process id")),
    }
}

fn parse_fd(name: &str, value: &OsString) -> Result<RawFd, String> {
    match parse_number(name, value)? {
        // 0 to 2 are the monitor's own stdio (/dev/null).
        fd if fd >= 3 => Ok(fd),
        _ => Err(format!("{name}: {value:?} is not an fd above 2")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from))
    }

    const BASE: [&str; 6] = ["--pid", "42", "--log", "/l", "--exit-file", "/e"];

    fn with(extra: &[&str]) -> Result<Command, String> {
        parse_str(&[&BASE[..], extra].concat())
    }

    #[test]
    fn full_command_line() {
        let got = parse_str(&[
            "--pid",
            "42",
            "--log=/l",
            "--log-max-size",
            "1000",
            "--exit-file",
            "/e",
            "--stdout",
            "5",
            "--stderr=6",
            "--keep-fd",
            "7",
            "--keep-fd",
            "8",
            "--stdin",
            "9",
            "--attach=10",
            "--",
            "sh",
            "-c",
            "--pid",
        ]);
        let want = Args {
            pid: 42,
            log: "/l".into(),
            log_max_size: 1000,
            log_format: ccrun_monitor::logfile::Format::Cri,
            log_rotated: 1,
            health: None,
            exit_file: "/e".into(),
            output: Output::Pipes {
                stdout: 5,
                stderr: 6,
            },
            stdin: Some(9),
            attach: Some(10),
            keep_fds: vec![7, 8],
            exit_command: ["sh", "-c", "--pid"].map(OsString::from).to_vec(),
        };
        assert_eq!(got, Ok(Command::Run(want)));
    }

    #[test]
    fn tty_without_exit_command() {
        let Ok(Command::Run(args)) = with(&["--tty", "3"]) else {
            panic!("not parsed");
        };
        assert_eq!(args.output, Output::Tty(3));
        assert_eq!(args.log_max_size, 0);
        assert!(args.exit_command.is_empty());
        assert_eq!(args.fds(), [3]);
    }

    #[test]
    fn help() {
        assert_eq!(parse_str(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn bad_command_lines() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "--stdout and --stderr, or --tty, are required"),
            (&["--stdout", "3"], "must be given together"),
            (
                &["--stdout", "3", "--stderr", "4", "--tty", "5"],
                "cannot be combined",
            ),
            (&["--tty", "2"], "not an fd above 2"),
            (&["--tty", "x"], "not a valid number"),
            (&["--tty", "3", "--keep-fd", "3"], "fd 3 is named twice"),
            (&["--tty", "3", "--attach", "3"], "fd 3 is named twice"),
            (
                &["--tty", "3", "--stdin", "4"],
                "cannot be combined with --tty",
            ),
            (&["--tty", "3", "--pid", "1"], "--pid is given twice"),
            (
                &["--tty", "3", "--log-max-size", "-1"],
                "not a valid number",
            ),
            (&["--tty", "3", "extra"], "unexpected argument \"extra\""),
            (&["--tty", "3", "--bogus=1"], "unexpected argument"),
            (&["--tty", "3", "--", ""], "exit command is empty"),
            (&["--tty"], "--tty needs a value"),
            (&["--tty", "3", "--log-format", "xml"], "not cri or json"),
            (&["--tty", "3", "--health-interval", "10"], "--health-cmd"),
            (&["--tty", "3", "--health-cmd", "x"], "--health-interval"),
            (
                &["--tty", "3", "--health-interval", "0", "--health-cmd", "x"],
                "above 0",
            ),
        ];
        for (extra, message) in cases {
            let err = with(extra).unwrap_err();
            assert!(err.contains(message), "{extra:?}: {err}");
        }
        let err = parse_str(&["--tty", "3", "--log", "/l", "--exit-file", "/e"]).unwrap_err();
        assert_eq!(err, "--pid is required");
        let err = parse_str(&["--pid", "0"]).unwrap_err();
        assert!(err.contains("not a valid process id"), "{err}");
    }
}
