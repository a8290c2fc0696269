//! Per-layer progress of `pull` and `push`, shown as Docker shows it: a bar per layer on
//! a terminal, one line per state change otherwise, nothing when quiet. The pull and
//! push progress traits are implemented on [`LayerDisplay`] by their commands.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
pub(crate) enum Mode {
    /// Not at all (`-q`).
    Quiet,
    /// Plain lines (stdout is not a terminal).
    Lines,
    /// Bars redrawn on the terminal.
    Bars(MultiProgress),
}

/// The layers of one pull or push, each with its short id and its bar (on a terminal).
pub(crate) struct LayerDisplay {
    mode: Mode,
    layers: Mutex<Vec<(String, Option<ProgressBar>)>>,
}

impl LayerDisplay {
    /// Quiet, or bars or lines depending on whether stdout is a terminal.
    pub(crate) fn new(quiet: bool) -> LayerDisplay {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stdout()))
        } else {
            Mode::Lines
        };
        LayerDisplay {
            mode,
            layers: Mutex::new(Vec::new()),
        }
    }

    /// How progress is shown.
    pub(crate) fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Records layer `index` as `id`, with its bar if it has one.
    pub(crate) fn set_layer(&self, index: usize, id: String, bar: Option<ProgressBar>) {
        let mut layers = self.lock();
        if layers.len() <= index {
            layers.resize(index + 1, (String::new(), None));
        }
        layers[index] = (id, bar);
    }

    /// Runs `f` on layer `index`'s id and bar, if the layer is known.
    pub(crate) fn with_layer(&self, index: usize, f: impl FnOnce(&str, Option<&ProgressBar>)) {
        let layers = self.lock();
        if let Some((id, bar)) = layers.get(index) {
            f(id, bar.as_ref());
        }
    }

    /// Layer `index`'s bar, if it has one, advanced by `bytes`.
    pub(crate) fn advance(&self, index: usize, bytes: u64) {
        self.with_layer(index, |_, bar| {
            if let Some(bar) = bar {
                bar.inc(bytes);
            }
        });
    }

    /// Sets layer `index`'s final state (`Pull complete`, `Pushed`): its line stays,
    /// as Docker's do.
    pub(crate) fn finish(&self, index: usize, state: &str) {
        self.with_layer(index, |id, bar| match (&self.mode, bar) {
            (_, Some(bar)) => {
                bar.set_style(plain_style());
                bar.finish_with_message(state.to_string());
            }
            (Mode::Lines, None) => println!("{id}: {state}"),
            _ => {}
        });
    }

    /// A warning, above the bars on a terminal.
    pub(crate) fn warn(&self, message: &str) {
        match &self.mode {
            Mode::Bars(multi) => {
                let _ = multi.println(format!("warning: {message}"));
            }
            _ => eprintln!("warning: {message}"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Option<ProgressBar>)>> {
        // A poisoned lock only means another thread panicked mid-update; keep drawing.
        self.layers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A layer's line without a bar: `abc123def456: Pushed`.
pub(crate) fn plain_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").unwrap_or_else(|_| ProgressStyle::default_bar())
}
