//! Progress bars on stderr, drawn only when asked for and when stderr is a terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `length` steps with an indicatif `template`, or a hidden one when `enabled` is false.
pub fn bar(enabled: bool, length: u64, template: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar
}
