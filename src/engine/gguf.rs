//! Opening and validating a GGUF file before any weight is read.
//!
//! A model file is untrusted input: it may be truncated by a failed download,
//! have its bytes flipped, or come from an architecture we do not run. So the
//! file is checked as a whole at open time: magic and version, every metadata
//! string and array length against the bytes left (candle's reader does this),
//! and then, here, every tensor's shape, type and byte range against the file
//! length, with checked arithmetic. Only after that is a tensor read, so a bad
//! file becomes an [`EngineError::BadModelFile`] naming the file and the
//! problem — never a panic and never a multi-gigabyte allocation.
//!
//! Weights are read through a read-only memory map: each tensor is copied once
//! from the map into candle's block storage, and the mapped pages are then
//! released (`MADV_DONTNEED`), so loading does not hold the file twice in RSS.
//! The map itself stays open for the token-embedding table, whose rows are
//! dequantized on demand (see `arch::layers::Embedding`) rather than expanded
//! to f32 (262,144 × 640 floats for Gemma would be 671 MB).

use super::error::{EngineError, Result};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{ggml_file, GgmlDType, QTensor};
use candle_core::Device;
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a validated tensor lives in the file.
#[derive(Debug, Clone)]
pub struct TensorLoc {
    pub dtype: GgmlDType,
    /// Shape in candle order (outermost first): a linear weight is (out, in).
    pub dims: Vec<usize>,
    /// Absolute byte offset of the tensor data in the file.
    pub start: usize,
    pub n_bytes: usize,
}

/// An opened, validated GGUF file.
pub struct GgufFile {
    path: PathBuf,
    content: gguf_file::Content,
    tensors: HashMap<String, TensorLoc>,
    mmap: Arc<Mmap>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .field("bytes", &self.mmap.len())
            .finish()
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::BadModelFile { path: path.to_path_buf(), reason: reason.into() }
}

/// Human name of a metadata value's type, for error messages.
fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::U8(_) | Value::I8(_) | Value::U16(_) | Value::I16(_) => "small integer",
        Value::U32(_) | Value::I32(_) | Value::U64(_) | Value::I64(_) => "integer",
        Value::F32(_) | Value::F64(_) => "float",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Array(_) => "array",
    }
}

impl GgufFile {
    /// Opens `path`, parses the header and checks every tensor's byte range.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
        let file_len = file
            .metadata()
            .map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?
            .len();
        if file_len < 24 {
            // Checked before mapping too: an empty file cannot be mapped.
            return Err(bad(path, format!("not a GGUF file: only {file_len} bytes (a GGUF header needs at least 24)")));
        }
        // SAFETY: the map is read-only and private; we never hand out references
        // that outlive it (it is kept behind an Arc by everything that reads it).
        // A file truncated by another process while mapped could fault; that is
        // the same contract every mmap-based loader (llama.cpp included) has.
        let mmap = unsafe { Mmap::map(&file) }
            .map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
        let (content, tensors) = Self::parse(path, &mmap)?;
        Ok(Self { path: path.to_path_buf(), content, tensors, mmap: Arc::new(mmap) })
    }

    /// Parses and validates the header of a GGUF file held in `bytes`:
    /// magic, version, metadata, every tensor's shape and byte range. `path`
    /// only names the file in errors. (Split from [`GgufFile::open`] so the
    /// fuzzers can feed it bytes without a file.)
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<(gguf_file::Content, HashMap<String, TensorLoc>)> {
        let file_len = bytes.len() as u64;
        if file_len < 24 {
            return Err(bad(path, format!("not a GGUF file: only {file_len} bytes (a GGUF header needs at least 24)")));
        }
        let magic = &bytes[0..4];
        if magic != b"GGUF" {
            return Err(bad(
                path,
                format!(
                    "not a GGUF file: magic bytes are {:?} ({}), expected \"GGUF\"",
                    magic,
                    String::from_utf8_lossy(magic).escape_debug()
                ),
            ));
        }
        let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if !(2..=3).contains(&version) {
            return Err(bad(path, format!("unsupported GGUF version {version} (supported: 2, 3)")));
        }

        // candle's reader bounds every length by the bytes left; a panic inside it
        // would still be a bug we must not turn into a crash, so it is contained.
        let mut cursor = std::io::Cursor::new(&bytes[..]);
        let content = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            gguf_file::Content::read(&mut cursor)
        }))
        .map_err(|_| bad(path, "the GGUF header is corrupt (the reader failed on it)"))?
        .map_err(|e| bad(path, format!("the GGUF header is corrupt or truncated: {e}")))?;

        let alignment = match content.metadata.get("general.alignment") {
            None => gguf_file::DEFAULT_ALIGNMENT,
            Some(v) => match v.to_u32() {
                Ok(a) if a > 0 && a.is_power_of_two() => a as u64,
                _ => return Err(bad(path, format!("general.alignment must be a power of two, got {v:?}"))),
            },
        };
        let data_start = content.tensor_data_offset;
        let mut tensors = HashMap::with_capacity(content.tensor_infos.len());
        for (name, info) in content.tensor_infos.iter() {
            let dims = info.shape.dims().to_vec();
            let dtype = info.ggml_dtype;
            let mut elems: u64 = 1;
            for &d in &dims {
                if d == 0 {
                    return Err(bad(path, format!("tensor `{name}` has a zero dimension: {dims:?}")));
                }
                elems = elems
                    .checked_mul(d as u64)
                    .ok_or_else(|| bad(path, format!("tensor `{name}` has an impossible shape {dims:?}")))?;
            }
            let block = dtype.block_size() as u64;
            let inner = *dims.last().unwrap_or(&1) as u64;
            if inner % block != 0 {
                return Err(bad(path, format!(
                    "tensor `{name}` ({dtype:?}): row length {inner} is not a multiple of the block size {block}"
                )));
            }
            let n_bytes = (elems / block)
                .checked_mul(dtype.type_size() as u64)
                .ok_or_else(|| bad(path, format!("tensor `{name}` is impossibly large: shape {dims:?}")))?;
            if info.offset % alignment != 0 {
                return Err(bad(path, format!(
                    "tensor `{name}` data offset {} is not aligned to {alignment} bytes", info.offset
                )));
            }
            let start = data_start
                .checked_add(info.offset)
                .ok_or_else(|| bad(path, format!("tensor `{name}` has an impossible offset {}", info.offset)))?;
            let end = start
                .checked_add(n_bytes)
                .ok_or_else(|| bad(path, format!("tensor `{name}` has an impossible size")))?;
            if end > file_len {
                return Err(bad(path, format!(
                    "truncated: tensor `{name}` needs bytes {start}..{end} but the file is only {file_len} bytes long"
                )));
            }
            tensors.insert(
                name.clone(),
                TensorLoc { dtype, dims, start: start as usize, n_bytes: n_bytes as usize },
            );
        }
        Ok((content, tensors))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header, for the tokenizer and chat template builders.
    pub fn content(&self) -> &gguf_file::Content {
        &self.content
    }

    pub fn file_len(&self) -> usize {
        self.mmap.len()
    }

    pub(crate) fn mmap(&self) -> &Arc<Mmap> {
        &self.mmap
    }

    /// An error about this file.
    pub fn error(&self, reason: impl Into<String>) -> EngineError {
        bad(&self.path, reason)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<String> {
        self.get_str("general.architecture").map(str::to_string)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn required(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| self.error(format!("missing metadata key `{key}`")))
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.required(key)? {
            Value::String(s) => Ok(s),
            v => Err(self.error(format!("metadata key `{key}` is a {}, expected a string", value_kind(v)))),
        }
    }

    /// A non-negative integer of any width.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        let v = self.required(key)?;
        let n: Option<u64> = match v {
            Value::U8(x) => Some(*x as u64),
            Value::U16(x) => Some(*x as u64),
            Value::U32(x) => Some(*x as u64),
            Value::U64(x) => Some(*x),
            Value::I8(x) => u64::try_from(*x).ok(),
            Value::I16(x) => u64::try_from(*x).ok(),
            Value::I32(x) => u64::try_from(*x).ok(),
            Value::I64(x) => u64::try_from(*x).ok(),
            _ => None,
        };
        match n.and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Ok(n),
            None => Err(self.error(format!(
                "metadata key `{key}` must be a non-negative integer, got {} {v:?}",
                value_kind(v)
            ))),
        }
    }

    pub fn get_usize_or(&self, key: &str, default: usize) -> Result<usize> {
        if self.get(key).is_some() { self.get_usize(key) } else { Ok(default) }
    }

    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.required(key)?;
        let x = match v {
            Value::F32(x) => *x as f64,
            Value::F64(x) => *x,
            Value::U32(x) => *x as f64,
            Value::I32(x) => *x as f64,
            _ => return Err(self.error(format!("metadata key `{key}` is a {}, expected a number", value_kind(v)))),
        };
        if !x.is_finite() {
            return Err(self.error(format!("metadata key `{key}` is not a finite number: {x}")));
        }
        Ok(x)
    }

    pub fn get_f64_or(&self, key: &str, default: f64) -> Result<f64> {
        if self.get(key).is_some() { self.get_f64(key) } else { Ok(default) }
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn tensor_loc(&self, name: &str) -> Result<&TensorLoc> {
        self.tensors.get(name).ok_or_else(|| self.error(format!("missing tensor `{name}`")))
    }

    /// Checks a tensor's shape (candle order: a linear weight is (out, in)).
    pub fn expect_shape(&self, name: &str, dims: &[usize]) -> Result<&TensorLoc> {
        let loc = self.tensor_loc(name)?;
        if loc.dims != dims {
            return Err(self.error(format!(
                "tensor `{name}` has shape {:?}, expected {dims:?} from the metadata",
                loc.dims
            )));
        }
        Ok(loc)
    }

    /// Reads a tensor into candle block storage (CPU), after which the mapped
    /// pages it came from are released.
    pub fn tensor(&self, name: &str) -> Result<QTensor> {
        let loc = self.tensor_loc(name)?.clone();
        let bytes = &self.mmap[loc.start..loc.start + loc.n_bytes];
        let align = block_align(loc.dtype);
        let q = if (bytes.as_ptr() as usize) % align == 0 {
            ggml_file::qtensor_from_ggml(loc.dtype, bytes, loc.dims.clone(), &Device::Cpu)
        } else {
            // Misaligned data (legal with a small general.alignment): copy first so
            // the block cast inside candle sees aligned memory.
            let aligned = AlignedBytes::copy_from(bytes);
            ggml_file::qtensor_from_ggml(loc.dtype, aligned.as_bytes(), loc.dims.clone(), &Device::Cpu)
        }
        .map_err(|e| self.error(format!("tensor `{name}`: {e}")))?;
        self.release(loc.start, loc.n_bytes);
        Ok(q)
    }

    /// Reads a small f32-convertible tensor (norm weights, biases) as a Tensor.
    pub fn dense(&self, name: &str, len: usize) -> Result<candle_core::Tensor> {
        self.expect_shape(name, &[len])?;
        let t = self.tensor(name)?.dequantize(&Device::Cpu)?;
        Ok(t)
    }

    fn release(&self, start: usize, len: usize) {
        // Page-align inwards: only whole pages of this tensor are dropped.
        const PAGE: usize = 4096;
        let a = start.div_ceil(PAGE) * PAGE;
        let b = (start + len) / PAGE * PAGE;
        if b > a {
            // SAFETY: the map is private and read-only, so DONTNEED only drops our
            // view of those pages; a later read faults them back in from the file.
            let _ = unsafe { self.mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a) };
        }
    }
}

/// Alignment the block type needs (its largest scalar field).
pub(crate) fn block_align(dtype: GgmlDType) -> usize {
    match dtype {
        GgmlDType::F32 | GgmlDType::Q8K | GgmlDType::Q8_1 => 4,
        _ => 2,
    }
}

/// A byte buffer with 8-byte alignment, for handing copied tensor bytes to
/// candle's block cast.
pub(crate) struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    pub(crate) fn copy_from(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: u64 storage viewed as bytes; length within the allocation.
        let dst = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 8) };
        dst[..bytes.len()].copy_from_slice(bytes);
        Self { words, len: bytes.len() }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn gguf_header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend(3u32.to_le_bytes());
        v.extend(n_tensors.to_le_bytes());
        v.extend(n_kv.to_le_bytes());
        v
    }

    fn push_str(v: &mut Vec<u8>, s: &str) {
        v.extend((s.len() as u64).to_le_bytes());
        v.extend(s.as_bytes());
    }

    #[test]
    fn wrong_magic_is_named() {
        let mut bytes = gguf_header(0, 0);
        bytes[0..4].copy_from_slice(b"GGML");
        let f = write_tmp(&bytes);
        let e = GgufFile::open(f.path()).unwrap_err().to_string();
        assert!(e.contains("not a GGUF file") && e.contains("GGML"), "{e}");
        assert!(e.contains(&f.path().display().to_string()), "{e}");
    }

    #[test]
    fn tiny_file_is_an_error() {
        let f = write_tmp(b"GG");
        let e = GgufFile::open(f.path()).unwrap_err().to_string();
        assert!(e.contains("only 2 bytes"), "{e}");
    }

    #[test]
    fn huge_string_length_is_rejected_without_allocating() {
        let mut bytes = gguf_header(0, 1);
        bytes.extend(u64::MAX.to_le_bytes()); // key length
        bytes.extend([0u8; 16]);
        let f = write_tmp(&bytes);
        let e = GgufFile::open(f.path()).unwrap_err().to_string();
        assert!(e.contains("corrupt or truncated"), "{e}");
    }

    #[test]
    fn tensor_past_end_of_file_is_truncation() {
        let mut bytes = gguf_header(1, 1);
        push_str(&mut bytes, "general.architecture");
        bytes.extend(8u32.to_le_bytes());
        push_str(&mut bytes, "llama");
        push_str(&mut bytes, "w");
        bytes.extend(2u32.to_le_bytes()); // n_dims
        bytes.extend(64u64.to_le_bytes());
        bytes.extend(64u64.to_le_bytes());
        bytes.extend(0u32.to_le_bytes()); // f32
        bytes.extend(0u64.to_le_bytes()); // offset
        while bytes.len() % 32 != 0 {
            bytes.push(0);
        }
        bytes.extend(vec![0u8; 100]); // far fewer than 64*64*4
        let f = write_tmp(&bytes);
        let e = GgufFile::open(f.path()).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("`w`"), "{e}");
    }

    #[test]
    fn metadata_accessors_name_the_key() {
        let mut bytes = gguf_header(0, 2);
        push_str(&mut bytes, "general.architecture");
        bytes.extend(8u32.to_le_bytes());
        push_str(&mut bytes, "llama");
        push_str(&mut bytes, "llama.block_count");
        bytes.extend(6u32.to_le_bytes()); // f32, wrong type
        bytes.extend(1.5f32.to_le_bytes());
        let f = write_tmp(&bytes);
        let g = GgufFile::open(f.path()).unwrap();
        assert_eq!(g.architecture().unwrap(), "llama");
        let e = g.get_usize("llama.block_count").unwrap_err().to_string();
        assert!(e.contains("llama.block_count") && e.contains("non-negative integer"), "{e}");
        let e = g.get_usize("llama.nope").unwrap_err().to_string();
        assert!(e.contains("missing metadata key `llama.nope`"), "{e}");
    }
}
