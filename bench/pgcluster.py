"""A private PostgreSQL cluster for the benchmarks, as the tests start one
(tests/harness/postgres.rs): Debian's server programs, initdb into a fresh
directory, listening on 127.0.0.1 only on a free port, trust authentication,
the role and database `smtpcell`; fsync and synchronous_commit on (a COMMIT
is durable, as the Maildir's fsyncs are). PostgreSQL refuses to run as root:
as root its programs run as the `postgres` system user (runuser)."""

import glob
import os
import shutil
import socket
import subprocess
import time


def bindir():
    """`pg_config --bindir` when initdb is there, else the newest
    /usr/lib/postgresql/*/bin (Debian keeps initdb off PATH)."""
    try:
        d = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise SystemExit("no PostgreSQL server programs: apt-get install postgresql (.ci/run does)")
    return os.path.dirname(found[-1])


def as_server_user(argv):
    return ["runuser", "-u", "postgres", "--"] + argv if os.geteuid() == 0 else argv


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Created by start() under `parent`, removed by remove()."""

    def __init__(self, parent):
        self.parent = parent
        self.port = free_port()
        self.url = "postgres://smtpcell@127.0.0.1:%d/smtpcell" % self.port
        self.bin = bindir()

    def start(self):
        os.makedirs(self.parent, exist_ok=True)
        self.dir = os.path.join(self.parent, "%d-%d" % (os.getpid(), time.monotonic_ns()))
        os.makedirs(self.dir, mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.run(["initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                    "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\nmax_connections = 200\n"
                    % (self.port, self.dir))
        self.run(["pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "postgres.log"), "-w", "start"])
        self.psql("CREATE ROLE smtpcell LOGIN", "postgres")
        self.psql("CREATE DATABASE smtpcell OWNER smtpcell", "postgres")

    def run(self, argv):
        argv = as_server_user([os.path.join(self.bin, argv[0])] + argv[1:])
        p = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if p.returncode != 0:
            raise SystemExit("%s failed: %s%s" % (" ".join(argv), p.stdout, p.stderr))

    def psql(self, sql, database="smtpcell"):
        p = subprocess.run([os.path.join(self.bin, "psql"), "-At", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.dir,
                            "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit("psql %r: %s" % (sql, p.stderr))
        return p.stdout.strip()

    def cpu(self):
        """CPU seconds of the postmaster and every process it started, the
        exited ones included (its cutime/cstime), now."""
        tick = os.sysconf("SC_CLK_TCK")
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        total = 0
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.split("/")[2])
            if pid == postmaster:
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            elif int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def remove(self):
        self.run(["pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)
