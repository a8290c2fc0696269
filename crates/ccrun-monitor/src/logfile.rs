//! The container log: CRI (Kubernetes, podman `k8s-file`) formatted lines.
//!
//! Each entry is one line:
//!
//! ```text
//! <RFC3339Nano UTC timestamp> <stdout|stderr> <P|F> <content>\n
//! 2026-11-23T10:00:00.123456789Z stdout F hello
//! ```
//!
//! `F` marks the end of a line of output: its newline is not stored, readers put
//! it back. `P` marks a piece of a line that continues in the next entry of the
//! same stream; readers add nothing after it.
//!
//! This module owns writing ([`LogWriter`], with size-based rotation to
//! `<path>.1`), reading ([`read_all`], [`parse_line`]) and following a log that is
//! being written ([`Follower`]), as well as the timestamp format
//! ([`format_time`], [`parse_time`]).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest content of one entry. A line without a newline is written as `P`
/// entries of this size so that the writer never holds more than this per
/// stream, and readers never meet huge lines.
pub const MAX_ENTRY_CONTENT: usize = 16 * 1024;

/// Which of the container's output streams an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output (also everything from a terminal).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The name used in the log: `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One parsed log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When the monitor received the data.
    pub time: SystemTime,
    /// The stream the data came from.
    pub stream: Stream,
    /// `true` for `P` (the line continues in the next entry of the stream),
    /// `false` for `F` (a newline followed `content` in the output).
    pub partial: bool,
    /// The data, without the newline of a full line.
    pub content: Vec<u8>,
}

/// The path rotation moves the log to: `<path>.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    numbered_path(path, 1)
}

/// `<path>.<n>`: the `n`th rotated file, `<path>.1` the most recent.
pub fn numbered_path(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// How entries are written: CRI lines (podman's `k8s-file`, the default) or
/// Docker's `json-file` lines (`{"log":"hi\n","stream":"stdout","time":"…"}`).
/// Readers take either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `<time> <stream> <P|F> <content>`.
    #[default]
    Cri,
    /// One JSON object per entry; a full line's `log` ends with `\n`.
    Json,
}

/// Rotated files [`LogWriter`] keeps by default: one, `<path>.1`.
pub const DEFAULT_ROTATED_FILES: u32 = 1;

/// Appends container output to a log file as CRI entries, rotating it by size.
///
/// Complete lines become `F` entries as soon as they arrive. The unfinished
/// last line of each stream is held back until its end arrives, until it reaches
/// [`MAX_ENTRY_CONTENT`] bytes (then it is written as a `P` entry), or until
/// [`LogWriter::finish`]. Dropping the writer without `finish` loses those tails.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    max_size: u64,
    /// How many rotated files are kept (`<path>.1` … `<path>.N`).
    rotated_files: u32,
    format: Format,
    /// `None` after a failed rotation or reopen; the next entry tries again.
    file: Option<File>,
    /// Bytes in `file`, tracked to decide on rotation without a stat per entry.
    size: u64,
    /// Unfinished last line per stream, indexed by [`Stream::index`].
    tails: [Vec<u8>; 2],
    /// Reused buffer holding the entry being written, so that it goes out in one `write`.
    entry: Vec<u8>,
}

impl LogWriter {
    /// Opens (creating it with mode 0640 if needed) the log at `path` for
    /// appending. Before an entry would make the file larger than `max_size`
    /// bytes, the file is renamed to `<path>.1` (replacing an older one) and a
    /// new file is started; `max_size` 0 means the log is never rotated.
    pub fn open(path: &Path, max_size: u64) -> io::Result<LogWriter> {
        LogWriter::open_with(path, max_size, Format::Cri, DEFAULT_ROTATED_FILES)
    }

    /// [`LogWriter::open`] writing `format`, and keeping `rotated_files` rotated
    /// files (`<path>.1` the newest; 0 keeps none: the log starts afresh).
    pub fn open_with(
        path: &Path,
        max_size: u64,
        format: Format,
        rotated_files: u32,
    ) -> io::Result<LogWriter> {
        let file = open_for_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            max_size,
            rotated_files,
            format,
            file: Some(file),
            size,
            tails: [Vec::new(), Vec::new()],
            entry: Vec::new(),
        })
    }

    /// Logs `data` that just arrived on `stream`, timestamped now.
    ///
    /// All of `data` is processed even when writing an entry fails: entries that
    /// could not be written are dropped and the first error is returned, so the
    /// caller can keep going (and keep the container's pipes flowing) when the
    /// disk is full.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let stamp = format_time(SystemTime::now());
        let mut tail = std::mem::take(&mut self.tails[stream.index()]);
        let mut result = Ok(());
        for (i, piece) in data.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                // A newline ended the line collected so far.
                let r = self.emit(&stamp, stream, false, &tail);
                keep_first_error(&mut result, r);
                tail.clear();
            }
            self.append(&stamp, stream, &mut tail, piece, &mut result);
        }
        self.tails[stream.index()] = tail;
        result
    }

    /// Writes the held-back unfinished lines of both streams as `P` entries;
    /// used when the container is gone and no more output will come.
    pub fn finish(&mut self) -> io::Result<()> {
        let stamp = format_time(SystemTime::now());
        let mut result = Ok(());
        for stream in [Stream::Stdout, Stream::Stderr] {
            let tail = std::mem::take(&mut self.tails[stream.index()]);
            if !tail.is_empty() {
                let r = self.emit(&stamp, stream, true, &tail);
                keep_first_error(&mut result, r);
            }
        }
        result
    }

    /// Adds `piece` (which has no newline) to `tail`, writing `P` entries
    /// whenever `tail` fills up to [`MAX_ENTRY_CONTENT`].
    fn append(
        &mut self,
        stamp: &str,
        stream: Stream,
        tail: &mut Vec<u8>,
        mut piece: &[u8],
        result: &mut io::Result<()>,
    ) {
        loop {
            let room = MAX_ENTRY_CONTENT - tail.len();
            if piece.len() < room {
                tail.extend_from_slice(piece);
                return;
            }
            let (now, later) = piece.split_at(room);
            tail.extend_from_slice(now);
            let r = self.emit(stamp, stream, true, tail);
            keep_first_error(result, r);
            tail.clear();
            piece = later;
        }
    }

    /// Writes one entry with a single `write` call, rotating first if needed.
    fn emit(
        &mut self,
        stamp: &str,
        stream: Stream,
        partial: bool,
        content: &[u8],
    ) -> io::Result<()> {
        self.entry.clear();
        match self.format {
            Format::Cri => {
                self.entry.extend_from_slice(stamp.as_bytes());
                self.entry.push(b' ');
                self.entry.extend_from_slice(stream.as_str().as_bytes());
                self.entry
                    .extend_from_slice(if partial { b" P " } else { b" F " });
                self.entry.extend_from_slice(content);
            }
            Format::Json => json::entry(&mut self.entry, stamp, stream, partial, content),
        }
        self.entry.push(b'\n');
        let len = self.entry.len() as u64;

        // An entry larger than max_size still goes into a fresh file: rotating
        // an empty file would gain nothing.
        if self.max_size > 0 && self.size > 0 && self.size + len > self.max_size {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = open_for_append(&self.path)?;
                self.size = file.metadata()?.len();
                self.file.insert(file)
            }
        };
        let written = loop {
            match file.write(&self.entry) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if written == self.entry.len() {
            self.size += len;
            return Ok(());
        }
        // A short write (the disk filled up): cut the half entry off again so
        // readers never see it. If even that fails, at least keep `size` right.
        if file.set_len(self.size).is_err() {
            self.size += written as u64;
        }
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to the log file",
        ))
    }

    /// Moves the log to `<path>.1` (older ones one number up, the oldest
    /// dropped) and starts a new one.
    fn rotate(&mut self) -> io::Result<()> {
        // Close first: if the rename fails, the next entry reopens the same
        // (still too big) file and tries rotating again.
        self.file = None;
        let moved = if self.rotated_files == 0 {
            fs::remove_file(&self.path)
        } else {
            for n in (1..self.rotated_files).rev() {
                let from = numbered_path(&self.path, n);
                match fs::rename(&from, numbered_path(&self.path, n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            fs::rename(&self.path, rotated_path(&self.path))
        };
        match moved {
            Ok(()) => {}
            // Someone removed the log: there is nothing to move away.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = open_for_append(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }
}

fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

fn keep_first_error(result: &mut io::Result<()>, new: io::Result<()>) {
    if result.is_ok() {
        *result = new;
    }
}

/// Parses one log line (with or without its trailing newline); `None` if it is
/// not a valid entry.
pub fn parse_line(line: &[u8]) -> Option<Entry> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.first() == Some(&b'{') {
        return json::parse(line);
    }
    let mut fields = line.splitn(4, |&b| b == b' ');
    let time = parse_time(std::str::from_utf8(fields.next()?).ok()?)?;
    let stream = match fields.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match fields.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    // An empty line may have lost the space before its (empty) content.
    let content = fields.next().unwrap_or_default().to_vec();
    Some(Entry {
        time,
        stream,
        partial,
        content,
    })
}

/// Parses every complete line of `data` into `out`, skipping invalid ones, and
/// returns how many bytes that consumed (everything up to the last newline).
fn parse_lines(data: &[u8], out: &mut Vec<Entry>) -> usize {
    let Some(last) = data.iter().rposition(|&b| b == b'\n') else {
        return 0;
    };
    out.extend(data[..last].split(|&b| b == b'\n').filter_map(parse_line));
    last + 1
}

/// Reads the whole log: `<path>.1` (if present) and then `path`. Missing files
/// count as empty; an unfinished last line is left out.
pub fn read_all(path: &Path) -> io::Result<Vec<Entry>> {
    Follower::open(path).map(|(_, entries)| entries)
}

/// Identifies a file independently of its name, to notice rotation.
type FileId = (u64, u64);

fn file_id(meta: &fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// Follows a log as it is written (`logs -f`), across rotations.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    rotated: PathBuf,
    /// The file being followed; `None` until the log exists.
    file: Option<File>,
    /// The last file read from (followed, or read whole as `<path>.1`).
    id: Option<FileId>,
    /// Read bytes after the last complete line.
    pending: Vec<u8>,
}

impl Follower {
    /// Reads the whole log like [`read_all`] and returns a follower positioned
    /// right after what it read, so that nothing is lost or repeated between
    /// the two.
    pub fn open(path: &Path) -> io::Result<(Follower, Vec<Entry>)> {
        let mut follower = Follower {
            path: path.to_path_buf(),
            rotated: rotated_path(path),
            file: None,
            id: None,
            pending: Vec::new(),
        };
        let mut entries = Vec::new();
        // Open the current file before reading the rotated one: if a rotation
        // happens in between, `<path>.1` is the very file we opened, and it is
        // read once, through our handle, instead of twice.
        match File::open(path) {
            Ok(file) => {
                follower.id = Some(file_id(&file.metadata()?));
                follower.file = Some(file);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Older rotated files (`--log-opt max-file` above 2), oldest first.
        let mut older = Vec::new();
        for n in 2.. {
            match open_if_exists(&numbered_path(path, n))? {
                Some(file) => older.push(file),
                None => break,
            }
        }
        for file in older.into_iter().rev() {
            read_whole(file, &mut entries)?;
        }
        if let Some(old) = open_if_exists(&follower.rotated)? {
            let id = file_id(&old.metadata()?);
            if follower.id != Some(id) {
                read_whole(old, &mut entries)?;
                if follower.file.is_none() {
                    follower.id = Some(id);
                }
            }
        }
        entries.extend(follower.poll()?);
        Ok((follower, entries))
    }

    /// Returns the entries completed since the last call (or since
    /// [`Follower::open`]). A line still being written is held back until it is
    /// complete. When the log has been rotated, the rest of the old file comes
    /// first, then the new file.
    pub fn poll(&mut self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        // Look for a rotation before reading: once the log has a new file, the
        // old one is complete and reading it to the end gets all of it.
        let current = match fs::metadata(&self.path) {
            Ok(meta) => Some(file_id(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        self.read_more(&mut out)?;
        let Some(current) = current else {
            return Ok(out);
        };
        if self.id == Some(current) {
            return Ok(out);
        }
        // `path` is a file we have not read yet. An unfinished line of the old
        // file can never be completed now.
        self.file = None;
        self.pending.clear();
        // If `<path>.1` is neither the old nor the new file, the log rotated
        // more than once since the last call: it is complete, read it whole.
        // (Anything rotated away before it is gone.)
        if let Some(middle) = open_if_exists(&self.rotated)? {
            let id = file_id(&middle.metadata()?);
            if self.id != Some(id) && id != current {
                read_whole(middle, &mut out)?;
            }
        }
        if let Some(file) = open_if_exists(&self.path)? {
            self.id = Some(file_id(&file.metadata()?));
            self.file = Some(file);
            self.read_more(&mut out)?;
        }
        Ok(out)
    }

    /// Reads what has been appended to the followed file and parses the
    /// complete lines of it.
    fn read_more(&mut self, out: &mut Vec<Entry>) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        file.read_to_end(&mut self.pending)?;
        let used = parse_lines(&self.pending, out);
        self.pending.drain(..used);
        Ok(())
    }
}

fn open_if_exists(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses the complete lines of a file that will not grow any more.
fn read_whole(mut file: File, out: &mut Vec<Entry>) -> io::Result<()> {
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    parse_lines(&data, out);
    Ok(())
}

/// Formats `time` as RFC 3339 in UTC with nanoseconds, the log's timestamp
/// format: `2026-11-23T10:00:00.123456789Z`.
pub fn format_time(time: SystemTime) -> String {
    let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(before) => {
            // Before 1970: whole seconds downwards, nanoseconds upwards.
            let d = before.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000_000 - n)
            }
        }
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses an RFC 3339 timestamp, with or without a fraction of a second (up to
/// nanoseconds), in UTC (`Z`) or with a numeric offset (`+02:00`).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't') {
        return None;
    }
    let year = digits(&b[0..4])? as i64;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    // 60 is a leap second; it simply counts as the next minute's first second.
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        nanos = digits(&fraction[..len])? * 10u32.pow(9 - len as u32);
        rest = &fraction[len..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = i64::from(h * 60 + m);
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };

    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second)
        - offset;
    let since_epoch = Duration::new(secs.unsigned_abs(), 0);
    let whole = if secs >= 0 {
        UNIX_EPOCH.checked_add(since_epoch)?
    } else {
        UNIX_EPOCH.checked_sub(since_epoch)?
    };
    whole.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// The value of a run of ASCII digits.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Year, month, day of the `days`th day after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to the given date; the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Docker's `json-file` entries, written and read without a JSON library (the
/// monitor stays libc-only).
mod json {
    use super::{parse_time, Entry, Stream};

    /// Appends `{"log":…,"stream":…,"time":…}` (no newline) to `out`.
    pub(super) fn entry(
        out: &mut Vec<u8>,
        stamp: &str,
        stream: Stream,
        partial: bool,
        content: &[u8],
    ) {
        out.extend_from_slice(b"{\"log\":\"");
        escape(out, content);
        if !partial {
            out.extend_from_slice(b"\\n");
        }
        out.extend_from_slice(b"\",\"stream\":\"");
        out.extend_from_slice(stream.as_str().as_bytes());
        out.extend_from_slice(b"\",\"time\":\"");
        out.extend_from_slice(stamp.as_bytes());
        out.extend_from_slice(b"\"}");
    }

    /// JSON string escaping; bytes that are not UTF-8 become U+FFFD, as Docker's
    /// encoder does.
    fn escape(out: &mut Vec<u8>, content: &[u8]) {
        for c in String::from_utf8_lossy(content).chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    /// Parses one entry; `None` unless it has `log`, `stream` and `time`.
    pub(super) fn parse(line: &[u8]) -> Option<Entry> {
        let text = std::str::from_utf8(line).ok()?;
        let mut rest = text.trim().strip_prefix('{')?.trim_start();
        let (mut log, mut stream, mut time) = (None, None, None);
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                if !after.trim().is_empty() {
                    return None;
                }
                break;
            }
            let (key, after) = string(rest)?;
            let after = after.trim_start().strip_prefix(':')?.trim_start();
            let (value, after) = string(after)?;
            match key.as_str() {
                "log" => log = Some(value),
                "stream" => stream = Some(value),
                "time" => time = Some(value),
                _ => {}
            }
            let after = after.trim_start();
            rest = after.strip_prefix(',').map_or(after, str::trim_start);
        }
        let log = log?;
        let stream = match stream?.as_str() {
            "stdout" => Stream::Stdout,
            "stderr" => Stream::Stderr,
            _ => return None,
        };
        let (content, partial) = match log.strip_suffix('\n') {
            Some(line) => (line.as_bytes().to_vec(), false),
            None => (log.into_bytes(), true),
        };
        Some(Entry {
            time: parse_time(&time?)?,
            stream,
            partial,
            content,
        })
    }

    /// A JSON string at the start of `s`: its value and what follows it.
    fn string(s: &str) -> Option<(String, &str)> {
        let body = s.strip_prefix('"')?;
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((out, &body[i + 1..])),
                '\\' => {
                    let (_, e) = chars.next()?;
                    match e {
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'u' => {
                            let mut unit = hex4(&mut chars)?;
                            if (0xd800..0xdc00).contains(&unit) {
                                // A surrogate pair: `\uD83D\uDE00`.
                                let (_, b) = chars.next()?;
                                let (_, u) = chars.next()?;
                                let low = hex4(&mut chars)?;
                                if b != '\\' || u != 'u' || !(0xdc00..0xe000).contains(&low) {
                                    return None;
                                }
                                unit = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                            }
                            out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        None
    }

    fn hex4(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
        let mut v = 0;
        for _ in 0..4 {
            v = v * 16 + chars.next()?.1.to_digit(16)?;
        }
        Some(v)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn entries_round_trip() {
            for (content, partial) in [
                (&b"hello \"world\" \\ \t\x01"[..], false),
                (&b"part"[..], true),
                ("\u{1F600} ok".as_bytes(), false),
            ] {
                let mut line = Vec::new();
                entry(
                    &mut line,
                    "2024-01-02T03:04:05.000000001Z",
                    Stream::Stderr,
                    partial,
                    content,
                );
                let parsed = parse(&line).expect("parses");
                assert_eq!(parsed.content, content);
                assert_eq!(parsed.partial, partial);
                assert_eq!(parsed.stream, Stream::Stderr);
            }
            let docker = br#"{"log":"hi\n","stream":"stdout","time":"2024-01-02T03:04:05.5Z"}"#;
            let e = parse(docker).expect("docker's line");
            assert_eq!((e.content.as_slice(), e.partial), (&b"hi"[..], false));
            assert!(parse(br#"{"log":"x"}"#).is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    /// The entries as (stream, tag, content) for easy comparison.
    fn summary(entries: &[Entry]) -> Vec<(Stream, char, String)> {
        entries
            .iter()
            .map(|e| {
                let tag = if e.partial { 'P' } else { 'F' };
                (
                    e.stream,
                    tag,
                    String::from_utf8_lossy(&e.content).into_owned(),
                )
            })
            .collect()
    }

    fn s(stream: Stream, tag: char, content: &str) -> (Stream, char, String) {
        (stream, tag, content.to_string())
    }

    /// Puts the output back together the way `logs` shows it, per stream.
    fn reassemble(entries: &[Entry], stream: Stream) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries.iter().filter(|e| e.stream == stream) {
            out.extend_from_slice(&e.content);
            if !e.partial {
                out.push(b'\n');
            }
        }
        out
    }

    #[test]
    fn known_times_format_and_parse_back() {
        let cases = [
            (at(0, 0), "1970-01-01T00:00:00.000000000Z"),
            (at(951_782_400, 5), "2000-02-29T00:00:00.000000005Z"),
            (
                at(951_868_799, 999_999_999),
                "2000-02-29T23:59:59.999999999Z",
            ),
            (
                at(1_795_428_000, 123_456_789),
                "2026-11-23T10:00:00.123456789Z",
            ),
            (at(4_107_542_400, 0), "2100-03-01T00:00:00.000000000Z"),
            (
                UNIX_EPOCH - Duration::new(0, 1),
                "1969-12-31T23:59:59.999999999Z",
            ),
        ];
        for (time, text) in cases {
            assert_eq!(format_time(time), text);
            assert_eq!(parse_time(text), Some(time), "{text}");
        }
    }

    #[test]
    fn parse_time_accepts_rfc3339_variants() {
        let t = at(1_795_428_000, 0);
        assert_eq!(parse_time("2026-11-23T10:00:00Z"), Some(t));
        assert_eq!(parse_time("2026-11-23t10:00:00z"), Some(t));
        assert_eq!(parse_time("2026-11-23T11:30:00+01:30"), Some(t));
        assert_eq!(parse_time("2026-11-23T05:00:00-05:00"), Some(t));
        assert_eq!(
            parse_time("2026-11-23T10:00:00.5Z"),
            Some(at(1_795_428_000, 500_000_000))
        );
        assert_eq!(
            parse_time("2026-11-23T10:00:00.000001+00:00"),
            Some(at(1_795_428_000, 1000))
        );
        // 1970 from the east is still 1969 in UTC.
        assert_eq!(
            parse_time("1970-01-01T00:00:00+01:00"),
            Some(UNIX_EPOCH - Duration::from_secs(3600))
        );
    }

    #[test]
    fn parse_time_rejects_garbage() {
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T10:00:00",
            "2026-11-23 10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00:00.1234567890Z",
            "2026-11-23T10:00:00+0100",
            "2026-11-23T10:00:00Zjunk",
            "2026-1a-23T10:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
        assert!(parse_time("2000-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn day_conversions_agree_over_centuries() {
        for days in -800_000..800_000i64 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parse_line_reads_entries() {
        let e = parse_line(b"2026-11-23T10:00:00.123456789Z stdout F hello world\n").unwrap();
        assert_eq!(e.time, at(1_795_428_000, 123_456_789));
        assert_eq!(e.stream, Stream::Stdout);
        assert!(!e.partial);
        assert_eq!(e.content, b"hello world");

        let e = parse_line(b"2026-11-23T10:00:00Z stderr P  two  spaces ").unwrap();
        assert_eq!((e.stream, e.partial), (Stream::Stderr, true));
        assert_eq!(e.content, b" two  spaces ");

        assert_eq!(
            parse_line(b"2026-11-23T10:00:00Z stdout F ")
                .unwrap()
                .content,
            b""
        );
        assert_eq!(
            parse_line(b"2026-11-23T10:00:00Z stdout F")
                .unwrap()
                .content,
            b""
        );
        assert!(parse_line(b"2026-11-23T10:00:00Z stdin F x").is_none());
        assert!(parse_line(b"2026-11-23T10:00:00Z stdout X x").is_none());
        assert!(parse_line(b"yesterday stdout F x").is_none());
        assert!(parse_line(b"").is_none());
    }

    #[test]
    fn lines_become_full_and_partial_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&path, 0).unwrap();
        w.write(Stream::Stdout, b"one\ntwo\nthr").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"ee\n\nfour").unwrap();
        w.write(Stream::Stderr, b"no newline").unwrap();
        // Tails are held back until finish.
        assert_eq!(read_all(&path).unwrap().len(), 5);
        w.finish().unwrap();
        w.finish().unwrap(); // nothing left to flush
        let entries = read_all(&path).unwrap();
        assert_eq!(
            summary(&entries),
            [
                s(Stream::Stdout, 'F', "one"),
                s(Stream::Stdout, 'F', "two"),
                s(Stream::Stderr, 'F', "oops"),
                s(Stream::Stdout, 'F', "three"),
                s(Stream::Stdout, 'F', ""),
                s(Stream::Stdout, 'P', "four"),
                s(Stream::Stderr, 'P', "no newline"),
            ]
        );
        assert_eq!(
            reassemble(&entries, Stream::Stdout),
            b"one\ntwo\nthree\n\nfour"
        );

        let text = fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.ends_with("Z stdout F one"), "{first}");
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "mode {mode:o}");
    }

    #[test]
    fn long_lines_are_cut_into_16k_partial_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&path, 0).unwrap();
        let big = vec![b'x'; MAX_ENTRY_CONTENT * 2 + 100];
        // Without a newline: whole 16 KiB pieces go out at once, the rest waits.
        w.write(Stream::Stdout, &big[..MAX_ENTRY_CONTENT - 1])
            .unwrap();
        assert!(read_all(&path).unwrap().is_empty());
        w.write(Stream::Stdout, &big[MAX_ENTRY_CONTENT - 1..])
            .unwrap();
        let entries = read_all(&path).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries
            .iter()
            .all(|e| e.partial && e.content.len() == MAX_ENTRY_CONTENT));
        w.write(Stream::Stdout, b"\n").unwrap();
        // Exactly 16 KiB and then a newline: a P entry and an empty F entry.
        w.write(Stream::Stderr, &big[..MAX_ENTRY_CONTENT]).unwrap();
        w.write(Stream::Stderr, b"\n").unwrap();
        w.finish().unwrap();

        let entries = read_all(&path).unwrap();
        let lens: Vec<_> = entries
            .iter()
            .map(|e| (e.stream, e.partial, e.content.len()))
            .collect();
        assert_eq!(
            lens,
            [
                (Stream::Stdout, true, MAX_ENTRY_CONTENT),
                (Stream::Stdout, true, MAX_ENTRY_CONTENT),
                (Stream::Stdout, false, 100),
                (Stream::Stderr, true, MAX_ENTRY_CONTENT),
                (Stream::Stderr, false, 0),
            ]
        );
        let mut expected = big.clone();
        expected.push(b'\n');
        assert_eq!(reassemble(&entries, Stream::Stdout), expected);
    }

    #[test]
    fn rotation_keeps_the_earlier_lines_in_dot_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        // Each entry is 49 bytes (30 for the time, 10 for " stdout F ", the
        // content and the newline), so two fit in 100 bytes.
        let mut w = LogWriter::open(&path, 100).unwrap();
        for i in 0..6 {
            w.write(Stream::Stdout, format!("line {i:03}\n").as_bytes())
                .unwrap();
        }
        for file in [&path, &rotated_path(&path)] {
            assert_eq!(fs::metadata(file).unwrap().len(), 98, "{}", file.display());
        }
        let contents = |entries: Vec<Entry>| -> Vec<String> {
            summary(&entries).into_iter().map(|e| e.2).collect()
        };
        // Lines 0 and 1 were rotated away twice: only one old file is kept.
        assert_eq!(
            contents(read_all(&rotated_path(&path)).unwrap()),
            ["line 002", "line 003"]
        );
        assert_eq!(
            contents(read_all(&path).unwrap()),
            ["line 002", "line 003", "line 004", "line 005"]
        );

        // Reopening continues the same file and knows its size.
        drop(w);
        let mut w = LogWriter::open(&path, 100).unwrap();
        w.write(Stream::Stderr, b"line 006\n").unwrap();
        let all = summary(&read_all(&path).unwrap());
        assert_eq!(
            all,
            [
                s(Stream::Stdout, 'F', "line 004"),
                s(Stream::Stdout, 'F', "line 005"),
                s(Stream::Stderr, 'F', "line 006"),
            ]
        );
    }

    #[test]
    fn an_entry_bigger_than_max_size_still_gets_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&path, 10).unwrap();
        w.write(Stream::Stdout, b"first line\nsecond line\n")
            .unwrap();
        let rotated = read_all(&rotated_path(&path)).unwrap();
        assert_eq!(summary(&rotated), [s(Stream::Stdout, 'F', "first line")]);
        assert_eq!(read_all(&path).unwrap().len(), 2);
    }

    #[test]
    fn read_all_of_a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_all(&dir.path().join("nothing.log"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn read_skips_invalid_and_unfinished_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        fs::write(
            &path,
            "garbage\n2026-11-23T10:00:00Z stdout F ok\n2026-11-23T10:00:01Z stdout F half",
        )
        .unwrap();
        assert_eq!(
            summary(&read_all(&path).unwrap()),
            [s(Stream::Stdout, 'F', "ok")]
        );
    }

    #[test]
    fn follower_holds_back_a_half_written_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let (mut follower, history) = Follower::open(&path).unwrap();
        assert!(history.is_empty());
        assert!(follower.poll().unwrap().is_empty());

        let mut raw = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        raw.write_all(b"2026-11-23T10:00:00Z stdout F first\n2026-11-23T10:00:01Z std")
            .unwrap();
        assert_eq!(
            summary(&follower.poll().unwrap()),
            [s(Stream::Stdout, 'F', "first")]
        );
        assert!(follower.poll().unwrap().is_empty());
        raw.write_all(b"err P second\n").unwrap();
        assert_eq!(
            summary(&follower.poll().unwrap()),
            [s(Stream::Stderr, 'P', "second")]
        );
        assert!(follower.poll().unwrap().is_empty());
    }

    #[test]
    fn follower_continues_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut w = LogWriter::open(&path, 100).unwrap();
        w.write(Stream::Stdout, b"line 000\n").unwrap();
        let (mut follower, history) = Follower::open(&path).unwrap();
        assert_eq!(history.len(), 1);
        let contents = |entries: Vec<Entry>| -> Vec<String> {
            summary(&entries).into_iter().map(|e| e.2).collect()
        };

        // Line 001 still goes to the followed file, which is then rotated away
        // before anyone read it; line 002 and 003 start the new file.
        w.write(Stream::Stdout, b"line 001\nline 002\nline 003\n")
            .unwrap();
        assert!(rotated_path(&path).exists());
        assert_eq!(
            contents(follower.poll().unwrap()),
            ["line 001", "line 002", "line 003"]
        );
        assert!(follower.poll().unwrap().is_empty());

        // Two rotations between polls: the file in the middle is read whole.
        w.write(Stream::Stdout, b"line 004\nline 005\nline 006\nline 007\n")
            .unwrap();
        assert_eq!(
            contents(follower.poll().unwrap()),
            ["line 004", "line 005", "line 006", "line 007"]
        );
        assert!(follower.poll().unwrap().is_empty());

        // A follower started now sees the same history as read_all.
        let (_, history) = Follower::open(&path).unwrap();
        assert_eq!(history, read_all(&path).unwrap());
        assert_eq!(
            contents(history),
            ["line 004", "line 005", "line 006", "line 007"]
        );
    }

    #[test]
    fn follower_opened_before_the_log_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let (mut follower, _) = Follower::open(&path).unwrap();
        let mut w = LogWriter::open(&path, 0).unwrap();
        w.write(Stream::Stdout, b"hello\n").unwrap();
        assert_eq!(
            summary(&follower.poll().unwrap()),
            [s(Stream::Stdout, 'F', "hello")]
        );
    }
}
