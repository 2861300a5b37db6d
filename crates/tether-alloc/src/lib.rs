//! mimalloc as the global allocator, with plain `mi_malloc` for ordinary alignments.
//!
//! The `mimalloc` crate's `GlobalAlloc` sends every request to `mi_malloc_aligned`. In mimalloc
//! v3 (the one it builds), that call has a fast path only for blocks of at most 1 KiB whose
//! page has a free block at hand; any other request goes to the aligned allocator's generic
//! path, which over-allocates (`size + align - 1`, so a 24-byte box takes a 32-byte block) unless
//! the rounded size is a power of two. A tool call through the gateway paid that path about 14
//! times (callgrind, README "Benchmarks"); the same issue is open against the crate
//! (purpleprotocol/mimalloc_rust#170).
//!
//! Every mimalloc block is a multiple of the word size from a page that starts at least
//! 16-aligned, so any block is word-aligned: a request aligned to at most a word, and not
//! smaller than its alignment, is served by `mi_malloc`, `mi_zalloc` and `mi_realloc`. Others
//! keep the aligned calls.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// The largest alignment every mimalloc block has.
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc, for `#[global_allocator]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mimalloc;

/// Whether a block of `size` bytes from plain `mi_malloc` is aligned enough for `align`.
fn plain_fits(size: usize, align: usize) -> bool {
    align <= WORD && align <= size
}

/// A block for `layout` from mimalloc's `plain` call when its blocks meet the alignment, else
/// from its `aligned` one.
///
/// # Safety
///
/// `plain` and `aligned` are mimalloc's allocation calls of the same kind (plain or zeroed).
#[allow(unsafe_code)]
#[inline]
unsafe fn allocate(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    // SAFETY: mimalloc's calls take any size and a power-of-two alignment.
    let block = unsafe {
        if plain_fits(size, align) {
            plain(size)
        } else {
            aligned(size, align)
        }
    };
    block.cast()
}

// SAFETY (for every method): mimalloc's functions take any size and alignment (a power of two,
// as `Layout` guarantees) and return null on failure, as `GlobalAlloc` requires; blocks from
// the plain and the aligned calls are freed and resized by the same `mi_free`/`mi_realloc*`,
// and `plain_fits` only picks the plain calls when their blocks meet the layout's alignment.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { allocate(layout, ffi::mi_malloc, ffi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { allocate(layout, ffi::mi_zalloc, ffi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: see the impl; `ptr` came from this allocator.
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: see the impl; `ptr` came from this allocator with `layout`.
        unsafe {
            if plain_fits(new_size, align) {
                ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        match Layout::from_size_align(size, align) {
            Ok(layout) => layout,
            Err(_) => panic!("bad layout {size}/{align}"),
        }
    }

    /// Allocates, zero-allocates and resizes through `Mimalloc` directly (the test binary keeps
    /// the system allocator), checking each block's alignment and that resizing keeps bytes.
    #[allow(unsafe_code)]
    fn check(size: usize, align: usize) {
        let a = Mimalloc;
        // SAFETY: every pointer is checked for null, written only within its size, resized and
        // freed with the layout it has at that moment, and freed once.
        unsafe {
            let z = a.alloc_zeroed(layout(size, align));
            assert!(!z.is_null(), "alloc_zeroed {size}/{align}");
            assert_eq!(
                z as usize % align,
                0,
                "alloc_zeroed {size}/{align} misaligned"
            );
            assert!(
                (0..size).all(|i| *z.add(i) == 0),
                "alloc_zeroed {size}/{align} not zero"
            );
            a.dealloc(z, layout(size, align));

            let mut p = a.alloc(layout(size, align));
            assert!(!p.is_null(), "alloc {size}/{align}");
            assert_eq!(p as usize % align, 0, "alloc {size}/{align} misaligned");
            p.write_bytes(0xa5, size);
            let mut current = size;
            for next in [size * 2 + 1, size / 2 + 1, size * 64 + 3, size] {
                p = a.realloc(p, layout(current, align), next);
                assert!(!p.is_null(), "realloc {current}->{next}/{align}");
                assert_eq!(
                    p as usize % align,
                    0,
                    "realloc {current}->{next}/{align} misaligned"
                );
                let kept = current.min(next);
                assert!(
                    (0..kept).all(|i| *p.add(i) == 0xa5),
                    "realloc {current}->{next}/{align} lost bytes"
                );
                p.write_bytes(0xa5, next);
                current = next;
            }
            a.dealloc(p, layout(current, align));
        }
    }

    #[test]
    fn every_block_meets_its_layout() {
        let sizes = [
            1,
            2,
            3,
            7,
            8,
            9,
            15,
            16,
            17,
            24,
            31,
            40,
            48,
            56,
            100,
            1000,
            1024,
            1025,
            3000,
            4096,
            5000,
            70_000,
            1 << 20,
        ];
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in sizes {
                check(size, align);
            }
        }
    }

    #[test]
    fn only_word_alignments_no_larger_than_the_size_take_the_plain_calls() {
        assert!(plain_fits(24, 8));
        assert!(plain_fits(1, 1));
        assert!(
            !plain_fits(4, 8),
            "a 4-byte block may sit at any 4-aligned address"
        );
        assert!(!plain_fits(32, 16));
        assert!(!plain_fits(64, 64));
    }
}
