//! What the operating system gives the process, budgeted at start-up
//! before the engine and its instance pool are built: a server configured
//! for more connections than its file descriptors or memory mappings allow
//! fails under load in ways clients see (451 "Too many open files" for
//! messages, accept(2) failing and clients left without a greeting), so the
//! connection limit is lowered to what fits, loudly, instead.

use std::io;

use anyhow::{Result, bail};
use tracing::{info, warn};

/// File descriptors one connection holds: its socket and, during a
/// message, the message's file in the Maildir's tmp/.
pub const FDS_PER_CONNECTION: u64 = 2;
/// File descriptors the process holds whatever the load: stdio, the
/// listener, the control socket, the spare descriptor kept for EMFILE, the
/// Maildir's directory handle, epoll and its wakers, signal pipes, compile
/// cache files while loading, and the sockets of clients being refused
/// with 421 past the connection limit.
pub const FD_RESERVE: u64 = 64;
/// Memory mappings one live connection adds: its instance's slots in the
/// pooling allocator (linear memory, table, stack and their guard pages
/// split into separate mappings once used).
pub const MAPS_PER_CONNECTION: u64 = 6;
/// Memory mappings the process holds whatever the load: the binary and its
/// libraries, thread stacks, the allocator's arenas, wasmtime's pools and
/// compiled code.
pub const MAP_RESERVE: u64 = 1024;
/// Below this many connections the server is not worth starting.
pub const MIN_CONNECTIONS: usize = 8;

/// The process resource that limits the number of connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// RLIMIT_NOFILE's soft limit.
    OpenFiles,
    /// /proc/sys/vm/max_map_count.
    MemoryMaps,
}

/// How many connections fit in `open_files` descriptors and, when known,
/// `max_map_count` mappings: `requested`, or fewer with the resource that
/// bound it.
pub fn fit(requested: usize, open_files: u64, max_map_count: Option<u64>) -> (usize, Option<Bound>) {
    let by_fds = open_files.saturating_sub(FD_RESERVE) / FDS_PER_CONNECTION;
    let by_maps = max_map_count.map_or(u64::MAX, |maps| maps.saturating_sub(MAP_RESERVE) / MAPS_PER_CONNECTION);
    let fits = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    if fits(by_fds) < requested && by_fds <= by_maps {
        (fits(by_fds), Some(Bound::OpenFiles))
    } else if fits(by_maps) < requested {
        (fits(by_maps), Some(Bound::MemoryMaps))
    } else {
        (requested, None)
    }
}

/// Raises the RLIMIT_NOFILE soft limit to the hard limit (capped by
/// /proc/sys/fs/nr_open when the hard limit is unlimited), then returns how
/// many of `requested` connections fit. Lowering is logged at warn with the
/// numbers and how to raise them.
///
/// Errors: fewer than [`MIN_CONNECTIONS`] fit.
pub fn connections(requested: usize) -> Result<usize> {
    let open_files = raise_open_files()?;
    let max_map_count = read_number("/proc/sys/vm/max_map_count");
    let (fitting, bound) = fit(requested, open_files, max_map_count);
    let maps = max_map_count.map_or_else(|| "unknown".to_string(), |m| m.to_string());
    if fitting < MIN_CONNECTIONS {
        bail!(
            "only {fitting} connections fit in {open_files} open files and {maps} memory mappings \
             (each connection needs {FDS_PER_CONNECTION} files and {MAPS_PER_CONNECTION} mappings, \
             plus {FD_RESERVE} files and {MAP_RESERVE} mappings for the server); raise the open-file \
             limit (LimitNOFILE= in systemd, ulimit -n) or vm.max_map_count (sysctl)"
        );
    }
    match bound {
        Some(Bound::OpenFiles) => warn!(
            requested,
            max_connections = fitting,
            open_files,
            "--max-connections lowered to what the open-file limit allows (2 per connection plus 64); \
             raise it with LimitNOFILE= in systemd or ulimit -n"
        ),
        Some(Bound::MemoryMaps) => warn!(
            requested,
            max_connections = fitting,
            max_map_count = %maps,
            "--max-connections lowered to what vm.max_map_count allows (6 per connection plus 1024); \
             raise it with sysctl vm.max_map_count"
        ),
        None => info!(max_connections = fitting, open_files, max_map_count = %maps, "resources budgeted"),
    }
    Ok(fitting)
}

/// Sets the soft RLIMIT_NOFILE to the hard one; returns the soft limit now
/// in force.
fn raise_open_files() -> Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit(RLIMIT_NOFILE): {}", io::Error::last_os_error());
    }
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        // The kernel refuses an unlimited soft limit for descriptors.
        read_number("/proc/sys/fs/nr_open").unwrap_or(1 << 20)
    } else {
        limit.rlim_max
    };
    if limit.rlim_cur < target {
        let raised = libc::rlimit { rlim_cur: target, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = target;
        } else {
            warn!(err = %io::Error::last_os_error(), open_files = limit.rlim_cur, "cannot raise the open-file limit");
        }
    }
    Ok(limit.rlim_cur)
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limit_fits_in_a_raised_systemd_default() {
        // systemd: soft 1024, hard 524288; raised to the hard limit.
        assert_eq!(fit(1000, 524_288, Some(65_530)), (1000, None));
        // Not raised (hard 1024): (1024 - 64) / 2.
        assert_eq!(fit(1000, 1024, Some(65_530)), (480, Some(Bound::OpenFiles)));
    }

    #[test]
    fn small_limits_lower_the_connection_count() {
        assert_eq!(fit(1000, 256, None), (96, Some(Bound::OpenFiles)));
        assert_eq!(fit(1000, 64, None), (0, Some(Bound::OpenFiles)));
        assert_eq!(fit(1000, 10, None), (0, Some(Bound::OpenFiles)));
    }

    #[test]
    fn memory_maps_bound_many_connections() {
        // (65,530 - 1,024) / 6 = 10,751.
        assert_eq!(fit(20_000, 1 << 20, Some(65_530)), (10_751, Some(Bound::MemoryMaps)));
        assert_eq!(fit(20_000, 1 << 20, Some(100)), (0, Some(Bound::MemoryMaps)));
        // The tighter of the two wins.
        assert_eq!(fit(20_000, 2_064, Some(65_530)), (1_000, Some(Bound::OpenFiles)));
    }
}
