//! A throwaway PostgreSQL server for the tests: Debian's server programs
//! (installed by `cargo xtask test`), a cluster made by `initdb` under
//! `target/postgres/`, listening on a free loopback port, one per test
//! process and started on first use. Each test gets a database of its own
//! (`database()`). A test that stops and restarts its server has a
//! cluster of its own (`Cluster::start`).
//!
//! Nothing is left running: the server is started with a parent-death
//! signal from a thread that lives as long as the test process, so it stops
//! (fast shutdown) when the process ends, however it ends; its directory is
//! removed by the next test process that starts one.
//!
//! As root (CI), the server runs as Debian's `postgres` user: `initdb`
//! refuses root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A PostgreSQL server of the tests': its cluster's directory and port.
pub struct Cluster {
    port: u16,
    dir: PathBuf,
    user: Option<(u32, u32)>,
    /// Whether commits reach the disk (`fsync`): the benchmarks' server;
    /// the tests' skips it, for speed (a test never crashes the machine).
    durable: bool,
    /// Whether it takes TLS connections, with a certificate for `localhost`
    /// signed by the CA in `ca.pem` beside its data.
    tls: bool,
    /// The running server's process id, and what tells that it exited.
    running: Mutex<Option<(u32, mpsc::Receiver<()>)>>,
}

static SERVER: OnceLock<Cluster> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);
static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// Starts the test process's server if it is not running: before a test
/// picks free ports for other servers, so it cannot take one of them.
pub fn ensure_started() {
    blocking(|| {
        SERVER.get_or_init(|| Cluster::make(false, false));
    })
}

/// The URL of a new, empty database on the test process's server.
pub fn database() -> String {
    blocking(|| SERVER.get_or_init(|| Cluster::make(false, false)).database())
}

/// Runs `f` on a thread of its own: the `postgres` client runs a runtime of
/// its own, which may not start inside a test's tokio runtime.
pub fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().expect("a PostgreSQL call panicked"))
}

fn url(port: u16, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{database}")
}

fn connect(port: u16, database: &str) -> Result<postgres::Client, postgres::Error> {
    postgres::Client::connect(&url(port, database), postgres::NoTls)
}

impl Cluster {
    /// A server of the calling test's own, which it may stop and restart.
    pub fn start() -> Cluster {
        blocking(|| Cluster::make(false, false))
    }

    /// A server that also takes TLS connections, its certificate (for
    /// `localhost`) signed by a CA of its own: `ca()`.
    pub fn start_tls() -> Cluster {
        blocking(|| Cluster::make(false, true))
    }

    /// The CA file that vouches for a TLS server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server whose commits reach the disk, as deployed: for benchmarks.
    pub fn start_durable() -> Cluster {
        blocking(|| Cluster::make(true, false))
    }

    /// The URL of a new, empty database on this server.
    pub fn database(&self) -> String {
        blocking(|| {
            let name = format!("t{}", DATABASES.fetch_add(1, Ordering::Relaxed));
            let mut admin = connect(self.port, "postgres").expect("connecting to the test server");
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("creating a test database");
            url(self.port, &name)
        })
    }

    /// Stops the server (fast shutdown: clients are disconnected, what was
    /// committed is kept) and waits until it has exited.
    pub fn stop(&self) {
        let Some((pid, exited)) = self.running.lock().unwrap().take() else {
            return;
        };
        // SAFETY: kill has no memory preconditions; pid is our child's.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        exited
            .recv_timeout(Duration::from_secs(30))
            .expect("PostgreSQL did not stop");
    }

    /// Starts the server again on the same port and data, and waits until
    /// it takes connections.
    pub fn resume(&self) {
        let bin = programs();
        *self.running.lock().unwrap() = Some(spawn_server(&bin.join("postgres"), self));
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = blocking(|| connect(self.port, "postgres").map(drop)) {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {e} (see {})",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn make(durable: bool, tls: bool) -> Cluster {
        let bin = programs();
        let user = server_user();
        let clusters = crate::target_dir().join("postgres");
        // The clusters of test processes that have ended.
        for old in std::fs::read_dir(&clusters).into_iter().flatten().flatten() {
            let ended = old
                .file_name()
                .to_str()
                .and_then(|name| name.split('-').next()?.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists());
            if ended {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let dir = clusters.join(format!("{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the cluster's directory");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("giving the cluster's directory to postgres");
        }
        let init = as_server_user(&mut Command::new(bin.join("initdb")), user)
            .args([
                "--auth",
                "trust",
                "--username",
                "postgres",
                "--no-sync",
                "--encoding",
                "UTF8",
            ])
            .arg("--pgdata")
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .output()
            .expect("running initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        if tls {
            certificates(&dir, user);
        }
        let cluster = Cluster {
            port: crate::site::free_port(),
            dir,
            user,
            durable,
            tls,
            running: Mutex::new(None),
        };
        cluster.resume();
        cluster
    }
}

/// The directory of the newest PostgreSQL's programs Debian installed.
fn programs() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|v| v.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .expect("PostgreSQL's server is not installed: `cargo xtask test` installs it (Debian's postgresql)")
}

/// The user the server runs as: Debian's `postgres` when the tests run as
/// root, else the tests' own.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let out = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

fn as_server_user(command: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

/// A CA (`ca.pem`) and the server's certificate for `localhost` signed by
/// it (`server.pem`, `server.key`, readable by `user` only, as PostgreSQL
/// wants), in `dir` (a cluster's; a TLS webhook receiver's); made with
/// the openssl command line.
pub fn certificates(dir: &Path, user: Option<(u32, u32)>) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is not installed: run `cargo xtask test`, which installs it");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let subject = |cn: &str| format!("/CN={cn}");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        &subject("growsumo test CA"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        &subject("localhost"),
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("writing the certificate's extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    for file in ["server.pem", "server.key"] {
        let path = dir.join(file);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("giving the key to postgres");
        }
    }
}

/// Starts the server from a thread that waits for it, with a parent-death
/// signal (SIGINT: fast shutdown), so it stops with the test process: the
/// signal follows the thread that started it, not the process. Answers its
/// process id, and a receiver that hears once it has exited.
fn spawn_server(postgres: &Path, cluster: &Cluster) -> (u32, mpsc::Receiver<()>) {
    let (dir, port, user) = (&cluster.dir, cluster.port, cluster.user);
    let (started, child) = mpsc::channel::<std::io::Result<u32>>();
    let (exit, exited) = mpsc::channel();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("the server's log");
    let mut command = Command::new(postgres);
    as_server_user(&mut command, user)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
        // No socket file: the tests connect over TCP, and a socket path
        // under `target/` may be longer than a socket name can be.
        .args(["-c", "unix_socket_directories="])
        .args(["-c", if cluster.durable { "fsync=on" } else { "fsync=off" }]);
    if cluster.tls {
        command.args(["-c", "ssl=on", "-c"]);
        command.arg(format!("ssl_cert_file={}", dir.join("server.pem").display()));
        command
            .arg("-c")
            .arg(format!("ssl_key_file={}", dir.join("server.key").display()));
    }
    command
        .args(["-c", "max_connections=200"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    std::thread::Builder::new()
        .name("postgres".into())
        .spawn(move || {
            // The thread lives as long as the child (and so does its
            // parent-death signal).
            match command.spawn() {
                Ok(mut server) => {
                    let _ = started.send(Ok(server.id()));
                    let _ = server.wait();
                    let _ = exit.send(());
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            }
        })
        .expect("the thread that owns the PostgreSQL server");
    let pid = child.recv().expect("the server's thread").expect("starting PostgreSQL");
    (pid, exited)
}
