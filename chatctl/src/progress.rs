//! Progress bars on stderr, one per collection. They are drawn only when stderr is a
//! terminal, so logs of a CronJob or a test stay clean.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

const TEMPLATE: &str = "{prefix:>14} [{bar:40}] {human_pos}/{human_len} ({rate}, {elapsed})";

/// Where the bars of one command go: a terminal, or nowhere.
#[derive(Debug, Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    /// Bars on stderr when it is a terminal, hidden otherwise.
    pub fn auto() -> Self {
        if std::io::stderr().is_terminal() {
            Progress { bars: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())) }
        } else {
            Progress::hidden()
        }
    }

    /// No bars at all.
    pub fn hidden() -> Self {
        Progress { bars: None }
    }

    /// A new bar named `label`, expecting about `len` steps.
    pub fn bar(&self, label: &str, len: u64) -> ProgressBar {
        let Some(bars) = &self.bars else {
            return ProgressBar::hidden();
        };
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("rate", |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                // Whole documents per second; the built-in key shows three decimals.
                let _ = write!(out, "{:.0}/s", state.per_sec());
            })
            .progress_chars("=> ");
        bars.add(ProgressBar::new(len).with_style(style).with_prefix(label.to_owned()))
    }
}
