//! The PostgreSQL fixture itself (tests/harness/postgres.rs): a cluster
//! starts, the `smtpcell` role can create its schema through `url()`,
//! data survives a restart and a SIGKILL, and a synchronous standby holds
//! every committed row when the primary is killed and it is promoted, and
//! the multi-host URL then reaches it.

use std::process::Command;

use smtpcell_tests::postgres::{Postgres, bindir, multi_host_url};

/// Runs `sql` through libpq with `url` (as the role the URL names) and
/// returns psql's `-At` output.
fn psql_url(url: &str, sql: &str) -> String {
    let out = Command::new(bindir().join("psql"))
        .args(["-At", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim_end().to_string()
}

#[test]
fn a_cluster_starts_serves_the_smtpcell_role_and_survives_restarts() {
    let pg = Postgres::start();
    assert_eq!(pg.url(), format!("postgres://smtpcell@127.0.0.1:{}/smtpcell", pg.port()));
    assert_eq!(pg.psql("SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('listen_addresses')"), "on|on|127.0.0.1");

    // The role owns its database: it can create tables as migrations do.
    psql_url(&pg.url(), "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, v text)");
    psql_url(&pg.url(), "INSERT INTO t (v) VALUES ('before stop')");
    assert_eq!(psql_url(&pg.url(), "SELECT current_user, count(*) FROM t"), "smtpcell|1");

    pg.stop();
    let refused =
        Command::new(bindir().join("psql")).args(["-At", "-X", &pg.url(), "-c", "SELECT 1"]).output().unwrap();
    assert!(!refused.status.success(), "a stopped cluster still answers");
    pg.restart();
    psql_url(&pg.url(), "INSERT INTO t (v) VALUES ('before kill')");

    pg.kill9();
    pg.restart();
    assert_eq!(pg.psql("SELECT string_agg(v, ',' ORDER BY id) FROM t"), "before stop,before kill");
}

#[test]
fn a_synchronous_standby_keeps_every_commit_through_a_kill_and_promotion() {
    let primary = Postgres::start();
    primary.psql("CREATE TABLE t (id bigint PRIMARY KEY)");
    let standby = primary.standby();
    assert_ne!(standby.port(), primary.port());
    assert_eq!(primary.psql("SHOW synchronous_standby_names"), format!("\"standby_{}\"", standby.port()));
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "t");

    // Each INSERT commits on its own: COMMIT returned only after the
    // standby flushed it, so all 200 must be there after the kill.
    for id in 0..200 {
        primary.psql(&format!("INSERT INTO t VALUES ({id})"));
    }
    primary.kill9();
    standby.promote();
    assert_eq!(standby.psql("SELECT count(*), min(id), max(id) FROM t"), "200|0|199");

    // The promoted cluster has no synchronous standby of its own, so its
    // commits do not wait; libpq skips the dead primary in the URL list.
    let url = multi_host_url(&[&primary, &standby]);
    assert_eq!(
        url,
        format!(
            "postgres://smtpcell@127.0.0.1:{},127.0.0.1:{}/smtpcell?target_session_attrs=read-write",
            primary.port(),
            standby.port()
        )
    );
    standby.psql("GRANT ALL ON t TO smtpcell");
    assert_eq!(psql_url(&url, "INSERT INTO t VALUES (200) RETURNING inet_server_port()"), standby.port().to_string());
}
