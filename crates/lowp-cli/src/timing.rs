//! Timing shared by `report` and `bench`, and the progress bar of long runs.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The fastest of `reps` timed calls of `f`, after `warmup` untimed ones. The minimum, not the mean: on a
/// shared machine noise only ever adds time.
pub fn best_of<E>(warmup: usize, reps: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<Duration, E> {
    for _ in 0..warmup {
        f()?;
    }
    let mut best = Duration::MAX;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

/// Items per second.
pub fn per_second(items: usize, d: Duration) -> f64 {
    items as f64 / d.as_secs_f64().max(1e-9)
}

/// A progress bar on stderr with a time estimate (drawn only when stderr is a terminal): `step` when an item
/// starts, cleared when dropped.
pub struct Progress(ProgressBar);

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        let bar = ProgressBar::new(total as u64);
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg} ({elapsed}, ~{eta} left)")
            .expect("a valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label);
        Progress(bar)
    }

    pub fn step(&mut self, what: &str) {
        self.0.set_message(what.to_string());
        self.0.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
