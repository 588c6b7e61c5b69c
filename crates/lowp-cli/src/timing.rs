//! Timing shared by `report` and `bench`, and a progress line for long runs.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

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

/// A one-line `label i/n` counter on stderr, shown only when stderr is a terminal.
pub struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    on: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        Progress { label, total, done: 0, on: std::io::stderr().is_terminal() }
    }

    pub fn step(&mut self, what: &str) {
        self.done += 1;
        if self.on {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K{} {}/{}: {what}", self.label, self.done, self.total);
            let _ = e.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}
