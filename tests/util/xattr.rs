//! Reading an extended attribute, for the extraction tests (the xattrs a layer carries).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The value of xattr `name` of `path` (not followed when a symlink); `None` when absent or when
/// the filesystem under test does not hold it.
pub fn get(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let c_name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the length given.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}
