fn main() -> std::process::ExitCode {
    chatserver::cli::main()
}

/// The allocator: jemalloc, for every allocation in the process, SQLite's included (it is
/// linked unprefixed, so it is `malloc` itself). Against glibc's malloc, measured in one
/// sitting: 18 % more persisted sends a second (glibc's malloc and free were 12 % of a send's
/// profile), and memory given back when sockets close. glibc keeps what a thread frees in that
/// thread's arena and returns an arena's pages only from its top, so 10,000 closed sockets left
/// ~85 MB behind; an earlier fix called `malloc_trim` from a thread every two seconds. mimalloc
/// was measured too: 17 % more sends, but 2 KB more per idle socket, twice the memory at start,
/// and it kept the memory of closed sockets as well.
#[cfg(all(feature = "jemalloc", target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: a background thread returns freed pages to the
/// system after a second unused (`dirty_decay_ms`), at once past that (`muzzy_decay_ms:0`),
/// so no request ever pays for it. `MALLOC_CONF` in the environment still overrides these.
#[cfg(all(feature = "jemalloc", target_os = "linux", not(target_env = "musl")))]
#[allow(unsafe_code)]
#[no_mangle]
pub static malloc_conf: Conf =
    Conf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A pointer to a C string, the shape jemalloc reads `malloc_conf` in.
#[repr(transparent)]
pub struct Conf(*const std::ffi::c_char);

// SAFETY: it points at a string literal, which is never written and lives for the whole run.
#[allow(unsafe_code)]
unsafe impl Sync for Conf {}
