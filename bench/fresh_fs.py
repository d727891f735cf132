"""A new, journaled ext4 for each run's store, as ../shared/bench/peers.py
gives every peer: mkfs defaults with the inode tables written up front (not
lazily, in the background, during the run), on a sparse loop file, mounted
for one run and removed after it.

Why: on this VM's work disk (ext4 without a journal) creating a file scans
past every inode freed in the last minute (`recently_deleted` in
fs/ext4/ialloc.c), and where a new directory lands decides how far: two
servers writing the same files into Maildirs at different depths paid
different kernel CPU for it (a Maildir per user against one inbox: up to
8 us a message more, from `find_get_block_common` and `recently_deleted`
alone). On a fresh filesystem every variant starts from the same, empty,
journaled state, like a real server's, and no run pays for an earlier one.

Mounting needs root and a private mount namespace, so that a killed run
leaves no mount behind: `private_mounts()` re-runs the script under
`unshare --mount --propagation private`."""

import contextlib
import os
import subprocess
import sys

IN_NAMESPACE = "SMTPCELL_BENCH_MOUNT_NS"


def private_mounts():
    """Re-executes this script in its own mount namespace (once); returns
    in the namespace. Errors (SystemExit): not root."""
    if os.environ.get(IN_NAMESPACE) == "1":
        return
    if os.geteuid() != 0:
        raise SystemExit("--fs fresh mounts a filesystem per run: run as root, or pass --fs shared")
    os.environ[IN_NAMESPACE] = "1"
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                          sys.executable, os.path.abspath(sys.argv[0])] + sys.argv[1:])


@contextlib.contextmanager
def fresh_fs(mount_point, size_gib=2):
    """A new journaled ext4 of `size_gib` GiB (sparse) mounted at
    `mount_point` for the `with` block; unmounted and its image deleted
    after, and the mount point with its parent once that is empty."""
    image = mount_point.rstrip("/") + ".img"
    os.makedirs(mount_point, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_gib << 30)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", image], check=True)
        subprocess.run(["mount", "-o", "loop", image, mount_point], check=True)
        try:
            yield mount_point
        finally:
            subprocess.run(["umount", mount_point], check=True)
    finally:
        os.unlink(image)
        os.rmdir(mount_point)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(mount_point.rstrip("/")))
