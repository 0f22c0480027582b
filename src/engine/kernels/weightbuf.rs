//! Weight buffers in 2 MB pages.
//!
//! Why: a decode step reads every weight once (smollm2: ~100 MB), in matrices
//! of a few hundred KB each. In 4 KB pages that is ~25,000 pages per step,
//! each one a TLB miss, and the hardware prefetcher stops at every page
//! boundary. Linux backs memory with transparent huge pages only where asked
//! (`madvise` is the usual setting), and a `Vec` of a few hundred KB gets its
//! own 4 KB-page mapping from malloc. So the weights are carved out of large
//! slabs (32 MB, aligned to 2 MB) marked `MADV_HUGEPAGE` before they are
//! written: smollm2's decode got ~7% faster and its prompt ~1% (BENCHMARKS
//! "Minimums by row group, L2 prefetch, weights in 2 MB pages"). The floats
//! are the same.
//!
//! A [`WeightBuf`] owns its byte range of a slab exclusively (cloning copies
//! it into a new range); a slab is unmapped when its last buffer is dropped.
//! Where huge pages are unavailable the slab is ordinary memory, and where
//! the mapping itself fails the buffer is an ordinary `Vec`.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

const HUGE: usize = 2 << 20;
const SLAB: usize = 32 << 20;

/// One anonymous mapping; `base` is its first 2 MB boundary.
struct Slab {
    _map: memmap2::MmapMut,
    base: *mut u8,
    cap: usize,
}

// SAFETY: the slab is plain memory; every `WeightBuf` touches only its own
// disjoint range of it.
unsafe impl Send for Slab {}
unsafe impl Sync for Slab {}

impl Slab {
    fn new(min: usize) -> Option<Arc<Slab>> {
        let cap = min.max(SLAB).next_multiple_of(HUGE);
        let mut map = memmap2::MmapMut::map_anon(cap + HUGE).ok()?;
        #[cfg(target_os = "linux")]
        if let Err(e) = map.advise(memmap2::Advice::HugePage) {
            tracing::debug!("weights stay in 4 KB pages: madvise(MADV_HUGEPAGE) failed: {e}");
        }
        let p = map.as_mut_ptr();
        let base = p.wrapping_add(p.align_offset(HUGE));
        Some(Arc::new(Slab { _map: map, base, cap }))
    }
}

/// The slab being filled and how many bytes of it are handed out.
static CURRENT: Mutex<Option<(Arc<Slab>, usize)>> = Mutex::new(None);

/// `bytes` zeroed bytes, 64-byte aligned, in a slab.
fn carve(bytes: usize) -> Option<(Arc<Slab>, usize)> {
    let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((slab, used)) = cur.as_mut() {
        let off = used.next_multiple_of(64);
        if off + bytes <= slab.cap {
            *used = off + bytes;
            return Some((slab.clone(), off));
        }
    }
    let slab = Slab::new(bytes)?;
    *cur = Some((slab.clone(), bytes));
    Some((slab, 0))
}

enum Store<T> {
    Slab { slab: Arc<Slab>, off: usize, len: usize },
    Vec(Vec<T>),
}

/// A fixed-length slice of plain values (`u8`, `f16`, `f32`, …) for weight
/// data, in huge-page slabs (see the module note). Derefs to `[T]`.
pub struct WeightBuf<T: Copy + Default> {
    store: Store<T>,
}

impl<T: Copy + Default> WeightBuf<T> {
    /// `len` values, all `T::default()`. Writing them also faults the pages
    /// in now, as 2 MB pages where the kernel grants them.
    pub fn filled(len: usize) -> Self {
        let mut b = Self::alloc(len);
        b.fill(T::default());
        b
    }

    /// Room for `len` values: all-zero bytes (a fresh mapping, never handed
    /// out before), which the callers overwrite.
    fn alloc(len: usize) -> Self {
        let bytes = len * std::mem::size_of::<T>();
        if bytes == 0 || std::mem::align_of::<T>() > 64 {
            return WeightBuf { store: Store::Vec(vec![T::default(); len]) };
        }
        match carve(bytes) {
            Some((slab, off)) => WeightBuf { store: Store::Slab { slab, off, len } },
            None => WeightBuf { store: Store::Vec(vec![T::default(); len]) },
        }
    }

    /// A copy of `v`.
    pub fn from_slice(v: &[T]) -> Self {
        let mut b = Self::alloc(v.len());
        b.copy_from_slice(v);
        b
    }
}

impl<T: Copy + Default> Deref for WeightBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.store {
            // SAFETY: the range lies inside the slab (checked when carved), is
            // 64-byte aligned and initialised (zeroed at mapping, then written
            // only through this buffer), and the slab lives as long as `self`.
            Store::Slab { slab, off, len } => unsafe { std::slice::from_raw_parts(slab.base.add(*off) as *const T, *len) },
            Store::Vec(v) => v,
        }
    }
}

impl<T: Copy + Default> DerefMut for WeightBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.store {
            // SAFETY: as in `deref`; no other buffer shares this range, and
            // `&mut self` makes this the only reference to it.
            Store::Slab { slab, off, len } => unsafe { std::slice::from_raw_parts_mut(slab.base.add(*off) as *mut T, *len) },
            Store::Vec(v) => v,
        }
    }
}

impl<T: Copy + Default> Clone for WeightBuf<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T: Copy + Default> Default for WeightBuf<T> {
    fn default() -> Self {
        WeightBuf { store: Store::Vec(Vec::new()) }
    }
}

impl<T: Copy + Default> std::fmt::Debug for WeightBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WeightBuf({} values)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_hold_their_own_values_and_clones_are_copies() {
        let mut bufs: Vec<WeightBuf<u32>> = (0..50).map(|i| WeightBuf::filled(1000 + i * 37)).collect();
        for (i, b) in bufs.iter_mut().enumerate() {
            assert!(b.iter().all(|&x| x == 0), "fresh buffer {i} is zero");
            for (j, x) in b.iter_mut().enumerate() {
                *x = (i * 100_000 + j) as u32;
            }
        }
        let copy = bufs[7].clone();
        bufs[7][0] = u32::MAX;
        assert_eq!(copy[0], 700_000, "a clone does not share the original's memory");
        for (i, b) in bufs.iter().enumerate().filter(|(i, _)| *i != 7) {
            assert!(b.iter().enumerate().all(|(j, &x)| x == (i * 100_000 + j) as u32), "buffer {i} kept its values");
        }
        assert_eq!(bufs[7].as_ptr() as usize % 64, 0, "64-byte aligned");
    }

    #[test]
    fn a_buffer_larger_than_a_slab_gets_its_own() {
        let n = SLAB / 4 + 123;
        let mut b: WeightBuf<f32> = WeightBuf::filled(n);
        b[n - 1] = 1.5;
        let small: WeightBuf<f32> = WeightBuf::from_slice(&[2.5; 10]);
        assert_eq!((b.len(), b[n - 1], b[0]), (n, 1.5, 0.0));
        assert_eq!(&small[..], &[2.5; 10]);
        assert!(WeightBuf::<u8>::filled(0).is_empty());
    }
}
