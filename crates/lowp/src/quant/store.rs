//! Quantized tensors in safetensors files, readable by any safetensors reader.
//!
//! Each tensor `NAME` is stored as its parts `NAME.codes`, `NAME.scales` (and `NAME.zeros`, `NAME.types`,
//! `NAME.tensor_scale` where the scheme has them). Parts of 8, 16, 32 or 64 bits are ordinary arrays of their
//! shape (U8/I8, U16/I16/F16/BF16, U32/I32/F32, U64/I64/F64); narrower parts are U8 arrays of packed bytes,
//! least-significant bit first. The file's metadata holds, under the key `lowp`, a JSON object
//! `{"version": 1, "tensors": {NAME: {"scheme", "shape", "axis", "parts": {PART: {"bits", "signed",
//! "format", "shape"}}}}}`: everything needed to decode the parts without lowp.
//!
//! [`SafetensorsFile`] reads any safetensors file one tensor at a time (the header first, then only the bytes
//! of the tensors asked for), which is how the CLI walks model files larger than memory.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};

use super::{Part, QuantizedTensor, Scheme, PART_NAMES};
use crate::error::{Error, Result};
use crate::Format;

/// The metadata key of lowp's description, and the version of its layout.
pub const METADATA_KEY: &str = "lowp";
const VERSION: u64 = 1;
/// Headers larger than this are refused (safetensors' own limit).
const MAX_HEADER: u64 = 100_000_000;

/// Writes `tensors` (name, tensor) to a safetensors file at `path`. The file is written next to its final
/// place and renamed into it, so a failure leaves no partial file. Names must be distinct and non-empty.
///
/// # Examples
/// ```
/// use lowp::quant::{load, save, QuantizedTensor, Scheme};
/// use lowp::Rounding;
/// let x: Vec<f32> = (0..256).map(|i| (i as f32).sin()).collect();
/// let q = QuantizedTensor::quantize(&Scheme::parse("int4:g64:asym")?, &Rounding::default(), &x, &[4, 64], 1)?;
/// let path = std::env::temp_dir().join(format!("lowp-doc-{}.safetensors", std::process::id()));
/// save(&path, &[("w", &q)])?;
/// let back = load(&path)?;
/// assert_eq!(back, vec![("w".to_string(), q)]);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn save(path: &Path, tensors: &[(&str, &QuantizedTensor)]) -> Result<()> {
    let bytes = to_bytes(tensors)?;
    write_atomically(path, &bytes)
}

/// The safetensors bytes [`save`] writes.
pub fn to_bytes(tensors: &[(&str, &QuantizedTensor)]) -> Result<Vec<u8>> {
    to_bytes_with(tensors, &[], &BTreeMap::new())
}

/// A tensor stored as it is, beside the quantized ones (a model's norms and biases, integer tensors): the
/// safetensors dtype name (`F32`, `BF16`, `I64`, ...), shape and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct PlainTensor {
    /// Name in the file.
    pub name: String,
    /// safetensors dtype name.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// The bytes.
    pub data: Vec<u8>,
}

/// The safetensors bytes of quantized `tensors` and `plain` ones, with `metadata` strings beside lowp's own
/// (a model file's, carried over; the key `lowp` is lowp's and refused here). Readers of lowp's files skip
/// the plain tensors ([`load`] returns only the quantized ones).
pub fn to_bytes_with(
    tensors: &[(&str, &QuantizedTensor)],
    plain: &[PlainTensor],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    if metadata.contains_key(METADATA_KEY) {
        return Err(Error::InvalidOption(format!("the metadata key `{METADATA_KEY}` is lowp's own")));
    }
    let mut described = serde_json::Map::new();
    let mut views = Vec::new();
    let mut names = std::collections::HashSet::new();
    for p in plain {
        let dtype = parse_dtype(&p.dtype).ok_or_else(|| {
            Error::InvalidOption(format!("tensor `{}`: unknown safetensors dtype {}", p.name, p.dtype))
        })?;
        let view = TensorView::new(dtype, p.shape.clone(), &p.data)
            .map_err(|e| Error::InvalidOption(format!("tensor `{}`: {e}", p.name)))?;
        if !names.insert(p.name.clone()) {
            return Err(Error::InvalidOption(format!("tensor names must be distinct; `{}` is repeated", p.name)));
        }
        views.push((p.name.clone(), view));
    }
    for &(name, t) in tensors {
        if name.is_empty() || described.contains_key(name) {
            return Err(Error::InvalidOption(format!("tensor names must be distinct and non-empty; `{name}` is not")));
        }
        let mut parts = serde_json::Map::new();
        for p in t.parts() {
            let (dtype, shape) = stored_dtype(p);
            let view = TensorView::new(dtype, shape, &p.data).map_err(|e| Error::InvalidFile(e.to_string()))?;
            let stored = format!("{name}.{}", p.name);
            if !names.insert(stored.clone()) {
                return Err(Error::InvalidOption(format!("tensor names must be distinct; `{stored}` is repeated")));
            }
            views.push((stored, view));
            parts.insert(
                p.name.to_string(),
                json!({"bits": p.bits, "signed": p.signed, "format": p.format.as_ref().map(|f| f.name()), "shape": p.shape}),
            );
        }
        described.insert(
            name.to_string(),
            json!({"scheme": t.scheme().to_string(), "shape": t.shape(), "axis": t.axis(), "parts": parts}),
        );
    }
    let mut info: HashMap<String, String> = metadata.clone().into_iter().collect();
    if !tensors.is_empty() {
        let meta = json!({"version": VERSION, "tensors": described});
        info.insert(METADATA_KEY.to_string(), meta.to_string());
    }
    safetensors::serialize(views, (!info.is_empty()).then_some(info)).map_err(|e| Error::InvalidFile(e.to_string()))
}

/// Every quantized tensor in a file written by [`save`], in name order.
pub fn load(path: &Path) -> Result<Vec<(String, QuantizedTensor)>> {
    let mut file = SafetensorsFile::open(path)?;
    file.quantized()
}

/// Every quantized tensor in the bytes of a file written by [`save`] (what [`to_bytes`] returns), in name
/// order; checked as [`load`] checks a file.
///
/// # Examples
/// ```
/// use lowp::quant::{from_bytes, to_bytes, QuantizedTensor, Scheme};
/// use lowp::Rounding;
/// let x: Vec<f32> = (0..64).map(|i| (i as f32).cos()).collect();
/// let q = QuantizedTensor::quantize(&Scheme::parse("mxfp4")?, &Rounding::default(), &x, &[64], 0)?;
/// let bytes = to_bytes(&[("w", &q)])?;
/// assert_eq!(from_bytes(&bytes)?, vec![("w".to_string(), q)]);
/// assert!(from_bytes(&bytes[..bytes.len() - 1]).is_err());
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn from_bytes(bytes: &[u8]) -> Result<Vec<(String, QuantizedTensor)>> {
    let source = std::io::Cursor::new(bytes.to_vec());
    SafetensorsFile::read_header(PathBuf::from("<bytes>"), Box::new(source), bytes.len() as u64)?.quantized()
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let io = |e: std::io::Error, p: &Path| Error::Io { path: p.display().to_string(), message: e.to_string() };
    let name =
        path.file_name().ok_or_else(|| Error::InvalidOption(format!("{} is not a file path", path.display())))?;
    // A name of its own per call (threads may save at once), created only if it does not exist yet (never
    // through a link someone left there).
    let (tmp, mut file) = loop {
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".{}.lowp-tmp-{}-{n}", name.to_string_lossy(), std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(e, path)),
        }
    };
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e, path));
    }
    Ok(())
}

/// How a part is stored: its own dtype and shape when whole bytes, else packed U8.
fn stored_dtype(p: &Part) -> (Dtype, Vec<usize>) {
    stored_layout(p.bits, p.signed, p.format.as_ref(), &p.shape, p.data.len())
}

/// [`stored_dtype`] from a part's description and its packed byte count.
fn stored_layout(
    bits: u32,
    signed: bool,
    format: Option<&Format>,
    shape: &[usize],
    bytes: usize,
) -> (Dtype, Vec<usize>) {
    let fmt = format.map(Format::name);
    let dtype = match (bits, signed, fmt) {
        (8, true, _) => Dtype::I8,
        (8, false, _) => Dtype::U8,
        (16, _, Some("float16")) => Dtype::F16,
        (16, _, Some("bfloat16")) => Dtype::BF16,
        (16, true, _) => Dtype::I16,
        (16, false, _) => Dtype::U16,
        (32, _, Some("float32")) => Dtype::F32,
        (32, true, _) => Dtype::I32,
        (32, false, _) => Dtype::U32,
        (64, _, Some("float64")) => Dtype::F64,
        (64, true, _) => Dtype::I64,
        (64, false, _) => Dtype::U64,
        _ => return (Dtype::U8, vec![bytes]),
    };
    (dtype, shape.to_vec())
}

/// One tensor's entry in a safetensors header.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// The dtype name as the file writes it (`F32`, `BF16`, `U8`, ...).
    pub dtype: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// Byte range within the data section.
    pub start: u64,
    /// End of the byte range.
    pub end: u64,
}

/// Where a [`SafetensorsFile`] reads from: a file, or bytes in memory ([`from_bytes`]).
trait Source: Read + Seek + Send + Sync {}
impl<T: Read + Seek + Send + Sync> Source for T {}

/// A safetensors file opened for reading tensor by tensor: only the header is read when it opens.
pub struct SafetensorsFile {
    path: PathBuf,
    file: Box<dyn Source>,
    data_start: u64,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

impl SafetensorsFile {
    /// Opens `path` and reads its header, checking that every tensor's bytes lie within the file, agree with
    /// its dtype and shape, and do not overlap.
    pub fn open(path: &Path) -> Result<SafetensorsFile> {
        let io = |e: std::io::Error| Error::Io { path: path.display().to_string(), message: e.to_string() };
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        SafetensorsFile::read_header(path.to_path_buf(), Box::new(file), size)
    }

    /// Reads the header of the `size` bytes of `file`; `path` names them in messages.
    fn read_header(path: PathBuf, mut file: Box<dyn Source>, size: u64) -> Result<SafetensorsFile> {
        let shown = path.display().to_string();
        let io = |e: std::io::Error| Error::Io { path: shown.clone(), message: e.to_string() };
        let bad = |why: String| Error::InvalidFile(format!("{shown}: {why}"));
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|_| bad("too short to be a safetensors file".into()))?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER || n > size - 8 {
            return Err(bad(format!("the header claims {n} bytes; the file has {size}")));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(io)?;
        let header: Value = serde_json::from_slice(&header)
            .map_err(|e| bad(format!("the header is not JSON ({e}); is this a safetensors file?")))?;
        let entries = header.as_object().ok_or_else(|| bad("the header is not a JSON object".into()))?;
        let data_start = 8 + n;
        let data_len = size - data_start;
        let (mut tensors, mut metadata) = (BTreeMap::new(), BTreeMap::new());
        for (name, entry) in entries {
            if name == "__metadata__" {
                for (k, v) in entry.as_object().into_iter().flatten() {
                    let v = v.as_str().ok_or_else(|| bad(format!("metadata `{k}` is not a string")))?;
                    metadata.insert(k.clone(), v.to_string());
                }
                continue;
            }
            let info = tensor_info(entry).ok_or_else(|| bad(format!("tensor `{name}` has a malformed entry")))?;
            let need = dtype_bits(&info.dtype)
                .map(|b| info.shape.iter().try_fold(b, |a, &d| a.checked_mul(d as u64)).map(|bits| bits.div_ceil(8)))
                .ok_or_else(|| bad(format!("tensor `{name}` has unknown dtype {}", info.dtype)))?;
            if info.end < info.start || info.end > data_len || Some(info.end - info.start) != need {
                return Err(bad(format!(
                    "tensor `{name}` ({} {:?}) has byte range {}..{}, which does not fit its dtype and shape or the {data_len}-byte data section",
                    info.dtype, info.shape, info.start, info.end
                )));
            }
            tensors.insert(name.clone(), info);
        }
        let mut ranges: Vec<(u64, u64, &String)> = tensors.iter().map(|(n, i)| (i.start, i.end, n)).collect();
        ranges.sort();
        for w in ranges.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(bad(format!("tensors `{}` and `{}` overlap", w[0].2, w[1].2)));
            }
        }
        Ok(SafetensorsFile { path, file, data_start, tensors, metadata })
    }

    /// The tensors, by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.tensors
    }
    /// The `__metadata__` strings.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The bytes of tensor `name`.
    pub fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::InvalidOption(format!("{} has no tensor `{name}`", self.path.display())))?;
        let mut buf = vec![0u8; (info.end - info.start) as usize];
        let io = |e: std::io::Error| Error::Io { path: self.path.display().to_string(), message: e.to_string() };
        self.file.seek(SeekFrom::Start(self.data_start + info.start)).map_err(io)?;
        self.file.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// Tensor `name` as float32 or float64 values (`F64` stays float64, every other float dtype widens
    /// exactly to float32): `Ok(None)` for integer and boolean tensors, which are not quantized.
    pub fn read_floats(&mut self, name: &str) -> Result<Option<Floats>> {
        let dtype = self.tensors.get(name).map(|i| i.dtype.clone()).unwrap_or_default();
        let decode_16 = |fmt: &str, bytes: &[u8]| -> Result<Vec<f32>> {
            let codes: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            let mut out = vec![0.0f32; codes.len()];
            crate::decode(&Format::parse(fmt)?, &codes, &mut out)?;
            Ok(out)
        };
        let bytes = self.read(name)?;
        Ok(Some(match dtype.as_str() {
            "F32" => Floats::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            "F64" => {
                Floats::F64(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
            }
            "F16" => Floats::F32(decode_16("float16", &bytes)?),
            "BF16" => Floats::F32(decode_16("bfloat16", &bytes)?),
            _ => return Ok(None),
        }))
    }

    /// The quantized tensors lowp wrote into this file, in name order.
    pub fn quantized(&mut self) -> Result<Vec<(String, QuantizedTensor)>> {
        let shown = self.path.display().to_string();
        let bad = |why: String| Error::InvalidFile(format!("{shown}: {why}"));
        let meta = self.metadata.get(METADATA_KEY).ok_or_else(|| {
            bad(format!("no `{METADATA_KEY}` metadata: not a file of quantized tensors written by lowp"))
        })?;
        let meta: Value =
            serde_json::from_str(&meta.clone()).map_err(|e| bad(format!("`{METADATA_KEY}` metadata: {e}")))?;
        if meta.get("version").and_then(Value::as_u64) != Some(VERSION) {
            return Err(bad(format!(
                "lowp metadata version {:?}; this lowp reads version {VERSION}",
                meta.get("version")
            )));
        }
        let described = meta.get("tensors").and_then(Value::as_object).ok_or_else(|| bad("no tensor list".into()))?;
        let mut out = Vec::new();
        for (name, d) in described {
            let field = |k: &str| d.get(k).ok_or_else(|| bad(format!("tensor `{name}` has no `{k}`")));
            let scheme = field("scheme")?
                .as_str()
                .ok_or_else(|| bad(format!("tensor `{name}`: the scheme is not a string")))
                .and_then(|s| Scheme::parse(s).map_err(|e| bad(format!("tensor `{name}`: {e}"))))?;
            let shape = usizes(field("shape")?).ok_or_else(|| bad(format!("tensor `{name}`: malformed shape")))?;
            let axis = field("axis")?.as_u64().ok_or_else(|| bad(format!("tensor `{name}`: malformed axis")))?;
            let mut parts = Vec::new();
            for (pname, p) in field("parts")?.as_object().ok_or_else(|| bad(format!("tensor `{name}`: no parts")))? {
                let pname = PART_NAMES
                    .iter()
                    .find(|&&n| n == pname)
                    .ok_or_else(|| bad(format!("tensor `{name}`: unknown part `{pname}`")))?;
                let malformed = || bad(format!("tensor `{name}`: part `{pname}` is malformed"));
                let bits =
                    p.get("bits").and_then(Value::as_u64).filter(|b| (1..=64).contains(b)).ok_or_else(malformed)?;
                let signed = p.get("signed").and_then(Value::as_bool).ok_or_else(malformed)?;
                let format = match p.get("format") {
                    Some(Value::String(f)) => {
                        Some(Format::parse(f).map_err(|e| bad(format!("tensor `{name}`: part `{pname}`: {e}")))?)
                    }
                    Some(Value::Null) | None => None,
                    _ => return Err(malformed()),
                };
                let pshape = p.get("shape").and_then(usizes).ok_or_else(malformed)?;
                let stored = format!("{name}.{pname}");
                let count = super::tensor::checked_len(&pshape).ok_or_else(|| {
                    bad(format!("tensor `{name}`: part `{pname}` has an impossible shape {pshape:?}"))
                })?;
                let bytes = super::packed_bytes(count, bits as u32);
                let (dtype, dshape) = stored_layout(bits as u32, signed, format.as_ref(), &pshape, bytes);
                let mut part = Part { name: pname, bits: bits as u32, signed, format, shape: pshape, data: Vec::new() };
                let info = self.tensors.get(&stored).ok_or_else(|| bad(format!("tensor `{stored}` is missing")))?;
                if info.dtype != format!("{dtype:?}") || info.shape != dshape {
                    return Err(bad(format!(
                        "tensor `{stored}` is {} {:?}; its metadata needs {dtype:?} {dshape:?}",
                        info.dtype, info.shape
                    )));
                }
                part.data = self.read(&stored)?;
                parts.push(part);
            }
            parts.sort_by_key(|p| PART_NAMES.iter().position(|&n| n == p.name));
            let t = QuantizedTensor::from_parts(scheme, shape, axis as usize, parts).map_err(|e| match e {
                Error::InvalidFile(why) => bad(format!("tensor `{name}`: {why}")),
                e => bad(format!("tensor `{name}`: {e}")),
            })?;
            out.push((name.clone(), t));
        }
        Ok(out)
    }
}

/// Float data read from a file.
#[derive(Clone, Debug, PartialEq)]
pub enum Floats {
    /// float32 (or narrower floats widened exactly).
    F32(Vec<f32>),
    /// float64.
    F64(Vec<f64>),
}

fn usizes(v: &Value) -> Option<Vec<usize>> {
    v.as_array()?.iter().map(|d| d.as_u64().map(|d| d as usize)).collect()
}

fn tensor_info(entry: &Value) -> Option<TensorInfo> {
    let offsets = usizes(entry.get("data_offsets")?)?;
    if offsets.len() != 2 {
        return None;
    }
    Some(TensorInfo {
        dtype: entry.get("dtype")?.as_str()?.to_string(),
        shape: usizes(entry.get("shape")?)?,
        start: offsets[0] as u64,
        end: offsets[1] as u64,
    })
}

/// The safetensors dtype of a name, for the dtypes a plain tensor may have.
fn parse_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "BOOL" => Dtype::BOOL,
        "U8" => Dtype::U8,
        "I8" => Dtype::I8,
        "F8_E5M2" => Dtype::F8_E5M2,
        "F8_E4M3" => Dtype::F8_E4M3,
        "F8_E8M0" => Dtype::F8_E8M0,
        "F8_E4M3FNUZ" => Dtype::F8_E4M3FNUZ,
        "F8_E5M2FNUZ" => Dtype::F8_E5M2FNUZ,
        "F4" => Dtype::F4,
        "F6_E2M3" => Dtype::F6_E2M3,
        "F6_E3M2" => Dtype::F6_E3M2,
        "C64" => Dtype::C64,
        "I16" => Dtype::I16,
        "U16" => Dtype::U16,
        "F16" => Dtype::F16,
        "BF16" => Dtype::BF16,
        "I32" => Dtype::I32,
        "U32" => Dtype::U32,
        "F32" => Dtype::F32,
        "I64" => Dtype::I64,
        "U64" => Dtype::U64,
        "F64" => Dtype::F64,
        _ => return None,
    })
}

/// Bits per element of a safetensors dtype name.
fn dtype_bits(dtype: &str) -> Option<u64> {
    parse_dtype(dtype).map(|d| d.bitsize() as u64)
}
