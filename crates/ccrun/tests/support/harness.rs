//! A test main for suites that share an expensive fixture (a registry with images):
//! the fixture is built once, the selected tests run a few at a time, and the fixture
//! is torn down (dropped) at the end even when tests fail.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A named test of a suite whose tests share a fixture `F`.
pub type Test<'a, F> = (&'a str, fn(&F));

/// Runs the `tests` whose names contain a command-line argument (all without one)
/// against the fixture `build` makes, `threads` at a time; prints libtest's summary
/// line and exits 1 when any failed.
pub fn run<F: Sync>(tests: &[Test<'_, F>], threads: usize, build: impl FnOnce() -> F) {
    ccrun_testkit::require_root();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Test<'_, F>> = tests
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        println!("no tests selected");
        return;
    }
    let fixture = build();
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
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
