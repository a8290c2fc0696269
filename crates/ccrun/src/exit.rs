//! Docker's exit status conventions for ccrun's own failures: 125 for ccrun's errors,
//! 126 when the command cannot be invoked, 127 when it cannot be found.

use ccrun_runtime::Error as RuntimeError;

/// ccrun itself failed.
pub const ENGINE_ERROR: i32 = 125;
/// The command exists but cannot be invoked.
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;

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
