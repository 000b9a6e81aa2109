//! Progress bars on stderr, drawn only when asked for and when stderr is a terminal.

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A bar of `length` steps with an indicatif `template`, or a hidden one when `enabled` is false.
/// Besides indicatif's keys, `{rate}` is the steps per second as a whole number.
pub fn bar(enabled: bool, length: u64, template: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(template) {
        let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        };
        bar.set_style(style.with_key("rate", rate).progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar
}
