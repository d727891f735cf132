//! Reading the users file for an edit and replacing it atomically: readers
//! (a reloading server) see the old file or the new one, never a mix, and
//! after a crash the file is one or the other.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, fchown};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, anyhow, bail};

/// The mode of a users file this module creates: hashes are for the server's
/// eyes only.
pub(super) const NEW_FILE_MODE: u32 = 0o600;

/// An existing users file: its bytes, and what the replacement keeps.
pub(super) struct Existing {
    pub(super) contents: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The file at `path`, or `None` if there is none.
///
/// # Errors
/// `path` is a symbolic link (renaming over it would replace the link, not
/// the file it points at), a directory or another non-regular file, or
/// cannot be read.
pub(super) fn read(path: &Path) -> Result<Option<Existing>> {
    let at = path.display();
    match fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => bail!("{at}: {err}"),
        Ok(meta) if meta.file_type().is_symlink() => {
            bail!("{at}: is a symbolic link; give the path of the file it points to")
        }
        Ok(meta) if !meta.is_file() => bail!("{at}: is not a regular file"),
        Ok(_) => {}
    }
    // O_NOFOLLOW: if the name became a link since the check, fail rather than
    // read through it.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|err| anyhow!("{at}: cannot open: {err}"))?;
    let meta = file.metadata().map_err(|err| anyhow!("{at}: {err}"))?;
    if !meta.is_file() {
        bail!("{at}: is not a regular file");
    }
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).map_err(|err| anyhow!("{at}: cannot read: {err}"))?;
    Ok(Some(Existing { contents, mode: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid() }))
}

/// Replaces (or creates) `path` with `contents`: a temporary file in the same
/// directory, written and fsynced, renamed over `path`, then the directory
/// fsynced so the rename itself survives a crash. The new file gets the mode
/// and owner of `previous`, or mode 0600 and the caller's owner.
///
/// # Errors
/// Any step fails, including giving the file `previous`'s owner (a server
/// running as that owner could no longer read a file owned by us); the
/// temporary file is then removed and `path` is untouched.
pub(super) fn write(path: &Path, contents: &[u8], previous: Option<&Existing>) -> Result<()> {
    let at = path.display();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| anyhow!("{at}: not a file name"))?;
    let (tmp_path, mut file) =
        create_temp(dir, name).map_err(|err| anyhow!("{at}: cannot create a file next to it: {err}"))?;
    let written = (|| -> Result<()> {
        file.write_all(contents)?;
        let mode = match previous {
            Some(previous) => {
                let meta = file.metadata()?;
                if (meta.uid(), meta.gid()) != (previous.uid, previous.gid) {
                    fchown(&file, Some(previous.uid), Some(previous.gid)).map_err(|err| {
                        anyhow!(
                            "cannot give the new file the old one's owner {}:{} ({err}); \
                             run as that user or as root",
                            previous.uid,
                            previous.gid
                        )
                    })?;
                }
                previous.mode
            }
            None => NEW_FILE_MODE,
        };
        // Explicitly, since the mode given at creation is masked by the umask
        // (and a chown may clear set-id bits).
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp_path, path)?;
        Ok(())
    })();
    if let Err(err) = written {
        let _ = fs::remove_file(&tmp_path);
        bail!("{at}: {err}");
    }
    File::open(dir).and_then(|dir| dir.sync_all()).map_err(|err| anyhow!("{}: cannot sync: {err}", dir.display()))
}

/// A new file `.<name>.<pid>.<n>.tmp` in `dir`, mode 0600 from the start so
/// the hashes are never readable by others, even briefly.
fn create_temp(dir: &Path, name: &std::ffi::OsStr) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        let tmp_path = dir.join(tmp_name);
        match OpenOptions::new().write(true).create_new(true).mode(NEW_FILE_MODE).open(&tmp_path) {
            Ok(file) => return Ok((tmp_path, file)),
            // Left over by a process that crashed with our pid; try the next name.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => continue,
            Err(err) => return Err(err),
        }
    }
}
