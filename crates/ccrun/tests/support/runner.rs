//! A test main for suites that share one expensive fixture (a registry with images):
//! runs the named tests a few at a time, each caught on its own, filtered by the
//! command line's words like libtest, and prints libtest's closing line.
#![allow(dead_code)]

use std::sync::Mutex;

/// A named test on fixture `T`.
pub type Named<'a, T> = (&'a str, fn(&T));

/// Builds the fixture with `setup` (only if a test is selected), runs the selected
/// `tests` on it four at a time, drops it, and exits 1 if any failed.
pub fn run_all<T: Sync>(tests: &[Named<'_, T>], setup: impl FnOnce() -> T) {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Named<'_, T>> = tests
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        println!("no tests selected");
        return;
    }
    let fixture = setup();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    // A few tests at a time: each is mostly waiting on container processes.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((name, test)) = selected.get(i) else {
                    break;
                };
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&fixture)));
                match outcome {
                    Ok(()) => println!("test {name} ... ok"),
                    Err(_) => {
                        println!("test {name} ... FAILED");
                        failed.lock().unwrap_or_else(|p| p.into_inner()).push(*name);
                    }
                }
            });
        }
    });
    drop(fixture);
    let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(1);
    }
}
