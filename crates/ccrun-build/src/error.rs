//! The build's error type.

use std::path::PathBuf;

/// What can make a build fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Dockerfile does not parse: `Dockerfile:LINE:COL: message`.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The Dockerfile's name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// An instruction cannot be carried out: `Dockerfile:LINE: INSTRUCTION: message`.
    #[error("{file}:{line}: {instruction}: {message}")]
    Step {
        /// The Dockerfile's name.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The instruction, shortened.
        instruction: String,
        /// What is wrong.
        message: String,
    },
    /// A RUN step exited non-zero.
    #[error(
        "{file}:{line}: process \"{command}\" did not complete successfully: exit code: {code}"
    )]
    RunFailed {
        /// The Dockerfile's name.
        file: String,
        /// 1-based line of the RUN.
        line: usize,
        /// The command as run.
        command: String,
        /// Its exit code.
        code: i32,
    },
    /// The build context or options are unusable.
    #[error("{message}")]
    Context {
        /// What is wrong.
        message: String,
    },
    /// The container engine could not run a step or provide an image.
    #[error("{0}")]
    Engine(String),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ccrun_image::Error),
    /// A file operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The build's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what was being done, and where, to I/O errors.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            context,
            path: path.into(),
            source,
        })
    }
}
