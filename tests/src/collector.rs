//! A collector process for one test: its own SQLite file in a temp dir (or,
//! with `GROWSUMO_TEST_DB=postgres`, its own database on the tests'
//! PostgreSQL server, see `postgres`), an ephemeral port, the demo site on,
//! a clock the test can move forward (`advance_days`), killed when dropped.
//! `Collector::shop` also starts the merchant's own web server (`site`) in
//! front of it, as merchants deploy it.

use crate::site::Site;
use rusqlite::{Connection, OpenFlags};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Collector {
    pub url: String,
    /// The SQLite file (unused on PostgreSQL).
    pub db: PathBuf,
    /// The collector's `--db`: the SQLite file, or the PostgreSQL URL.
    pub location: String,
    /// The demo key's public key (the demo pages use it).
    pub public_key: String,
    /// Its secret key, when the test created the demo key (`start_with_key`).
    pub secret_key: Option<String>,
    /// The merchant's web server, when the test has one (`shop`).
    pub site: Option<Site>,
    child: Child,
    /// The file that shifts its clock (`advance_days`); shared by the
    /// collectors `another` starts on the same database.
    clock: PathBuf,
    /// Where the SQLite file and the clock file are, removed when dropped
    /// (none for a collector that `another` started).
    _dir: Option<tempfile::TempDir>,
    /// The `serve` arguments it was started with, kept by `restart` and `another`.
    serve_args: Vec<String>,
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
    /// Why it waits for the merchant's review, if it does.
    pub review: Option<String>,
    /// The partner a fingerprint match suggests (not credited).
    pub suggested: Option<String>,
}

/// Starts `collector serve --demo` on `addr` with database `db` (its clock
/// shifted by the file `clock` beside it); returns the process, its URL once
/// it prints "listening on", and the demo test key's secret (renewed at
/// every start), if it printed one.
fn spawn(db: &str, clock: &std::path::Path, addr: &str, args: &[&str]) -> (Child, String, Option<String>) {
    let mut child = Command::new(binary())
        .arg("--db")
        .arg(db)
        .args(["serve", "--demo", "--create", "--addr", addr])
        .arg("--clock-offset-file")
        .arg(clock)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the collector");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut demo_secret = None;
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            if let Some((_, secret)) = line.split_once("the demo's secret key ") {
                demo_secret = secret.strip_suffix(')').map(String::from);
            }
            line.strip_prefix("listening on ").map(String::from)
        })
        .expect("the collector exited before listening");
    // Keep draining stdout so the collector never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, url, demo_secret)
}

/// Whether the suites run on PostgreSQL (`GROWSUMO_TEST_DB=postgres`; the
/// default is SQLite).
pub fn on_postgres() -> bool {
    std::env::var("GROWSUMO_TEST_DB").is_ok_and(|v| v == "postgres")
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
        Self::start_with(&[])
    }

    /// Like `start`, with extra `serve` arguments.
    pub fn start_with(args: &[&str]) -> Collector {
        Self::start_full(None, &[], args)
    }

    /// Like `start`, on the database at `location` (a PostgreSQL URL or a
    /// SQLite file).
    pub fn start_on(location: &str) -> Collector {
        Self::start_full(Some(location.to_owned()), &[], &[])
    }

    /// Like `start_on`, with extra `serve` arguments (kept by `another`).
    pub fn start_on_with(location: &str, serve_args: &[&str]) -> Collector {
        Self::start_full(Some(location.to_owned()), &[], serve_args)
    }

    /// Another collector process on this one's database, as collectors
    /// behind a load balancer share one PostgreSQL: its own port, the same
    /// keys and clock.
    pub fn another(&self) -> Collector {
        let (child, url, _) = spawn(&self.location, &self.clock, "127.0.0.1:0", &self.serve_args());
        Collector {
            url,
            db: self.db.clone(),
            location: self.location.clone(),
            public_key: self.public_key.clone(),
            secret_key: self.secret_key.clone(),
            site: None,
            child,
            clock: self.clock.clone(),
            _dir: None,
            serve_args: self.serve_args.clone(),
        }
    }

    /// Like `start`, with the demo key created with these `keys create`
    /// settings (e.g. `--cookie-domain example.com`).
    pub fn start_with_key(key_args: &[&str]) -> Collector {
        Self::start_full(None, key_args, &[])
    }

    /// Like `start_with_key`, with extra `serve` arguments (kept by
    /// `restart` and `another`).
    pub fn start_with_key_and(key_args: &[&str], serve_args: &[&str]) -> Collector {
        Self::start_full(None, key_args, serve_args)
    }

    /// A merchant's site as merchants deploy it: the merchant's pages on
    /// their own web server (nginx, see `site`), the collector on another
    /// host behind it; the demo key allows the merchant's origins.
    pub fn shop() -> Collector {
        Self::shop_with_key(&[])
    }

    /// Like `shop`, with these `keys create` settings for the demo key.
    pub fn shop_with_key(key_args: &[&str]) -> Collector {
        Self::shop_with_key_and(key_args, &[])
    }

    /// Like `shop_with_key`, with extra `serve` arguments.
    pub fn shop_with_key_and(key_args: &[&str], serve_args: &[&str]) -> Collector {
        if on_postgres() {
            crate::postgres::ensure_started();
        }
        let ports = Site::ports();
        let origins = Site::origins(ports);
        let mut args: Vec<&str> = key_args.to_vec();
        for origin in &origins {
            args.extend(["--origin", origin.as_str()]);
        }
        // nginx on loopback is the trusted reverse proxy.
        let serve: Vec<&str> = [&["--trusted-proxy", "127.0.0.1"], serve_args].concat();
        let mut c = Self::start_full(None, &args, &serve);
        let port = c.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        c.site = Some(Site::start(ports, port, &c.public_key));
        c
    }

    /// A shop whose money moves: a live key with a 25% offer and Stripe
    /// webhooks signed with `stripe_secret`; with a merchant API client.
    pub fn shop_selling(stripe_secret: &str) -> (Collector, crate::http::Api) {
        let c = Self::shop_with_key(&["--mode", "live"]);
        let pk = c.public_key.clone();
        c.offer_quarter();
        c.cli(&["webhooks", "set", &pk, "--stripe-secret", stripe_secret]);
        let api = crate::http::Api::new(&c.url, &pk, c.secret_key.as_deref().expect("a shop key's secret"));
        (c, api)
    }

    /// Gives the key the offer "share": 25% of every payment.
    pub fn offer_quarter(&self) {
        self.cli(&[
            "offers",
            "set",
            &self.public_key,
            "--key",
            "share",
            "--kind",
            "percent",
            "--percent",
            "25",
        ]);
    }

    /// Signs in to the dashboard with `secret`; returns the session cookie
    /// (`name=value`).
    pub async fn dashboard_sign_in(&self, secret: &str) -> String {
        let answer = crate::http::send(
            "POST",
            &format!("{}/dashboard/sign-in", self.url),
            &[("content-type", "application/x-www-form-urlencoded")],
            format!("secret_key={secret}"),
        )
        .await;
        assert_eq!(answer.status, 303, "{}", String::from_utf8_lossy(&answer.body));
        let cookie = answer.headers["set-cookie"].to_str().expect("a session cookie");
        cookie.split(';').next().unwrap_or_default().to_owned()
    }

    /// The merchant's page base on `host` over `scheme` (a `shop` test).
    pub fn page(&self, scheme: &str, host: &str) -> String {
        self.site.as_ref().expect("a shop: Collector::shop").url(scheme, host)
    }

    /// The merchant's main site, `http://www.shop.test:…` (a `shop` test).
    pub fn shop_url(&self) -> String {
        self.page("http", "www.shop.test")
    }

    /// Starts the collector, on `location` or a new database; with
    /// `key_args`, on a key of its own named "shop" (any mode; `serve
    /// --demo` keeps a test key named "demo"), with the demo's
    /// partnerships `alice` and `bob`.
    fn start_full(location: Option<String>, key_args: &[&str], serve_args: &[&str]) -> Collector {
        let dir = tempfile::tempdir().expect("temp dir");
        let location = location.unwrap_or_else(|| match on_postgres() {
            true => crate::postgres::database(),
            false => dir.path().join("growsumo.db").display().to_string(),
        });
        let db = PathBuf::from(&location);
        let run = |args: &[&str]| {
            let out = Command::new(binary())
                .arg("--db")
                .arg(&location)
                .args(args)
                .output()
                .expect("run collector");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let mut shop = None;
        if !key_args.is_empty() {
            let created = run(&[&["keys", "create", "--name", "shop"], key_args].concat());
            let field = |label: &str| {
                created
                    .lines()
                    .find_map(|l| l.strip_prefix(label))
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(String::from)
                    .expect("keys create prints the pair")
            };
            let (public_key, secret_key) = (field("public key: "), field("secret key: "));
            for partner in ["alice", "bob"] {
                let email = format!("{partner}@demo.invalid");
                run(&[
                    "partners",
                    "add",
                    &public_key,
                    "--email",
                    &email,
                    "--partner-key",
                    partner,
                ]);
            }
            shop = Some((public_key, secret_key));
        }
        let clock = dir.path().join("clock");
        let (child, url, demo_secret) = spawn(&location, &clock, "127.0.0.1:0", serve_args);
        let mut c = Collector {
            url,
            db,
            location,
            public_key: String::new(),
            secret_key: None,
            site: None,
            child,
            clock,
            _dir: Some(dir),
            serve_args: serve_args.iter().map(|a| a.to_string()).collect(),
        };
        (c.public_key, c.secret_key) = match shop {
            Some((public_key, secret_key)) => (public_key, Some(secret_key)),
            None => (
                c.query_text("SELECT public_key FROM keys WHERE name = 'demo'"),
                demo_secret,
            ),
        };
        c
    }

    /// Creates a key pair with `collector keys create ARGS`; returns (public, secret).
    pub fn create_key(&self, args: &[&str]) -> (String, String) {
        let out = self.cli(&[&["keys", "create"], args].concat());
        let field = |label: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .map(String::from)
                .unwrap_or_else(|| panic!("no {label} in {out}"))
        };
        (field("public key: "), field("secret key: "))
    }

    /// The collector's `/metrics`, read as a local agent does: directly, from
    /// another loopback address than a trusted proxy's (127.0.0.1 is nginx's
    /// in shop tests, and its requests count as proxied).
    pub async fn metrics(&self) -> String {
        let agent = Some("127.0.0.2".parse().unwrap());
        let answer = crate::http::send_from(agent, "GET", &format!("{}/metrics", self.url), &[], "").await;
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        String::from_utf8(answer.body.to_vec()).expect("metrics are text")
    }

    /// The collector process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Moves the collector's clock to `days` days after the real time.
    pub fn advance_days(&self, days: i64) {
        self.advance_seconds(days * 86_400);
    }

    /// Moves the collector's clock to `seconds` after the real time.
    pub fn advance_seconds(&self, seconds: i64) {
        std::fs::write(&self.clock, seconds.to_string()).expect("write the clock file");
    }

    /// This collector's URL on another host name that resolves to it (the
    /// browser maps `*.example.com` and `*.shop.co.uk` to 127.0.0.1).
    pub fn url_on(&self, host: &str) -> String {
        let port = self.url.rsplit(':').next().expect("a port");
        format!("http://{host}:{port}")
    }

    /// Kills the process with SIGKILL (no chance to flush anything), keeping
    /// its database file and port for `restart`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process with SIGTERM and waits until it has exited; returns
    /// whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        sent && self.child.wait().is_ok_and(|s| s.success())
    }

    /// The `serve` arguments a restart keeps: those it started with (a
    /// shop's trusted proxy among them).
    fn serve_args(&self) -> Vec<&str> {
        self.serve_args.iter().map(String::as_str).collect()
    }

    /// Starts the collector again on the same port and database.
    pub fn restart(&mut self) {
        self.kill();
        let addr = self.url.trim_start_matches("http://").to_owned();
        let (child, url, demo_secret) = spawn(&self.location, &self.clock, &addr, &self.serve_args());
        assert_eq!(url, self.url);
        self.secret_key = demo_secret.or(self.secret_key.take());
        self.child = child;
    }

    /// Waits until `sql` (a count) reaches `want`, or fails after 20 s. The
    /// collector commits before it answers, so this waits for the browser to
    /// send, never for the collector to store.
    pub fn wait_for_count(&self, sql: &str, want: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let got = self.count(sql);
            if got == want {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{sql}: {got}, waited for {want}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// A read-only connection to the collector's SQLite file (tests of
    /// SQLite itself: its file, its WAL).
    pub fn db(&self) -> Connection {
        assert!(
            !self.location.starts_with("postgres"),
            "this test reads the SQLite file"
        );
        Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open db")
    }

    /// The first column of every row of `sql`, on either backend.
    pub fn column<T>(&self, sql: &str) -> Vec<T>
    where
        T: rusqlite::types::FromSql + for<'a> ::postgres::types::FromSql<'a> + Send,
    {
        if self.location.starts_with("postgres") {
            crate::postgres::blocking(|| {
                // (Without the URL's TLS settings: the harness reads over
                // loopback in the clear.)
                let url = self.location.split('?').next().unwrap_or_default();
                let mut client =
                    ::postgres::Client::connect(url, ::postgres::NoTls).expect("connect to the test database");
                let rows = client.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.iter().map(|r| r.get(0)).collect()
            })
        } else {
            let db = self.db();
            let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let rows = stmt
                .query_map([], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.map(|r| r.expect("a row")).collect()
        }
    }

    /// Runs `sql` (one or more statements) on the collector's database, on
    /// either backend, as an operator's own tool would.
    pub fn execute(&self, sql: &str) {
        if self.location.starts_with("postgres") {
            crate::postgres::blocking(|| {
                let url = self.location.split('?').next().unwrap_or_default();
                let mut client =
                    ::postgres::Client::connect(url, ::postgres::NoTls).expect("connect to the test database");
                client.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            })
        } else {
            let db = Connection::open(&self.db).expect("open db");
            db.busy_timeout(std::time::Duration::from_secs(5))
                .expect("busy timeout");
            db.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    /// The first column of `sql`'s first row, on either backend.
    fn first<T>(&self, sql: &str) -> T
    where
        T: rusqlite::types::FromSql + for<'a> ::postgres::types::FromSql<'a> + Send,
    {
        self.column(sql)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }

    /// The first column of every row of `sql`, as text (NULL: "").
    pub fn texts(&self, sql: &str) -> Vec<String> {
        self.column::<Option<String>>(sql)
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }

    /// `sql`'s text answer, on either backend.
    pub fn query_text(&self, sql: &str) -> String {
        self.first(sql)
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
                    review: text(&row["review"]),
                    suggested: text(&row["suggested_partner_key"]),
                }
            })
            .collect();
        customers.reverse();
        customers
    }

    /// Who the customer `email` was credited to: "alice via xid", "nobody",
    /// with what waits for the merchant's review: "zed via xid (review:
    /// unknown_partner)", "nobody (alice suggested)".
    pub fn credited(&self, email: &str) -> String {
        let customers = self.customers();
        let Some(customer) = customers.iter().find(|c| c.email == email) else {
            return format!("no customer {email}");
        };
        let credit = match (&customer.partner_key, &customer.source) {
            (Some(partner), Some(source)) => format!("{partner} via {source}"),
            _ => "nobody".into(),
        };
        match (&customer.review, &customer.suggested) {
            (_, Some(suggested)) => format!("{credit} ({suggested} suggested)"),
            (Some(review), None) => format!("{credit} (review: {review})"),
            (None, None) => credit,
        }
    }

    /// `sql`'s number (a count), on either backend.
    pub fn count(&self, sql: &str) -> i64 {
        self.first(sql)
    }

    /// Runs a `collector` CLI command on this collector's database; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(binary())
            .arg("--db")
            .arg(&self.location)
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
