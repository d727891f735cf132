//! A message's content while it arrives, and how it lands behind its header
//! block at commit.
//!
//! The header block (see [`super::trace_headers`]) comes first in a stored
//! file, but part of it may only be known once the content is complete (the
//! end headers). So the content is held in memory up to [`HELD_CONTENT_MAX`]
//! octets; a message that stays within it is written at commit as headers
//! and content in one `writev`. Past it, the message's tmp/ file gets the
//! header block as it would be without end headers (the provisional block,
//! known at begin), then the content as it arrives (held octets act as a
//! write buffer). At commit, a message without end headers is complete
//! there: its held tail is appended and nothing is copied, as before end
//! headers existed. Only a spilled message that does get end headers is
//! assembled anew: a new file gets the whole header block and then the
//! spilled content by `copy_file_range(2)`, which copies inside the kernel:
//! the content never comes back through userspace. A message stored as
//! several copies (see [`super::router`]) gets each other copy the same
//! way ([`Content::copy_behind`]), from memory or from the spill file.
//!
//! No copy at all would need the content to land at its final offset. The
//! filesystems that can move or share extents (ext4 and XFS with
//! `FALLOC_FL_INSERT_RANGE`/`COLLAPSE_RANGE`, XFS and btrfs with reflinks)
//! only do it for block-aligned offsets, and the content's final offset is
//! the length of a header block that is not known while the content arrives,
//! nor a block multiple (and padding the block would change the stored
//! bytes). For the same reason `copy_file_range` never reflinks here (XFS
//! and btrfs checked): on every filesystem it is a page-cache to page-cache
//! copy, which costs about what writing the octets again would.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// The most content, in octets, a message in progress holds in memory; past
/// it the content is written to the message's tmp/ file as it arrives.
///
/// Why 64 KiB: it is what each connection already held as its write buffer
/// before content was held back for the header block, so memory per
/// connection stays where it was (1,000 connections in DATA hold at most
/// 64 MiB, allocated as each message grows: a 1 KiB message holds about
/// 1 KiB), and content past it still reaches tmp/ as it arrives, as before
/// (host/tests/crash_recovery.rs counts on a 72 KiB partial message being
/// there). A message within it costs what it did before, and so does a
/// larger one without end headers ([`Content::finish_in_place`]). A larger
/// one that gets end headers is written twice, to tmp/ and then by the
/// kernel into a second tmp/ file: 1.3 to 2.2 times the CPU of writing it
/// once on ext4, XFS and btrfs, 2.2 to 3.6 on tmpfs (docs/decisions.md and
/// bench/README.md, "Trace headers at the end of DATA").
pub const HELD_CONTENT_MAX: usize = 64 << 10;

/// The content of one message so far: the head in memory, then, once it
/// outgrew [`HELD_CONTENT_MAX`], everything in the message's tmp/ file
/// behind the provisional header block, with the latest octets held as a
/// write buffer.
pub(super) struct Content {
    /// The message's tmp/ file: empty while nothing spilled, then the
    /// provisional header block and the content.
    file: SpillFile,
    /// The header block without end headers, written first when the
    /// content spills; emptied then.
    provisional: Vec<u8>,
    /// Where the content starts in `file`: the provisional block's length.
    start: u64,
    /// Content not yet in `file`, at most [`HELD_CONTENT_MAX`] octets.
    held: Vec<u8>,
    /// Content octets already in `file`.
    spilled: u64,
}

/// Where content past the bound goes.
enum SpillFile {
    /// A file opened at begin (the Maildir's tmp/ file, which also names
    /// the message and becomes its first copy).
    Open(File),
    /// A file opened only if the content does spill (the PostgreSQL
    /// spool's unnamed file: most messages never spill, and a file per
    /// message would cost an inode each).
    Later(Box<dyn FnOnce() -> io::Result<File> + Send>),
}

impl Content {
    /// Content that will spill into `file`, an empty file opened for reading
    /// and writing, behind `provisional`, the header block the message gets
    /// if no end headers come.
    pub fn new(file: File, provisional: Vec<u8>) -> Content {
        Content { file: SpillFile::Open(file), provisional, start: 0, held: Vec::new(), spilled: 0 }
    }

    /// Content without a provisional header block that, if it outgrows
    /// [`HELD_CONTENT_MAX`], spills into the file `open` gives then (an
    /// empty file opened for reading and writing). For
    /// [`Content::into_vec`] only.
    pub fn spilling_later(open: impl FnOnce() -> io::Result<File> + Send + 'static) -> Content {
        Content {
            file: SpillFile::Later(Box::new(open)),
            provisional: Vec::new(),
            start: 0,
            held: Vec::new(),
            spilled: 0,
        }
    }

    /// Opens the spill file if it was not yet. Errors: opening it.
    fn open_spill_file(&mut self) -> io::Result<()> {
        if let SpillFile::Later(open) = &mut self.file {
            // A failed open leaves `not_opened` behind: after a write error
            // the message is dropped anyway.
            let open = std::mem::replace(open, Box::new(not_opened));
            self.file = SpillFile::Open(open()?);
        }
        Ok(())
    }

    /// The spill file, which content that spilled has, and a Maildir
    /// message always. Errors: it was never opened (nothing spilled).
    fn opened(&self) -> io::Result<&File> {
        match &self.file {
            SpillFile::Open(file) => Ok(file),
            SpillFile::Later(_) => Err(not_opened().unwrap_err()),
        }
    }

    /// Appends `data`. Errors are the file's (a full disk is
    /// [`io::ErrorKind::StorageFull`]); after one the content is incomplete
    /// and the message must be dropped.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.held.len() + data.len() > HELD_CONTENT_MAX {
            // Past the bound: what is held and `data` go to the file in one
            // `writev`, `data` without a copy (as `BufWriter` passes large
            // writes through), behind the provisional block the first time.
            let first = self.spilled == 0;
            let provisional = if first { std::mem::take(&mut self.provisional) } else { Vec::new() };
            self.open_spill_file()?;
            write_all_vectored(
                self.opened()?,
                &mut [IoSlice::new(&provisional), IoSlice::new(&self.held), IoSlice::new(data)],
            )?;
            if first {
                self.start = provisional.len() as u64;
            }
            self.spilled += (self.held.len() + data.len()) as u64;
            self.held.clear();
            return Ok(());
        }
        if self.held.len() + data.len() > self.held.capacity() {
            // Double as Vec would, but never past the bound.
            let target = (self.held.len() + data.len()).max(self.held.capacity() * 2).min(HELD_CONTENT_MAX);
            self.held.reserve_exact(target - self.held.len());
        }
        self.held.extend_from_slice(data);
        Ok(())
    }

    /// Whether part of the content is in the tmp/ file.
    pub fn spilled(&self) -> bool {
        self.spilled > 0
    }

    /// For content that never spilled: writes `headers` and the content into
    /// the (still empty) tmp/ file, which then holds the whole message, and
    /// returns it.
    pub fn write_held_behind(self, headers: &[u8]) -> io::Result<File> {
        debug_assert!(!self.spilled());
        write_all_vectored(self.opened()?, &mut [IoSlice::new(headers), IoSlice::new(&self.held)])?;
        self.into_file()
    }

    /// For spilled content that gets no end headers: appends the held tail
    /// to the tmp/ file, which then holds the whole message (the provisional
    /// header block is the final one), and returns it. Nothing is copied.
    pub fn finish_in_place(self) -> io::Result<File> {
        debug_assert!(self.spilled());
        self.opened()?.write_all_at(&self.held, self.start + self.spilled)?;
        self.into_file()
    }

    fn into_file(self) -> io::Result<File> {
        match self.file {
            SpillFile::Open(file) => Ok(file),
            SpillFile::Later(_) => not_opened(),
        }
    }

    /// The whole content as one buffer, for a backend that stores it apart
    /// from its header block (PostgreSQL): the held octets as they are, or
    /// the spilled ones read back from the file with the held tail behind.
    /// Allocates the content's length once. Errors are the file's.
    pub fn into_vec(self) -> io::Result<Vec<u8>> {
        if !self.spilled() {
            return Ok(self.held);
        }
        let spilled = usize::try_from(self.spilled).map_err(io::Error::other)?;
        let mut all = vec![0; spilled + self.held.len()];
        self.opened()?.read_exact_at(&mut all[..spilled], self.start)?;
        all[spilled..].copy_from_slice(&self.held);
        Ok(all)
    }

    /// Octets of content held in memory.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// Writes `headers` and then the whole content into `dst`, a new empty
    /// file: held content in one `writev`; spilled content by
    /// [`copy_range`], then the held rest by one write. For every copy of
    /// a message but the one in its own tmp/ file, and for that one too
    /// when it spilled and then got end headers (removing the spill file
    /// is then the caller's).
    pub fn copy_behind(&self, headers: &[u8], dst: &File) -> io::Result<()> {
        if !self.spilled() {
            return write_all_vectored(dst, &mut [IoSlice::new(headers), IoSlice::new(&self.held)]);
        }
        let at = headers.len() as u64;
        dst.write_all_at(headers, 0)?;
        copy_range(self.opened()?, self.start, dst, at, self.spilled)?;
        dst.write_all_at(&self.held, at + self.spilled)
    }
}

/// Copies `len` octets of `src` from offset `from` to `dst` at offset `at`, inside
/// the kernel (`copy_file_range(2)`, repeated until all is copied). Where
/// the kernel cannot (`EXDEV`, `ENOSYS`, `EOPNOTSUPP`, `EINVAL`: other
/// filesystems, old kernels, files it does not take), the rest is copied by
/// reading and writing. Errors keep their kind (a full disk is
/// [`io::ErrorKind::StorageFull`]); a `src` shorter than `len` is
/// [`io::ErrorKind::UnexpectedEof`].
fn copy_range(src: &File, from: u64, dst: &File, at: u64, len: u64) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        // Explicit offsets: neither file's position is used or moved.
        let mut src_at = (from + done) as libc::loff_t;
        let mut to = (at + done) as libc::loff_t;
        let remaining = usize::try_from(len - done).unwrap_or(usize::MAX);
        // SAFETY: both descriptors are open for the duration of the call and
        // the offsets point to live locals.
        let copied =
            unsafe { libc::copy_file_range(src.as_raw_fd(), &mut src_at, dst.as_raw_fd(), &mut to, remaining, 0) };
        match copied {
            0 => return Err(shorter_than_written()),
            n if n > 0 => done += n as u64,
            _ => {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) => {
                        return copy_through_userspace(src, from, dst, at, done, len);
                    }
                    _ => return Err(err),
                }
            }
        }
    }
    Ok(())
}

/// The fallback of [`copy_range`]: octets `done..len` of `src` (counted
/// from `from`) to `dst` at `at + done`, through a buffer.
fn copy_through_userspace(src: &File, from: u64, dst: &File, at: u64, mut done: u64, len: u64) -> io::Result<()> {
    let mut buf = vec![0; HELD_CONTENT_MAX];
    while done < len {
        let want = buf.len().min(usize::try_from(len - done).unwrap_or(usize::MAX));
        let n = match src.read_at(&mut buf[..want], from + done) {
            Ok(0) => return Err(shorter_than_written()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        dst.write_all_at(&buf[..n], at + done)?;
        done += n as u64;
    }
    Ok(())
}

/// What asking for a spill file never opened gives (a caller's mistake:
/// only spilled content, or a Maildir message's, has one).
fn not_opened() -> io::Result<File> {
    Err(io::Error::other("the content has no spill file"))
}

fn shorter_than_written() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the spilled content is shorter than what was written to it")
}

/// Writes all of `bufs`, in order, at `file`'s position: one `writev` unless
/// the kernel takes less.
fn write_all_vectored(mut file: &File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    /// An empty file to spill into, readable and writable, in `dir`.
    fn file(dir: &tempfile::TempDir, name: &str) -> File {
        OpenOptions::new().read(true).write(true).create_new(true).open(dir.path().join(name)).unwrap()
    }

    /// Content of `len` octets that shows any misplaced or lost octet.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn content_within_the_bound_is_held_and_written_in_one_go() {
        let dir = tempfile::tempdir().unwrap();
        let content = pattern(HELD_CONTENT_MAX);
        let mut held = Content::new(file(&dir, "msg"), b"H: provisional\r\n".to_vec());
        for piece in content.chunks(1000) {
            held.write(piece).unwrap();
        }
        assert!(!held.spilled());
        assert_eq!(std::fs::metadata(dir.path().join("msg")).unwrap().len(), 0, "nothing on disk yet");
        assert!(held.held.capacity() <= HELD_CONTENT_MAX);
        // Another copy, then the message's own file.
        held.copy_behind(b"Delivered-To: a@b\r\n", &file(&dir, "copy")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("copy")).unwrap(), [&b"Delivered-To: a@b\r\n"[..], &content].concat());
        held.write_held_behind(b"H: 1\r\n").unwrap();
        assert_eq!(std::fs::read(dir.path().join("msg")).unwrap(), [&b"H: 1\r\n"[..], &content].concat());
    }

    #[test]
    fn content_past_the_bound_spills_and_is_copied_behind_the_headers() {
        let dir = tempfile::tempdir().unwrap();
        let content = pattern(5 * HELD_CONTENT_MAX + 12_345);
        // Pieces around the bound: small ones, one larger than it, then small again.
        let (small, rest) = content.split_at(HELD_CONTENT_MAX + 1);
        let (large, tail) = rest.split_at(2 * HELD_CONTENT_MAX + 7);
        let spill = |name: &str| {
            let mut spilling = Content::new(file(&dir, name), b"H: 1\r\n".to_vec());
            for piece in small.chunks(4096) {
                spilling.write(piece).unwrap();
            }
            assert!(spilling.spilled(), "one octet past the bound spills");
            spilling.write(large).unwrap();
            for piece in tail.chunks(1500) {
                spilling.write(piece).unwrap();
            }
            assert!(spilling.held.capacity() <= HELD_CONTENT_MAX);
            spilling
        };
        // With end headers, or for another copy: assembled anew, the
        // content copied behind them, as often as asked.
        let spilled = spill("spill");
        for name in ["final", "copy"] {
            spilled.copy_behind(b"H: 1\r\nH: 2\r\n", &file(&dir, name)).unwrap();
            assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), [&b"H: 1\r\nH: 2\r\n"[..], &content].concat());
        }
        // Without: the spill file is the message, behind the provisional block.
        spill("in-place").finish_in_place().unwrap();
        assert_eq!(std::fs::read(dir.path().join("in-place")).unwrap(), [&b"H: 1\r\n"[..], &content].concat());
    }

    #[test]
    fn into_vec_gives_the_content_held_or_spilled() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 10, HELD_CONTENT_MAX, HELD_CONTENT_MAX + 1, 3 * HELD_CONTENT_MAX + 17] {
            let content = pattern(len);
            // No provisional block, then one.
            for provisional in [&b""[..], b"H: 1\r\n"] {
                let mut c = Content::new(file(&dir, &format!("{len}-{}", provisional.len())), provisional.to_vec());
                for piece in content.chunks(3000) {
                    c.write(piece).unwrap();
                }
                assert_eq!(c.spilled(), len > HELD_CONTENT_MAX);
                assert!(c.into_vec().unwrap() == content, "{len} octets");
            }
        }
    }

    #[test]
    fn content_spilling_later_opens_its_file_only_when_it_spills() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 10, HELD_CONTENT_MAX, HELD_CONTENT_MAX + 1, 3 * HELD_CONTENT_MAX + 17] {
            let content = pattern(len);
            let opened = Arc::new(AtomicBool::new(false));
            let (flag, path) = (Arc::clone(&opened), dir.path().to_path_buf());
            let mut c = Content::spilling_later(move || {
                flag.store(true, Ordering::SeqCst);
                tempfile::tempfile_in(path)
            });
            for piece in content.chunks(3000) {
                c.write(piece).unwrap();
            }
            assert_eq!(opened.load(Ordering::SeqCst), len > HELD_CONTENT_MAX, "{len} octets");
            assert!(c.into_vec().unwrap() == content, "{len} octets");
        }
    }

    #[test]
    fn the_userspace_fallback_copies_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let content = pattern(3 * HELD_CONTENT_MAX + 5);
        let src = file(&dir, "src");
        src.write_all_at(&content, 0).unwrap();
        let dst = file(&dir, "dst");
        dst.write_all_at(b"head", 0).unwrap();
        copy_through_userspace(&src, 0, &dst, 4, 0, content.len() as u64).unwrap();
        assert_eq!(std::fs::read(dir.path().join("dst")).unwrap(), [&b"head"[..], &content].concat());
        copy_through_userspace(&src, 5, &dst, 4, 0, content.len() as u64 - 5).unwrap();
        assert_eq!(std::fs::read(dir.path().join("dst")).unwrap()[4..content.len() - 1], content[5..]);
        let err = copy_through_userspace(&src, 0, &dst, 4, 0, content.len() as u64 + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_copy_the_kernel_refuses_falls_back_and_keeps_the_error_kind() {
        // copy_file_range takes regular files only (EINVAL for /dev/full);
        // the fallback's write then fails as a full disk does.
        let dir = tempfile::tempdir().unwrap();
        let src = file(&dir, "src");
        src.write_all_at(&pattern(1000), 0).unwrap();
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let err = copy_range(&src, 0, &full, 0, 1000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");
    }
}
