//! A client process (ccrun, ccrun-oci, podman, ctr) on a pseudo-terminal the test owns,
//! as under a terminal emulator, its output collected: for `-t` tests.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `wait_for` and `wait_exit` wait before failing the test.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A process on a pseudo-terminal the test owns, its output collected.
///
/// Dropping it kills the process if it is still running.
pub struct OnPty {
    master: OwnedFd,
    child: std::process::Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl OnPty {
    /// Starts `cmd` in a new session with a `rows`x`cols` pty as its controlling
    /// terminal and stdin/stdout/stderr; a thread collects everything it writes.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> OnPty {
        let pty = nix::pty::openpty(Some(&winsize(rows, cols)), None).expect("openpty");
        let slave = pty.slave;
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe; they make the pty the child's
        // controlling terminal, as a terminal emulator would.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on a pty");
        // The command holds the slave ends: close them so the reader sees EOF (EIO)
        // once the child and its descendants are gone.
        drop(cmd);
        let output = Arc::new(Mutex::new(Vec::new()));
        let reader = pty.master.try_clone().expect("dup master");
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut file = std::fs::File::from(reader);
            let mut buf = [0u8; 4096];
            while let Ok(n) = file.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        OnPty {
            master: pty.master,
            child,
            output,
        }
    }

    /// Everything the process wrote so far, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("lock")).into_owned()
    }

    /// Waits until the output contains `needle`; panics after 20 s.
    pub fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `bytes` on the terminal.
    pub fn write(&self, bytes: &[u8]) {
        nix::unistd::write(&self.master, bytes).expect("write to pty");
    }

    /// Resizes the terminal, as a terminal emulator does when its window changes.
    pub fn resize(&self, rows: u16, cols: u16) {
        let ws = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads one winsize struct from the pointer.
        let ret = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(ret, 0, "TIOCSWINSZ");
    }

    /// Waits for the process to exit and returns its exit code (None if killed).
    pub fn exit_code(mut self) -> Option<i32> {
        self.wait_exit()
    }

    /// Waits for the process to exit and returns its exit code (None if killed);
    /// after 20 s kills it and panics with its output.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the process did not exit; output: {:?}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OnPty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn winsize(rows: u16, cols: u16) -> nix::pty::Winsize {
    nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}
