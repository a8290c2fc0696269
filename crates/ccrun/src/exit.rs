//! Docker's exit status conventions for ccrun's own failures: 125 for ccrun's errors,
//! 126 when the command cannot be invoked, 127 when it cannot be found.

use ccrun_runtime::Error as RuntimeError;

/// ccrun itself failed.
pub const ENGINE_ERROR: i32 = 125;
/// The command exists but cannot be invoked.
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

/// The status of a process killed by SIGPIPE (128 + 13), as the shell reports it.
pub const BROKEN_PIPE: i32 = 141;

/// Restores SIGPIPE's default action, so that writing to a reader that went away
/// (`ccrun ps | head -1`) ends ccrun silently, like `ls` or `cat`, instead of an
/// EPIPE error (Rust ignores SIGPIPE by default).
pub fn die_quietly_on_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL at start, before any thread
    // exists, has no memory-safety requirements.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether the error is a write to a closed pipe (stdout's reader went away).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A failure reported by another ccrun process (e.g. a monitor that could not start
/// the container), carrying the exit status it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Reported {
    /// The exit status for this failure (125, 126 or 127).
    pub code: i32,
    /// What went wrong, on one line.
    pub message: String,
}

/// The exit status for an error that ends ccrun.
pub fn code_for(err: &anyhow::Error) -> i32 {
    if let Some(reported) = err.downcast_ref::<Reported>() {
        return reported.code;
    }
    match err.downcast_ref::<RuntimeError>() {
        Some(RuntimeError::CommandNotFound(_)) => NOT_FOUND,
        Some(RuntimeError::NotExecutable(_)) => NOT_EXECUTABLE,
        _ => ENGINE_ERROR,
    }
}

/// The error and its causes on one line, without repeating a cause that the
/// message already contains.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}
