//! The one error type of the core crate.

/// Everything that can go wrong in lowp's core. Messages say what was wrong and what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A format name that matches no preset, alias or naming pattern.
    #[error(
        "unknown format `{name}`{hint}. Accepted: a preset or alias (see `lowp formats`), \
             e<E>m<M>[b<BIAS>][fn|fnuz], binary<K>p<P><s|u><e|f> (IEEE P3109, K <= 16), or chop(<t>,<emax>)"
    )]
    UnknownFormat {
        /// The name as given.
        name: String,
        /// `" (did you mean `x`?)"` or empty.
        hint: String,
    },
    /// A rounding-mode name that matches nothing.
    #[error("unknown rounding mode `{name}`{hint}. Accepted: {accepted}")]
    UnknownMode {
        /// The name as given.
        name: String,
        /// `" (did you mean `x`?)"` or empty.
        hint: String,
        /// The accepted names.
        accepted: String,
    },
    /// Format parameters that describe no valid format.
    #[error("invalid format: {0}")]
    InvalidFormat(String),
    /// A valid format that cannot be emulated in the given storage type.
    #[error("format {format} cannot be rounded from {dtype} data: {reason}")]
    UnsupportedDtype {
        /// Format name.
        format: String,
        /// The data type: `float32`, `float64`, or (from the Python bindings) `float16` or `bfloat16`.
        dtype: &'static str,
        /// Why.
        reason: String,
    },
    /// An option value out of its range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A computation that cannot go on in the emulated format (a singular or indefinite matrix, overflow).
    #[error("{0}")]
    Numerical(String),
    /// Input and output slices of different lengths.
    #[error("length mismatch: input has {input} elements, output has {output}")]
    LengthMismatch {
        /// Input length.
        input: usize,
        /// Output length.
        output: usize,
    },
    /// A value with no code in the format (NaN in a format without NaN, a negative number in an unsigned one).
    #[error("{value} at index {index} has no code in {format} ({why})")]
    NotRepresentable {
        /// The offending input.
        value: f64,
        /// Its position.
        index: usize,
        /// Format name.
        format: String,
        /// Why.
        why: &'static str,
    },
    /// A code outside the format's code range, or wider than the packing width.
    #[error("code {code:#x} at index {index} does not fit in {bits} bits")]
    CodeTooWide {
        /// The code.
        code: u64,
        /// Its position.
        index: usize,
        /// The width.
        bits: u32,
    },
    /// A packed buffer too short for the number of codes requested.
    #[error("packed buffer holds {have} bytes but {count} codes of {bits} bits need {need}")]
    BufferTooShort {
        /// Bytes given.
        have: usize,
        /// Bytes needed.
        need: usize,
        /// Codes asked for.
        count: usize,
        /// Bits per code.
        bits: u32,
    },
    /// A file (or stored tensor) that is not what lowp wrote or can read.
    #[error("invalid file: {0}")]
    InvalidFile(String),
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The system's message.
        message: String,
    },
}

/// `Result` with lowp's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Edit distance with adjacent transpositions counted as one edit (optimal string alignment), used to
/// suggest the nearest accepted name: `bfloat61` is one edit from `bfloat16`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// `" (did you mean `x`?)"` for the closest candidate within a small distance, else `""`.
pub(crate) fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let name = name.to_ascii_lowercase();
    let best = candidates.into_iter().map(|c| (edit_distance(&name, c), c)).min_by_key(|&(d, _)| d);
    match best {
        Some((d, c)) if d <= 3.max(name.len() / 3) => format!(" (did you mean `{c}`?)"),
        _ => String::new(),
    }
}
