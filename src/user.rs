//! Who this process is, asked one way everywhere: the effective uid decides ownership checks
//! (a planted file is one we do not own), where per-user files live and whether root-only work
//! (owners, device nodes) can be done.

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    euid() == 0
}
