//! Progress on stderr, only when asked for: a bar on a terminal; elsewhere (a log, a notebook,
//! CI) one plain line every [`LINE_INTERVAL`], so that a long run is never silent for minutes.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a progress line is written when stderr is not a terminal (also the Python side's,
/// as `_core.PROGRESS_LINE_INTERVAL_S`).
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// A bar of `length` steps with an indicatif `template`, or a hidden one when `enabled` is false.
/// Besides indicatif's keys, `{rate}` is the steps per second as a whole number.
pub fn bar(enabled: bool, length: u64, template: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(length)
    } else {
        ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::term_like_with_hz(Box::new(Lines::default()), 1))
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        };
        bar.set_style(style.with_key("rate", rate).progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar
}

/// A "terminal" that writes what the bar draws as one stderr line, at most every
/// [`LINE_INTERVAL`] (the first after one interval), and ignores the cursor moves.
#[derive(Debug, Default)]
struct Lines {
    last: Mutex<Option<Instant>>,
}

impl Lines {
    fn line(&self, text: &str) -> std::io::Result<()> {
        let text = text.trim();
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let since = *last.get_or_insert(now);
        if text.is_empty() || now.duration_since(since) < LINE_INTERVAL {
            return Ok(());
        }
        *last = Some(now);
        writeln!(std::io::stderr().lock(), "{text}")
    }
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.line(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.line(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
