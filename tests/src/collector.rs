//! A collector process for one test: its own SQLite file in a temp dir, an
//! ephemeral port, the demo site on, killed when dropped.

use rusqlite::{Connection, OpenFlags};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Collector {
    pub url: String,
    pub db: PathBuf,
    /// The demo key's public key (the demo pages use it).
    pub public_key: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A stored customer line item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub customer_key: String,
    pub email: String,
    pub name: String,
    pub partner_key: Option<String>,
    pub xid: Option<String>,
    pub source: Option<String>,
}

/// The collector binary: `COLLECTOR_BIN`, else the workspace's debug build
/// (`cargo xtask test` builds it with the snippet embedded).
pub fn binary() -> PathBuf {
    let bin = std::env::var_os("COLLECTOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::target_dir().join("debug/collector"));
    assert!(
        bin.exists(),
        "no collector binary at {}: run `cargo xtask test`",
        bin.display()
    );
    bin
}

impl Collector {
    /// Starts `collector serve --demo` and waits for its "listening on" line.
    pub fn start() -> Collector {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("growsumo.db");
        let mut child = Command::new(binary())
            .arg("--db")
            .arg(&db)
            .args(["serve", "--demo", "--addr", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the collector");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("listening on ").map(String::from))
            .expect("the collector exited before listening");
        // Keep draining stdout so the collector never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let public_key = Self::query_demo_key(&db);
        Collector {
            url,
            db,
            public_key,
            child,
            _dir: dir,
        }
    }

    fn query_demo_key(db: &PathBuf) -> String {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open db");
        conn.query_row("SELECT public_key FROM keys WHERE name = 'demo'", [], |r| r.get(0))
            .expect("the demo key exists")
    }

    /// A read-only connection to the collector's database file.
    pub fn db(&self) -> Connection {
        Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open db")
    }

    /// The stored customers, oldest first, as `collector customers list --json` prints them.
    pub fn customers(&self) -> Vec<Customer> {
        let text = |v: &serde_json::Value| v.as_str().map(String::from);
        let mut customers: Vec<Customer> = self
            .cli(&["customers", "list", "--json"])
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                Customer {
                    customer_key: text(&row["customer_key"]).unwrap(),
                    email: text(&row["email"]).unwrap(),
                    name: text(&row["name"]).unwrap(),
                    partner_key: text(&row["partner_key"]),
                    xid: text(&row["xid"]),
                    source: text(&row["source"]),
                }
            })
            .collect();
        customers.reverse();
        customers
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Runs a `collector` CLI command on this collector's database; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(binary())
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .output()
            .expect("run collector");
        assert!(
            out.status.success(),
            "collector {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
