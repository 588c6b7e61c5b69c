//! Reading and writing `.npy` files of the element types the commands use.
//!
//! npyz parses and writes the header; the data is converted in bulk here, because per-element
//! deserialisation is several times slower on the 10^7-element arrays people feed the command, and because
//! reading the raw bytes lets us say exactly how much of a truncated file is missing.
//!
//! Fortran-order input is reordered to C order on reading, so element indices (which choose the random
//! draws of stochastic rounding) are the same for a logical array however it was stored. Output is C order.
//! Outputs are written to a temporary file beside the target and renamed into place on success, so a
//! failed command never leaves a partial file.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use npyz::{DType, Endianness, Order, TypeChar, WriterBuilder};

/// The element types lowp reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    F32,
    F64,
    U8,
    U16,
    U32,
    U64,
}

/// What the rounding commands read.
pub const FLOATS: &[Kind] = &[Kind::F32, Kind::F64];
/// What `decode` reads.
pub const CODES: &[Kind] = &[Kind::U8, Kind::U16, Kind::U32, Kind::U64];

impl Kind {
    /// NumPy's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            Kind::F32 => "float32",
            Kind::F64 => "float64",
            Kind::U8 => "uint8",
            Kind::U16 => "uint16",
            Kind::U32 => "uint32",
            Kind::U64 => "uint64",
        }
    }

    fn descr(self) -> &'static str {
        match self {
            Kind::F32 => "<f4",
            Kind::F64 => "<f8",
            Kind::U8 => "|u1",
            Kind::U16 => "<u2",
            Kind::U32 => "<u4",
            Kind::U64 => "<u8",
        }
    }

    fn size(self) -> usize {
        match self {
            Kind::U8 => 1,
            Kind::U16 => 2,
            Kind::F32 | Kind::U32 => 4,
            Kind::F64 | Kind::U64 => 8,
        }
    }

    fn from_type(ch: TypeChar, size: u64) -> Option<Kind> {
        match (ch, size) {
            (TypeChar::Float, 4) => Some(Kind::F32),
            (TypeChar::Float, 8) => Some(Kind::F64),
            (TypeChar::Uint, 1) => Some(Kind::U8),
            (TypeChar::Uint, 2) => Some(Kind::U16),
            (TypeChar::Uint, 4) => Some(Kind::U32),
            (TypeChar::Uint, 8) => Some(Kind::U64),
            _ => None,
        }
    }
}

/// "float32 or float64", "uint8, uint16, uint32 or uint64".
pub fn describe_kinds(kinds: &[Kind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// The data of an array, in C order.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
}

/// An n-dimensional array read from or written to a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<u64>,
    pub data: Data,
}

/// A type that can be an element of [`Data`].
pub trait Scalar: Copy + Send + Sync + 'static {
    const KIND: Kind;
    const SIZE: usize;
    fn from_le(b: &[u8]) -> Self;
    fn from_be(b: &[u8]) -> Self;
    fn put_le(self, out: &mut Vec<u8>);
    fn wrap(v: Vec<Self>) -> Data;
}

macro_rules! scalar {
    ($($t:ty => $kind:ident),*) => {$(
        impl Scalar for $t {
            const KIND: Kind = Kind::$kind;
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("chunk of the element size"))
            }
            fn from_be(b: &[u8]) -> Self {
                <$t>::from_be_bytes(b.try_into().expect("chunk of the element size"))
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn wrap(v: Vec<Self>) -> Data {
                Data::$kind(v)
            }
        }
    )*};
}
scalar!(f32 => F32, f64 => F64, u8 => U8, u16 => U16, u32 => U32, u64 => U64);

impl Data {
    pub fn kind(&self) -> Kind {
        match self {
            Data::F32(_) => Kind::F32,
            Data::F64(_) => Kind::F64,
            Data::U8(_) => Kind::U8,
            Data::U16(_) => Kind::U16,
            Data::U32(_) => Kind::U32,
            Data::U64(_) => Kind::U64,
        }
    }
}

/// Reads `path`, which must hold one of `accept`; `command` names the reader in error messages.
pub fn read(path: &Path, accept: &[Kind], command: &str) -> Result<Array> {
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("cannot open input file {shown}"))?;
    let file_len = file.metadata().with_context(|| format!("cannot read {shown}"))?.len();
    let mut r = BufReader::new(file);

    let mut magic = [0u8; 6];
    let got = read_up_to(&mut r, &mut magic).with_context(|| format!("cannot read {shown}"))?;
    if got < magic.len() || &magic != b"\x93NUMPY" {
        bail!("{shown} is not a .npy file (it does not start with the NumPy magic string \\x93NUMPY)");
    }
    let header = npyz::NpyHeader::from_reader(Read::chain(&magic[..], &mut r))
        .map_err(|e| anyhow!("{shown}: malformed .npy header: {e}"))?;

    let accepted = describe_kinds(accept);
    let kind = match header.dtype() {
        DType::Plain(ts) => match Kind::from_type(ts.type_char(), ts.size_field()) {
            Some(k) if accept.contains(&k) => (k, ts.endianness() == Endianness::Big),
            _ => bail!("{shown} holds dtype {ts}; `lowp {command}` reads {accepted}"),
        },
        other => bail!("{shown} holds a structured dtype ({}); `lowp {command}` reads {accepted}", other.descr()),
    };
    let shape = header.shape().to_vec();
    let fortran = header.order() == Order::Fortran && shape.len() > 1;

    let elems = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| anyhow!("{shown}: shape {shape:?} has more elements than this machine can address"))?;
    let need = elems.checked_mul(kind.0.size()).ok_or_else(|| anyhow!("{shown}: shape {shape:?} is too large"))?;
    // The header length is not exposed by npyz; the file size bounds what can follow it.
    if need as u64 > file_len {
        bail!(
            "{shown} is truncated: shape {shape:?} of {} needs {need} bytes of data but the whole file has {file_len}",
            kind.0.name()
        );
    }
    let mut bytes = Vec::with_capacity(need);
    r.by_ref().take(need as u64).read_to_end(&mut bytes).with_context(|| format!("cannot read {shown}"))?;
    if bytes.len() < need {
        bail!(
            "{shown} is truncated: shape {shape:?} of {} needs {need} bytes of data but only {} follow the header",
            kind.0.name(),
            bytes.len()
        );
    }

    let (k, big) = kind;
    let data = match k {
        Kind::F32 => convert::<f32>(&bytes, big, &shape, fortran),
        Kind::F64 => convert::<f64>(&bytes, big, &shape, fortran),
        Kind::U8 => convert::<u8>(&bytes, big, &shape, fortran),
        Kind::U16 => convert::<u16>(&bytes, big, &shape, fortran),
        Kind::U32 => convert::<u32>(&bytes, big, &shape, fortran),
        Kind::U64 => convert::<u64>(&bytes, big, &shape, fortran),
    };
    Ok(Array { shape, data })
}

/// Like `read_exact`, but reports how much was read instead of failing on a short file.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn convert<T: Scalar>(bytes: &[u8], big_endian: bool, shape: &[u64], fortran: bool) -> Data {
    let chunks = bytes.chunks_exact(T::SIZE);
    let v: Vec<T> = if big_endian { chunks.map(T::from_be).collect() } else { chunks.map(T::from_le).collect() };
    T::wrap(if fortran { fortran_to_c(&v, shape) } else { v })
}

/// Reorders column-major data to row-major.
fn fortran_to_c<T: Copy>(src: &[T], shape: &[u64]) -> Vec<T> {
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    if src.is_empty() {
        return Vec::new();
    }
    // Column-major strides; walk the row-major multi-index like an odometer.
    let mut strides = vec![1usize; dims.len()];
    for i in 1..dims.len() {
        strides[i] = strides[i - 1] * dims[i - 1];
    }
    let mut idx = vec![0usize; dims.len()];
    let mut off = 0usize;
    let mut out = Vec::with_capacity(src.len());
    for _ in 0..src.len() {
        out.push(src[off]);
        for ax in (0..dims.len()).rev() {
            idx[ax] += 1;
            off += strides[ax];
            if idx[ax] < dims[ax] {
                break;
            }
            off -= strides[ax] * dims[ax];
            idx[ax] = 0;
        }
    }
    out
}

/// Writes `data` with `shape` (C order) to `path`, atomically.
pub fn write<T: Scalar>(path: &Path, shape: &[u64], data: &[T]) -> Result<()> {
    let shown = path.display();
    let tmp = TempFile::beside(path)?;
    let file = File::create(&tmp.path)
        .with_context(|| format!("cannot create output file {shown} (temporary {})", tmp.path.display()))?;
    let mut w = BufWriter::new(file);
    let dtype = DType::Plain(T::KIND.descr().parse().expect("valid type string"));
    let write_all = |w: &mut BufWriter<File>| -> io::Result<()> {
        npyz::WriteOptions::new_header_only().dtype(dtype).shape(shape).writer(&mut *w).write_header_only()?;
        let mut buf = Vec::with_capacity(T::SIZE << 16);
        for chunk in data.chunks(1 << 16) {
            buf.clear();
            chunk.iter().for_each(|v| v.put_le(&mut buf));
            w.write_all(&buf)?;
        }
        w.flush()?;
        w.get_ref().sync_all()
    };
    write_all(&mut w).with_context(|| format!("cannot write output file {shown}"))?;
    drop(w);
    tmp.commit(path).with_context(|| format!("cannot move the finished output into place as {shown}"))
}

/// A temporary file in the target's directory, removed on drop unless committed.
struct TempFile {
    path: PathBuf,
    committed: bool,
}

impl TempFile {
    fn beside(target: &Path) -> Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = target
            .file_name()
            .ok_or_else(|| anyhow!("output path {} does not name a file", target.display()))?
            .to_string_lossy();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!(".{name}.lowp-tmp-{}-{n}", std::process::id());
        Ok(TempFile { path: target.with_file_name(tmp_name), committed: false })
    }

    fn commit(mut self, target: &Path) -> io::Result<()> {
        fs::rename(&self.path, target)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_is_transposed() {
        // A 2x3 array [[0,1,2],[3,4,5]] stored column-major is 0,3,1,4,2,5.
        let f = [0, 3, 1, 4, 2, 5];
        assert_eq!(fortran_to_c(&f, &[2, 3]), [0, 1, 2, 3, 4, 5]);
        // 2x3x2: element (i,j,k) at i + 2j + 6k in column-major.
        let n = 12;
        let col: Vec<usize> = (0..n)
            .map(|p| {
                let (i, j, k) = (p % 2, (p / 2) % 3, p / 6);
                i * 6 + j * 2 + k // its row-major index
            })
            .collect();
        assert_eq!(fortran_to_c(&col, &[2, 3, 2]), (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn kinds_are_listed_readably() {
        assert_eq!(describe_kinds(FLOATS), "float32 or float64");
        assert_eq!(describe_kinds(CODES), "uint8, uint16, uint32 or uint64");
    }
}
