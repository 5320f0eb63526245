//! glibc's allocator, told how this program uses memory. Capturing a sample's activations
//! allocates hundreds of tensors of up to a few MB and frees them all before the next
//! sample; glibc by default hands such blocks back to the kernel (`munmap`, or a trim of
//! the heap's top), and every page is faulted in and zeroed again for the next sample: a
//! quarter of a capture's time. [`keep_freed_memory`] keeps them for reuse;
//! [`release_free_memory`] gives the free ones back once a big piece of work is done.

/// Keeps blocks under 32 MiB in the heap when freed (not `munmap`ed) and up to 1 GiB of
/// free heap unreturned, so that the next sample reuses the pages already touched. Once,
/// at start-up, before threads allocate.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // glibc's malloc.h
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt takes no pointer; it only sets the allocator's thresholds (under the
    // main arena's lock).
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Other allocators keep freed memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}

/// Returns free heap pages to the kernel (glibc's `malloc_trim`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim takes no pointer and only releases memory the allocator holds
    // free; it is thread-safe (it locks each arena).
    unsafe {
        malloc_trim(0);
    }
}

/// Other allocators return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}
