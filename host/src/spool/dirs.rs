//! One Maildir on disk as the spool writes to it: where its tmp/ and new/
//! are, which filesystem holds them (the committer flushes each filesystem
//! of a batch once), and which of the directories created for it are not
//! yet known to be on disk.

use std::fs::{self, File};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// How many users' new/ directories the process keeps open, at most: the
/// first this many to get mail after start-up (not necessarily the
/// busiest) then cost a commit batch no `open` and `close`. A bound on
/// descriptors, not a cache: a user's directory stays open as long as its
/// Maildir is known to the spool.
pub(super) const USER_DIRS_KEPT_OPEN: usize = 256;

/// Users' new/ directories kept open now, in the whole process.
static USER_DIRS_OPEN: AtomicUsize = AtomicUsize::new(0);

/// A Maildir's directories.
pub(super) struct MaildirDirs {
    pub root: PathBuf,
    pub tmp: PathBuf,
    pub new: PathBuf,
    /// The filesystem new/ is on (`st_dev`); tmp/ is on the same one, or
    /// renames between them would fail.
    dev: u64,
    /// The root's device and inode: what makes two paths one Maildir.
    id: (u64, u64),
    /// new/, kept open: from creation for the Maildirs that get mail all
    /// the time (the inbox, the outgoing Maildir); for a user's Maildir,
    /// from the first commit that needs it while fewer than
    /// [`USER_DIRS_KEPT_OPEN`] users' are kept (the others are opened by
    /// each batch that needs them), so that 10,000 mailboxes do not hold
    /// 10,000 descriptors.
    kept_open: OnceLock<File>,
    /// Whether `kept_open` was taken against [`USER_DIRS_KEPT_OPEN`].
    counted: bool,
    /// Directories that gained an entry when this Maildir was created (its
    /// root's parent, the root, ...), not yet fsynced: the committer does
    /// it before acknowledging any copy stored here.
    unsynced: Mutex<Vec<PathBuf>>,
}

/// A Maildir's new/ directory, open for a flush.
pub(super) enum NewDir<'a> {
    Kept(&'a File),
    Opened(File),
}

impl Deref for NewDir<'_> {
    type Target = File;

    fn deref(&self) -> &File {
        match self {
            NewDir::Kept(file) => file,
            NewDir::Opened(file) => file,
        }
    }
}

impl MaildirDirs {
    /// The Maildir at `root`, created if missing: `root` and its missing
    /// parents, then tmp/, new/ and cur/, each new directory mode 0700 (mail
    /// is private; existing ones keep the mode the operator gave them).
    /// `keep_open`: whether new/ stays open (see `kept_open`).
    ///
    /// Errors keep the kind of the failing call, with the path in the
    /// message; a path that exists as anything but a directory is
    /// [`io::ErrorKind::NotADirectory`].
    pub fn create(root: &Path, keep_open: bool) -> io::Result<MaildirDirs> {
        let mut unsynced = Vec::new();
        let mut missing = Vec::new();
        let mut probe = root;
        loop {
            match fs::metadata(probe) {
                Ok(meta) if meta.is_dir() => break,
                Ok(_) => return Err(not_a_directory(probe)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => missing.push(probe),
                Err(err) => return Err(at(probe, err)),
            }
            match probe.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
                _ => break,
            }
        }
        for dir in missing.into_iter().rev() {
            create_dir(dir, &mut unsynced)?;
        }
        let (tmp, new) = (root.join("tmp"), root.join("new"));
        for sub in [&tmp, &new, &root.join("cur")] {
            create_dir(sub, &mut unsynced)?;
        }
        unsynced.sort();
        unsynced.dedup();
        let root_meta = fs::metadata(root).map_err(|err| at(root, err))?;
        let dev = fs::metadata(&new).map_err(|err| at(&new, err))?.dev();
        let kept_open = OnceLock::new();
        if keep_open {
            let _ = kept_open.set(File::open(&new).map_err(|err| at(&new, err))?);
        }
        Ok(MaildirDirs {
            root: root.to_path_buf(),
            tmp,
            new,
            dev,
            id: (root_meta.dev(), root_meta.ino()),
            kept_open,
            counted: !keep_open,
            unsynced: Mutex::new(unsynced),
        })
    }

    /// The filesystem holding this Maildir (`st_dev`).
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// Whether `other` is this same directory under another path.
    pub fn same_as(&self, other: &MaildirDirs) -> bool {
        self.id == other.id
    }

    /// new/, open: kept open if it is, or may now be (see `kept_open`).
    pub fn new_dir(&self) -> io::Result<NewDir<'_>> {
        if let Some(file) = self.kept_open.get() {
            return Ok(NewDir::Kept(file));
        }
        let file = File::open(&self.new).map_err(|err| at(&self.new, err))?;
        if USER_DIRS_OPEN.fetch_add(1, Ordering::Relaxed) >= USER_DIRS_KEPT_OPEN {
            USER_DIRS_OPEN.fetch_sub(1, Ordering::Relaxed);
            return Ok(NewDir::Opened(file));
        }
        // Another caller may have kept one meanwhile: this one is then
        // used once and closed.
        match self.kept_open.set(file) {
            Ok(()) => Ok(NewDir::Kept(self.kept_open.get().expect("just set"))),
            Err(file) => {
                USER_DIRS_OPEN.fetch_sub(1, Ordering::Relaxed);
                Ok(NewDir::Opened(file))
            }
        }
    }

    /// Whether new/ is held open now.
    #[cfg(test)]
    pub fn is_kept_open(&self) -> bool {
        self.kept_open.get().is_some()
    }

    /// Puts on disk the entries of new/ and of the directories created for
    /// this Maildir that are not yet known to be there. `new`: this
    /// Maildir's new/ when the caller has it open already (the committer,
    /// which opened it for the batch's `syncfs`), else it is opened here.
    /// After a failure the created directories stay to be done by the next
    /// batch.
    pub fn make_durable(&self, new: Option<&File>) -> io::Result<()> {
        let pending = std::mem::take(&mut *self.lock_unsynced());
        for (i, dir) in pending.iter().enumerate() {
            if let Err(err) = File::open(dir).and_then(|d| d.sync_all()) {
                self.lock_unsynced().extend_from_slice(&pending[i..]);
                return Err(at(dir, err));
            }
        }
        let synced = match new {
            Some(new) => new.sync_all(),
            None => self.new_dir()?.sync_all(),
        };
        synced.map_err(|err| at(&self.new, err))
    }

    /// The directories created for this Maildir not yet fsynced.
    #[cfg(test)]
    pub fn unsynced(&self) -> Vec<PathBuf> {
        self.lock_unsynced().clone()
    }

    fn lock_unsynced(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        // A panic while holding it left a whole Vec: still usable.
        self.unsynced.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for MaildirDirs {
    fn drop(&mut self) {
        if self.counted && self.kept_open.get().is_some() {
            USER_DIRS_OPEN.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Creates `dir` (mode 0700) unless it is a directory already, recording
/// its parent in `gained_entry` when it was created.
fn create_dir(dir: &Path, gained_entry: &mut Vec<PathBuf>) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            gained_entry.push(parent.to_path_buf());
            Ok(())
        }
        // Also when another process created it meanwhile.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(not_a_directory(dir)),
            Err(err) => Err(at(dir, err)),
        },
        Err(err) => Err(at(dir, err)),
    }
}

/// `err` with `path` in its message, its kind kept (it decides 451 or 452).
pub(super) fn at(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

fn not_a_directory(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotADirectory, format!("{} exists and is not a directory", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_missing_maildir_is_created_private_and_its_new_parents_are_remembered() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("example.org/alice");
        let dirs = MaildirDirs::create(&root, false).unwrap();
        for sub in ["", "tmp", "new", "cur", ".."] {
            let mode = fs::metadata(root.join(sub)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{sub}");
        }
        assert_eq!(dirs.unsynced(), [top.path().to_path_buf(), top.path().join("example.org"), root.clone()]);
        dirs.make_durable(None).unwrap();
        assert!(dirs.unsynced().is_empty());
        // Opened again: nothing was created, nothing is pending.
        let again = MaildirDirs::create(&root, true).unwrap();
        assert!(again.unsynced().is_empty());
        assert!(again.same_as(&dirs));
        assert!(!again.same_as(&MaildirDirs::create(&top.path().join("other"), false).unwrap()));
    }

    #[test]
    fn a_file_where_a_directory_belongs_is_refused() {
        let top = tempfile::tempdir().unwrap();
        fs::write(top.path().join("file"), b"").unwrap();
        let err = MaildirDirs::create(&top.path().join("file/user"), false).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
        fs::create_dir_all(top.path().join("box")).unwrap();
        fs::write(top.path().join("box/new"), b"").unwrap();
        let err = MaildirDirs::create(&top.path().join("box"), false).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
        assert!(err.to_string().contains("box/new exists and is not a directory"), "{err}");
    }

    /// A user's new/ stays open from its first commit, up to the process's
    /// bound; past it each commit opens its own. (Other tests may hold
    /// some of the bound meanwhile, so this counts only what it can.)
    #[test]
    fn users_new_dirs_are_kept_open_up_to_the_bound_and_given_back_when_dropped() {
        let top = tempfile::tempdir().unwrap();
        let users: Vec<MaildirDirs> = (0..USER_DIRS_KEPT_OPEN + 10)
            .map(|i| MaildirDirs::create(&top.path().join(format!("user{i}")), false).unwrap())
            .collect();
        assert!(!users[0].is_kept_open());
        let kept = users.iter().filter(|dirs| matches!(dirs.new_dir().unwrap(), NewDir::Kept(_))).count();
        assert!(kept + 10 <= users.len(), "{kept} kept of {}", users.len());
        assert!(kept > 0);
        assert_eq!(users.iter().filter(|dirs| dirs.is_kept_open()).count(), kept);
        // A kept one is handed out again without an open.
        let first_kept = users.iter().find(|dirs| dirs.is_kept_open()).expect("some kept");
        assert!(matches!(first_kept.new_dir().unwrap(), NewDir::Kept(_)));
        drop(users);
        let again = MaildirDirs::create(&top.path().join("user0"), false).unwrap();
        assert!(matches!(again.new_dir().unwrap(), NewDir::Kept(_)), "the dropped ones gave their places back");
    }
}
