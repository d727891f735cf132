//! What std would otherwise supply to a `no_std` cdylib: the global
//! allocator, the canonical ABI's `cabi_realloc`, the panic handler, and
//! the link to wasi-libc for `memcmp` and friends.

/// wasi-libc's malloc (a C dlmalloc), the allocator std itself uses on
/// wasip2: memory grows with `memory.grow`, which the host's limiter caps,
/// and freed blocks are reused, so a long session does not creep.
#[global_allocator]
static ALLOCATOR: LibcMalloc = LibcMalloc;

struct LibcMalloc;

unsafe extern "C" {
    fn malloc(size: usize) -> *mut u8;
    fn aligned_alloc(align: usize, size: usize) -> *mut u8;
    fn realloc(ptr: *mut u8, size: usize) -> *mut u8;
    fn free(ptr: *mut u8);
}

/// malloc's blocks are aligned to 16 on wasm32.
const MALLOC_ALIGN: usize = 16;

// SAFETY: forwards to libc, which returns blocks of at least `size` bytes
// aligned to MALLOC_ALIGN (or to `align` from aligned_alloc), or null.
unsafe impl core::alloc::GlobalAlloc for LibcMalloc {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        unsafe {
            if layout.align() <= MALLOC_ALIGN {
                malloc(layout.size())
            } else {
                aligned_alloc(layout.align(), layout.size().next_multiple_of(layout.align()))
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _: core::alloc::Layout) {
        unsafe { free(ptr) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: core::alloc::Layout, new_size: usize) -> *mut u8 {
        unsafe {
            if layout.align() <= MALLOC_ALIGN {
                return realloc(ptr, new_size);
            }
            let new = self.alloc(core::alloc::Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                free(ptr);
            }
            new
        }
    }
}

/// The canonical ABI's allocation entry point: the host calls it to place
/// arguments (the bytes of a `feed`, the config strings) in guest memory.
/// With std, wasi-libc exports one built on malloc; without std it is ours,
/// on the same allocator as everything else.
///
/// # Safety
/// Called only by the host's canonical-ABI lowering, with `old_ptr`/`old_len`
/// from an earlier call and a power-of-two `align`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(old_ptr: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, realloc};
    if new_len == 0 {
        // A zero-length list needs no storage, only a well-aligned address.
        return align as *mut u8;
    }
    // SAFETY: the canonical ABI passes a power-of-two alignment and sizes
    // that fit the 32-bit address space; a non-zero `old_len` means `old_ptr`
    // came from this allocator with that layout.
    let ptr = unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(old_ptr, Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    };
    if ptr.is_null() {
        // Out of memory under the host's cap: trap, the host ends the session.
        core::arch::wasm32::unreachable()
    }
    ptr
}

/// A panic is a bug in the guest; trapping ends this connection (the host
/// answers 421 and stores nothing) and nothing else. No message is printed:
/// the component has no stderr, and the host logs the trap.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

// Without std nothing links wasi-libc, yet the compiler lowers slice
// comparisons to calls to `memcmp` (and copies to `memcpy`…). Linking libc
// supplies those pure functions; nothing that needs an import is pulled in,
// which `jco wit` / the host's linker would show.
#[link(name = "c")]
unsafe extern "C" {}
