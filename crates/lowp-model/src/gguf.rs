//! GGUF, llama.cpp's model file (versions 2 and 3): reading metadata and tensors, and writing files.
//!
//! Layout: the magic `GGUF`, a version, the tensor and key-value counts; the key-value metadata (typed values,
//! arrays included); one record per tensor (name, dimensions with the fastest-varying first, ggml type, offset
//! into the data section); then the data section, aligned to `general.alignment` (32 bytes by default). All
//! numbers are little-endian. The block types the tensors use are in [`crate::ggml`].

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ggml::GgmlType;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: usize = 32;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// uint8.
    U8(u8),
    /// int8.
    I8(i8),
    /// uint16.
    U16(u16),
    /// int16.
    I16(i16),
    /// uint32.
    U32(u32),
    /// int32.
    I32(i32),
    /// float32.
    F32(f32),
    /// bool.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// An array of values of one type.
    Array(Vec<Value>),
    /// uint64.
    U64(u64),
    /// int64.
    I64(i64),
    /// float64.
    F64(f64),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if the value is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// One tensor's record.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Its name.
    pub name: String,
    /// Dimensions as GGUF lists them: the fastest-varying (the row length) first.
    pub dims: Vec<usize>,
    /// Its ggml type.
    pub kind: GgmlType,
    /// Byte offset into the data section.
    pub offset: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape in C order (slowest-varying first): `[rows, row length]` for a matrix.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

/// A GGUF file read into memory.
#[derive(Debug)]
pub struct Gguf {
    path: PathBuf,
    /// The format version (2 or 3).
    pub version: u32,
    /// Key-value metadata, in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensor records, in file order.
    pub tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    bytes: Vec<u8>,
    data_start: usize,
}

/// A bounds-checked little-endian reader over the file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        match self.at.checked_add(n).filter(|&end| end <= self.bytes.len()) {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(Error::malformed(
                self.path,
                format!(
                    "truncated GGUF: {what} at byte {} needs {n} bytes, the file has {}",
                    self.at,
                    self.bytes.len()
                ),
            )),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(N, what)?.try_into().expect("take returns N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must fit in what is left of the file at `min_bytes` per item.
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize> {
        let at = self.at;
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_bytes as u64) > left {
            return Err(Error::malformed(
                self.path,
                format!("{what} at byte {at} is {n}, more than the {left} bytes left in the file can hold"),
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let at = self.at;
        let n = self.count(what, 1)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Error::malformed(self.path, format!("{what} at byte {at} is not valid UTF-8")))
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value> {
        let what = format!("value of `{key}`");
        Ok(match ty {
            0 => Value::U8(self.array::<1>(&what)?[0]),
            1 => Value::I8(self.array::<1>(&what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => Value::U32(self.u32(&what)?),
            5 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match self.array::<1>(&what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(Error::malformed(self.path, format!("{what}: bool byte {b} (accepted: 0 or 1)"))),
            },
            8 => Value::Str(self.string(&what)?),
            9 if depth == 0 => {
                let inner = self.u32(&what)?;
                let n = self.count(&format!("array length of `{key}`"), 1)?;
                let mut v = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    v.push(self.value(inner, key, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(&what)?),
            11 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            _ => {
                return Err(Error::malformed(
                    self.path,
                    format!("{what}: value type {ty} (accepted: 0-12, arrays not nested)"),
                ))
            }
        })
    }
}

impl Gguf {
    /// Reads and checks a GGUF file: header, metadata, tensor records, and that every tensor's data lies
    /// inside the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Gguf::from_bytes(path, bytes)
    }

    /// [`open`](Gguf::open) on bytes already in memory; `path` names them in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Gguf> {
        let mut c = Cursor { bytes: &bytes, at: 0, path };
        if c.take(4, "magic").ok() != Some(MAGIC.as_slice()) {
            return Err(Error::malformed(path, "not a GGUF file (it does not start with `GGUF`)"));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::malformed(path, format!("GGUF version {version} (accepted: 2 and 3)")));
        }
        let n_tensors = c.count("tensor count", 24)?;
        let n_kv = c.count("metadata count", 12)?;
        let mut metadata = Vec::with_capacity(n_kv);
        for _ in 0..n_kv {
            let key = c.string("metadata key")?;
            let ty = c.u32("metadata type")?;
            let v = c.value(ty, &key, 0)?;
            metadata.push((key, v));
        }
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut index = HashMap::new();
        for _ in 0..n_tensors {
            let name = c.string("tensor name")?;
            let nd = c.u32("dimension count")? as usize;
            if !(1..=4).contains(&nd) {
                return Err(Error::malformed(path, format!("tensor `{name}` has {nd} dimensions (accepted: 1 to 4)")));
            }
            let mut dims = Vec::with_capacity(nd);
            for _ in 0..nd {
                let d = c.u64("dimension")?;
                dims.push(
                    usize::try_from(d)
                        .map_err(|_| Error::malformed(path, format!("tensor `{name}`: dimension {d}")))?,
                );
            }
            let code = c.u32("tensor type")?;
            let kind = GgmlType::from_code(code).ok_or_else(|| {
                Error::malformed(
                    path,
                    format!(
                        "tensor `{name}` has ggml type {code}, which lowp does not read (accepted: {})",
                        GgmlType::accepted()
                    ),
                )
            })?;
            let offset = c.u64("tensor offset")?;
            let offset = usize::try_from(offset)
                .map_err(|_| Error::malformed(path, format!("tensor `{name}`: offset {offset}")))?;
            if index.insert(name.clone(), tensors.len()).is_some() {
                return Err(Error::malformed(path, format!("tensor `{name}` is listed twice")));
            }
            tensors.push(TensorInfo { name, dims, kind, offset });
        }
        let mut g =
            Gguf { path: path.to_path_buf(), version, metadata, tensors, index, bytes: Vec::new(), data_start: 0 };
        let align = match g.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => {
                    return Err(Error::malformed(
                        path,
                        format!("general.alignment is {v:?} (accepted: a power of two)"),
                    ))
                }
            },
        };
        g.data_start = c.at.div_ceil(align) * align;
        for t in &g.tensors {
            let n = t.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let size = n.and_then(|n| t.kind.bytes_for(n));
            let Some(size) = size else {
                return Err(Error::malformed(
                    path,
                    format!(
                        "tensor `{}` of {:?} {}: its row length must be a multiple of the type's block of {}",
                        t.name,
                        t.dims,
                        t.kind.name(),
                        t.kind.block_len()
                    ),
                ));
            };
            let end = g.data_start.checked_add(t.offset).and_then(|s| s.checked_add(size));
            if t.offset % align != 0 || end.is_none_or(|e| e > bytes.len()) || t.dims[0] % t.kind.block_len() != 0 {
                return Err(Error::malformed(
                    path,
                    format!(
                        "tensor `{}`: {size} bytes at offset {} of the data section (which starts at byte {}) do \
                         not lie inside the {}-byte file, are not aligned to {align}, or split a block",
                        t.name,
                        t.offset,
                        g.data_start,
                        bytes.len()
                    ),
                ));
            }
        }
        g.bytes = bytes;
        Ok(g)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A metadata value that must be present.
    pub fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| Error::malformed(&self.path, format!("metadata `{key}` is missing")))
    }

    /// A metadata integer that must be present.
    pub fn require_usize(&self, key: &str) -> Result<usize> {
        self.require(key)?
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| Error::malformed(&self.path, format!("metadata `{key}` is not a non-negative integer")))
    }

    /// A metadata number that must be present.
    pub fn require_f64(&self, key: &str) -> Result<f64> {
        self.require(key)?
            .as_f64()
            .ok_or_else(|| Error::malformed(&self.path, format!("metadata `{key}` is not a number")))
    }

    /// A tensor's record by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor's raw bytes (blocks of its ggml type).
    pub fn raw(&self, t: &TensorInfo) -> &[u8] {
        let start = self.data_start + t.offset;
        let size = t.kind.bytes_for(t.len()).expect("sizes checked on open");
        &self.bytes[start..start + size]
    }

    /// A tensor dequantized to float32, C order, with its [`shape`](TensorInfo::shape).
    pub fn dequantize(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let t = self
            .tensor(name)
            .ok_or_else(|| Error::Tensor { name: name.to_string(), why: format!("not in {}", self.path.display()) })?;
        let mut out = vec![0f32; t.len()];
        t.kind.dequantize(self.raw(t), &mut out);
        Ok((out, t.shape()))
    }
}

/// A tensor to write: its ggml type and the bytes of its blocks.
#[derive(Clone, Debug)]
pub struct TensorData {
    /// Its name.
    pub name: String,
    /// Shape in C order (slowest-varying first).
    pub shape: Vec<usize>,
    /// Its ggml type.
    pub kind: GgmlType,
    /// Blocks of `kind`, rows in order.
    pub bytes: Vec<u8>,
}

/// Writes a GGUF version 3 file: `metadata` in order, then the tensors, each aligned to 32 bytes. The file is
/// written under a temporary name and renamed when complete.
pub fn write(path: impl AsRef<Path>, metadata: &[(String, Value)], tensors: &[TensorData]) -> Result<()> {
    let path = path.as_ref();
    for t in tensors {
        let dims_ok = !t.shape.is_empty() && t.shape.len() <= 4;
        let expected = t.kind.bytes_for(t.shape.iter().product());
        if !dims_ok || t.shape.last().is_none_or(|&r| r % t.kind.block_len() != 0) || expected != Some(t.bytes.len()) {
            return Err(Error::Tensor {
                name: t.name.clone(),
                why: format!(
                    "shape {:?} and {} bytes do not make a {} tensor (1 to 4 dimensions, rows a multiple of {} \
                     elements)",
                    t.shape,
                    t.bytes.len(),
                    t.kind.name(),
                    t.kind.block_len()
                ),
            });
        }
    }
    let mut head = Vec::new();
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut head, k);
        head.extend_from_slice(&v.type_id().to_le_bytes());
        put_value(&mut head, v)?;
    }
    let mut offset = 0usize;
    for t in tensors {
        put_str(&mut head, &t.name);
        head.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for &d in t.shape.iter().rev() {
            head.extend_from_slice(&(d as u64).to_le_bytes());
        }
        head.extend_from_slice(&t.kind.code().to_le_bytes());
        head.extend_from_slice(&(offset as u64).to_le_bytes());
        offset = (offset + t.bytes.len()).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
    }
    head.resize(head.len().div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT, 0);
    let tmp = path.with_extension("gguf.part");
    let result = (|| -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&head)?;
        for t in tensors {
            f.write_all(&t.bytes)?;
            let pad = t.bytes.len().div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT - t.bytes.len();
            f.write_all(&[0u8; DEFAULT_ALIGNMENT][..pad])?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// A GGUF string: its length as u64, then its bytes.
fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn put_value(b: &mut Vec<u8>, v: &Value) -> Result<()> {
    match v {
        Value::U8(x) => b.push(*x),
        Value::I8(x) => b.push(*x as u8),
        Value::U16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => b.push(u8::from(*x)),
        Value::Str(s) => put_str(b, s),
        Value::Array(items) => {
            let ty = items.first().map_or(0, Value::type_id);
            if items.iter().any(|i| i.type_id() != ty || matches!(i, Value::Array(_))) {
                return Err(Error::Invalid("a GGUF array holds values of one type and no arrays".into()));
            }
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_value(b, i)?;
            }
        }
        Value::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => b.extend_from_slice(&x.to_le_bytes()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<(String, Value)>, Vec<TensorData>) {
        let meta = vec![
            ("general.architecture".to_string(), Value::Str("llama".into())),
            ("a.u32".into(), Value::U32(7)),
            ("a.f32".into(), Value::F32(-1.5)),
            ("a.bool".into(), Value::Bool(true)),
            ("a.i64".into(), Value::I64(-3)),
            ("a.list".into(), Value::Array(vec![Value::Str("x".into()), Value::Str("y z".into())])),
            ("a.empty".into(), Value::Array(vec![])),
        ];
        let f32s: Vec<u8> = (0..6).flat_map(|i| (i as f32 * 0.25).to_le_bytes()).collect();
        let mut q8 = vec![0u8; 2 * 34];
        q8[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        q8[2] = 3;
        let tensors = vec![
            TensorData { name: "w.f32".into(), shape: vec![2, 3], kind: GgmlType::F32, bytes: f32s },
            TensorData { name: "w.q8".into(), shape: vec![64], kind: GgmlType::Q8_0, bytes: q8 },
        ];
        (meta, tensors)
    }

    #[test]
    fn written_files_read_back() {
        let (meta, tensors) = sample();
        let path = std::env::temp_dir().join(format!("lowp-gguf-{}.gguf", std::process::id()));
        write(&path, &meta, &tensors).unwrap();
        let g = Gguf::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(g.metadata, meta);
        assert_eq!(g.tensors.len(), 2);
        let (v, shape) = g.dequantize("w.f32").unwrap();
        assert_eq!((v, shape), (vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25], vec![2, 3]));
        let (v, shape) = g.dequantize("w.q8").unwrap();
        assert_eq!((v[0], v[1], v.len(), shape), (1.5, 0.0, 64, vec![64]));
        assert_eq!(g.raw(g.tensor("w.q8").unwrap()), &tensors[1].bytes[..]);
        assert!(g.dequantize("nope").unwrap_err().to_string().contains("nope"));
        assert_eq!(g.require_usize("a.u32").unwrap(), 7);
        assert!(g.require_usize("a.i64").is_err() && g.require("missing").is_err());
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let (meta, tensors) = sample();
        let path = std::env::temp_dir().join(format!("lowp-gguf-bad-{}.gguf", std::process::id()));
        write(&path, &meta, &tensors).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let p = Path::new("t.gguf");
        // Every truncation before the end of the last tensor's data is refused (what follows is padding).
        let g = Gguf::from_bytes(p, bytes.clone()).unwrap();
        let last = g.tensor("w.q8").unwrap();
        let end = g.data_start + last.offset + tensors[1].bytes.len();
        assert!(end < bytes.len());
        assert!(Gguf::from_bytes(p, bytes[..end].to_vec()).is_ok());
        for n in 0..end {
            let e = Gguf::from_bytes(p, bytes[..n].to_vec()).unwrap_err().to_string();
            assert!(e.starts_with("t.gguf: "), "{n}: {e}");
        }
        // Every single-byte change either reads or fails with an error (no panic, no huge allocation).
        for i in 0..bytes.len().min(600) {
            for v in [0u8, 0xFF, 0x7F] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = Gguf::from_bytes(p, b);
            }
        }
        let mut b = bytes.clone();
        b[4] = 9;
        assert!(Gguf::from_bytes(p, b).unwrap_err().to_string().contains("version 9"));
        assert!(Gguf::from_bytes(p, b"GGML....".to_vec()).unwrap_err().to_string().contains("not a GGUF"));
    }

    #[test]
    fn writer_refuses_inconsistent_tensors() {
        let bad = TensorData { name: "w".into(), shape: vec![2, 16], kind: GgmlType::Q4_0, bytes: vec![0; 36] };
        let e = write(std::env::temp_dir().join("never.gguf"), &[], &[bad]).unwrap_err().to_string();
        assert!(e.contains("`w`") && e.contains("multiple of 32"), "{e}");
    }
}
