//! One file descriptor held in reserve. Out of descriptors, accept(2)
//! fails with EMFILE/ENFILE and leaves the client in the listen queue,
//! where it would wait without a greeting; closing the spare makes room to
//! accept it, tell it 421 and close it (the technique of libev and nginx).

use std::fs::File;
use std::io;

/// The reserve: `/dev/null`, opened read-only.
pub struct Spare(Option<File>);

impl Spare {
    /// Errors: opening `/dev/null`.
    pub fn open() -> io::Result<Spare> {
        Ok(Spare(Some(File::open("/dev/null")?)))
    }

    /// Frees the descriptor for one accept.
    pub fn release(&mut self) {
        self.0 = None;
    }

    /// Takes the descriptor back (if one is free again: otherwise the next
    /// round tries again).
    pub fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = File::open("/dev/null").ok();
        }
    }
}

/// Whether accept(2) failed for want of a file descriptor (process or
/// system limit).
pub fn out_of_descriptors(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
