//! The exit file: how and when a container's process ended.
//!
//! The monitor writes it once the process has been reaped; the engine reads it
//! to update the container's state. Its content is one line,
//! `<code> <unix seconds>.<9-digit nanoseconds>\n`, for example
//! `137 1795428000.123456789\n`. The code is the exit status, or 128 plus the
//! number of the signal that killed the process.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Writes the exit file at `path` atomically: readers see either no file or the
/// complete one, and after a crash it is either absent or complete.
pub fn write(path: &Path, code: i32, finished: SystemTime) -> io::Result<()> {
    let since_epoch = finished
        .duration_since(UNIX_EPOCH)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "finish time before 1970"))?;
    let content = format!(
        "{code} {}.{:09}\n",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    );

    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "exit file path has no file name",
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // The temporary file must be in the same directory for rename to be atomic;
    // the pid keeps two writers from sharing it.
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let written = write_synced(&tmp, content.as_bytes()).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        // Best effort: the error that matters is the one being returned.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable.
    File::open(dir)?.sync_all()
}

fn write_synced(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// Reads the exit file at `path`: `None` if it does not exist (the process has
/// not ended, or its monitor died), an `InvalidData` error if it is malformed.
pub fn read(path: &Path) -> io::Result<Option<(i32, SystemTime)>> {
    let content = match fs::read_to_string(path) {
        Ok(content) => content,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    parse(&content).map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed exit file {}: {content:?}", path.display()),
        )
    })
}

fn parse(content: &str) -> Option<(i32, SystemTime)> {
    let (code, time) = content.strip_suffix('\n')?.split_once(' ')?;
    let code = code.parse().ok()?;
    let (secs, nanos) = time.split_once('.').unwrap_or((time, "0"));
    let secs: u64 = secs.parse().ok()?;
    if nanos.is_empty() || nanos.len() > 9 || !nanos.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = nanos.parse::<u32>().ok()? * 10u32.pow(9 - nanos.len() as u32);
    let finished = UNIX_EPOCH.checked_add(Duration::new(secs, nanos))?;
    Some((code, finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit");
        assert_eq!(read(&path).unwrap(), None);

        let finished = UNIX_EPOCH + Duration::new(1_795_428_000, 5);
        write(&path, 137, finished).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "137 1795428000.000000005\n"
        );
        assert_eq!(read(&path).unwrap(), Some((137, finished)));

        // Overwriting replaces it, and no temporary file is left behind.
        write(&path, 0, UNIX_EPOCH).unwrap();
        assert_eq!(read(&path).unwrap(), Some((0, UNIX_EPOCH)));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["exit"]);
    }

    #[test]
    fn malformed_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit");
        for bad in [
            "",
            "3\n",
            "x 1.0\n",
            "3 1.0",
            "3 1.\n",
            "3 1.1234567890\n",
            "3 -1.0\n",
        ] {
            fs::write(&path, bad).unwrap();
            let err = read(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
        fs::write(&path, "-1 12\n").unwrap();
        assert_eq!(
            read(&path).unwrap(),
            Some((-1, UNIX_EPOCH + Duration::from_secs(12)))
        );
    }

    #[test]
    fn a_time_before_1970_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit");
        let err = write(&path, 0, UNIX_EPOCH - Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(!path.exists());
    }
}
