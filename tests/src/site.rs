//! The merchant's web server, as merchants deploy one: a real nginx (Debian's
//! package, installed by `cargo xtask test`) serving the demo site's pages on
//! the shop's own host names, over http and https (a certificate made for the
//! test), in front of a collector on a host of its own. One nginx per test,
//! in a temp dir, on ports of its own; stopped when dropped.
//!
//! Host names (Chromium maps them all to 127.0.0.1, see `browser`):
//! - `www.shop.test`, `app.shop.test`: the merchant; the collector is
//!   `collector.test` (another site: the README's main install);
//! - `www.example.com`, `app.example.com`, `www.shop.co.uk`, …: the merchant,
//!   with the collector on a subdomain of the shop (`collector.example.com`);
//! - `www.proxied.test`: the merchant proxies `/_ps/` to the collector (the
//!   first-party install), and its pages load the snippet from `/_ps/v1/`;
//! - `strict.shop.test`: every page has a strict Content-Security-Policy
//!   (scripts by nonce, the collector, `'wasm-unsafe-eval'`);
//!   `nowasm.shop.test`: the same policy without `'wasm-unsafe-eval'`, on
//!   every page but `signup.html` (a later page without the restriction);
//! - `collector.*`: the collector itself, through nginx (which adds
//!   `X-Forwarded-For` and `X-Forwarded-Proto`, like any reverse proxy).
//!
//! A third port serves the same over http as if from another client network:
//! nginx tells the collector the visitor's address is `ELSEWHERE` (as a proxy
//! in front of a visitor on another network would), so attribution tests
//! have two real client networks on one machine.
//!
//! The pages are the demo's own files; nginx fills in `{{PUBLIC_KEY}}` and
//! `{{COLLECTOR}}` as the merchant's copy of the embed code would have them.

use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every host name a test page may be on (the key allows them all).
pub const MERCHANT_HOSTS: &[&str] = &[
    "www.shop.test",
    "app.shop.test",
    "www.proxied.test",
    "strict.shop.test",
    "nowasm.shop.test",
    "www.example.com",
    "app.example.com",
    "www.shop.co.uk",
    "app.shop.co.uk",
];

/// The nonce nginx puts on the pages' inline scripts under the strict CSP.
pub const NONCE: &str = "growsumo-test-nonce";

/// The client address visitors on the "elsewhere" port come from (another
/// /24 than loopback's 127.0.0.1).
pub const ELSEWHERE: &str = "127.0.2.1";

/// The site's ports: http, https, and http from another client network.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub https: u16,
    pub elsewhere: u16,
}

pub struct Site {
    pub ports: Ports,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A port free now (the OS picks it; nginx binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Site {
    /// Ports for a site about to start: the key's allowed origins need them
    /// before the collector (and so the site) runs.
    pub fn ports() -> Ports {
        // Held together while chosen: one at a time, the system may hand the
        // same port out twice (nginx then refuses a duplicate listen).
        let held: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
            .collect();
        let port = |i: usize| held[i].local_addr().expect("a bound port").port();
        Ports {
            http: port(0),
            https: port(1),
            elsewhere: port(2),
        }
    }

    /// The allowed origins of the test key: every merchant host on every port.
    pub fn origins(ports: Ports) -> Vec<String> {
        MERCHANT_HOSTS
            .iter()
            .flat_map(|host| {
                [
                    format!("http://{host}:{}", ports.http),
                    format!("https://{host}:{}", ports.https),
                    format!("http://{host}:{}", ports.elsewhere),
                ]
            })
            .collect()
    }

    /// Starts nginx on `ports`, in front of the collector on `collector_port`,
    /// serving the demo pages with `public_key`; returns once both ports
    /// take connections.
    pub fn start(ports: Ports, collector_port: u16, public_key: &str) -> Site {
        let Ports {
            http: http_port,
            https: https_port,
            elsewhere,
        } = ports;
        let dir = tempfile::tempdir().expect("temp dir");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www-demo");
        let root = root.canonicalize().expect("the demo site");
        certificate(dir.path());
        let d = dir.path().display();
        // Workers run as root when the tests do: the temp dir is not for `nobody`.
        let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let user = if is_root { "user root;" } else { "" };
        let conf = format!(
            r#"{user}
# One process: killing it (on drop) leaves no worker behind.
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    types {{ text/html html; text/css css; application/javascript js; }}
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    ssl_certificate {d}/cert.pem;
    ssl_certificate_key {d}/key.pem;
    upstream collector {{ server 127.0.0.1:{collector_port} max_fails=0; }}
    map $host $collector {{
        www.proxied.test /_ps;
        ~\.example\.com$ $scheme://collector.example.com:$server_port;
        ~\.shop\.co\.uk$ $scheme://collector.shop.co.uk:$server_port;
        default $scheme://collector.test:$server_port;
    }}
    map $host$uri $csp {{
        ~^strict\.shop\.test/ "default-src 'self'; script-src 'nonce-{NONCE}' $collector 'wasm-unsafe-eval'; connect-src 'self' $collector; style-src 'self'";
        ~^nowasm\.shop\.test/(?!signup\.html) "default-src 'self'; script-src 'nonce-{NONCE}' $collector; connect-src 'self' $collector; style-src 'self'";
        default "";
    }}
    map $server_port $client {{
        {elsewhere} {ELSEWHERE};
        default $proxy_add_x_forwarded_for;
    }}
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $client;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Connection "";
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        listen 127.0.0.1:{elsewhere};
        server_name _;
        root {root};
        add_header Content-Security-Policy $csp;
        sub_filter_once off;
        sub_filter "{{{{PUBLIC_KEY}}}}" "{public_key}";
        sub_filter "{{{{COLLECTOR}}}}" "$collector";
        sub_filter "<script>" "<script nonce=\"{NONCE}\">";
        location /_ps/ {{ proxy_pass http://collector/; }}
    }}
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        listen 127.0.0.1:{elsewhere};
        server_name ~^collector\.;
        location / {{ proxy_pass http://collector; }}
    }}
}}
"#,
            root = root.display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx is not installed: run `cargo xtask test`, which installs it");
        let mut site = Site {
            ports,
            child,
            _dir: dir,
        };
        site.wait_until_listening();
        site
    }

    /// Waits (at most 10 s) until nginx accepts connections on both ports,
    /// or fails with its error log if it exits.
    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [self.ports.http, self.ports.https, self.ports.elsewhere] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    let log = std::fs::read_to_string(self._dir.path().join("error.log")).unwrap_or_default();
                    panic!("nginx exited ({status}) before listening:\n{log}");
                }
                assert!(Instant::now() < deadline, "nginx did not listen on {port} within 10 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The base URL of `host` on this site, over `scheme`: "http", "https",
    /// or "elsewhere" (http, the visitor on another client network).
    pub fn url(&self, scheme: &str, host: &str) -> String {
        match scheme {
            "https" => format!("https://{host}:{}", self.ports.https),
            "elsewhere" => format!("http://{host}:{}", self.ports.elsewhere),
            _ => format!("http://{host}:{}", self.ports.http),
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
fn nginx() -> String {
    std::env::var("NGINX").unwrap_or_else(|_| {
        if Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx".into()
        } else {
            "nginx".into()
        }
    })
}

/// A self-signed certificate for every test host name (Chromium runs with
/// `--ignore-certificate-errors`), made with the openssl command line.
fn certificate(dir: &Path) {
    let names = "DNS:*.shop.test,DNS:collector.test,DNS:*.proxied.test,DNS:*.example.com,DNS:*.shop.co.uk";
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=shop.test"])
        .arg("-addext")
        .arg(format!("subjectAltName={names}"))
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl is not installed: run `cargo xtask test`, which installs it");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
