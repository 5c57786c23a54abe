//! The `collector` command line on a real database: partners, CSV export,
//! migrate, an online backup taken while the server runs (SQLite; refused
//! with the way to do it on PostgreSQL), revocation, the configuration file,
//! keys' settings, the demo's key.

use e2e::http::Api;
use e2e::Collector;
use serde_json::{json, Value};
use std::process::Command;

#[tokio::test]
async fn partners_export_backup_migrate_and_revoke() {
    let c = Collector::start();
    let (pk, sk) = c.create_key(&["--mode", "live"]);
    let added = c.cli(&[
        "partners",
        "add",
        &pk,
        "--email",
        "alice@partners.example",
        "--partner-key",
        "alice",
    ]);
    assert!(added.contains("\"key\":\"alice\""), "{added}");
    let listed = c.cli(&["partners", "list", &pk]);
    assert_eq!(listed.lines().count(), 1);

    let api = Api::new(&c.url, &pk, &sk);
    let tricky = json!({"customer_key": "ann", "email": "ann@example.com", "name": "Ann \"Annie\", Jr.", "partner_key": "alice"});
    assert_eq!(api.call("POST", "customers", tricky).await.status, 200);
    let csv = c.cli(&["export", &pk, "customers"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("customer_key,email,name,partner_key,provider_key,source,created_at")
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("ann,ann@example.com,\"Ann \"\"Annie\"\", Jr.\",alice,,api,"),
        "{row}"
    );

    let version = c.cli(&["migrate"]);
    let number: i64 = version
        .trim()
        .strip_prefix("schema version ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{version}"));
    assert!(number >= 13, "{version}");
    assert_eq!(c.cli(&["migrate"]), version, "migrating again changes nothing");
    let copy = c.db.with_file_name("backup.db");
    let backup = Command::new(e2e::collector::binary())
        .args(["--db", &c.location, "backup", copy.to_str().unwrap()])
        .output()
        .unwrap();
    if e2e::collector::on_postgres() {
        // PostgreSQL is backed up with its own tools: said, not half done.
        assert_eq!(backup.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&backup.stderr).contains("pg_dump"));
    } else {
        // An online backup while the collector runs: a database of its own.
        assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
        let backed_up: i64 = rusqlite::Connection::open(&copy)
            .unwrap()
            .query_row("SELECT count(*) FROM customers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(backed_up, 1);
    }

    let pair = c.cli(&["keys", "create", "--pair", "--name", "shop2"]);
    assert!(pair.contains("pk_test_") && pair.contains("pk_live_"), "{pair}");
    c.cli(&["keys", "revoke", &pk]);
    assert_eq!(api.call("GET", "customers", Value::Null).await.status, 401);
    // Errors say what to do, and scripts see the failure.
    let out = Command::new(e2e::collector::binary())
        .args(["--db", &c.location, "keys", "revoke", &pk])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("collector keys list"));
}

/// The configuration file: it names the database and sets keys' settings;
/// a flag wins over it.
#[test]
fn a_config_file_sets_the_database_and_keys_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("configured.db");
    let run = |args: &[&str]| {
        let out = Command::new(e2e::collector::binary()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let created = run(&["--db", db.to_str().unwrap(), "keys", "create", "--name", "shop"]);
    let pk = created
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("public key: ")
        .to_owned();
    let config = dir.path().join("growsumo.toml");
    std::fs::write(
        &config,
        format!(
            "db = {db:?}\n\n[[keys]]\npublic_key = \"{pk}\"\norigins = [\"https://shop.example\"]\ncookie_domain = \"shop.example\"\nwindow_days = 30\nparams = [\"via\", \"ref:base64\"]\n"
        ),
    )
    .unwrap();
    run(&["--config", config.to_str().unwrap(), "migrate"]);
    let listed = run(&["--config", config.to_str().unwrap(), "keys", "list"]);
    let row = listed
        .lines()
        .find(|l| l.starts_with(&pk))
        .expect("the key, from the file's database");
    for part in [
        "30d",
        "shop.example",
        "param=via:text",
        "param=ref:base64",
        "origin=https://shop.example",
    ] {
        assert!(row.contains(part), "{part} in {row}");
    }
    let other = dir.path().join("other.db");
    let with_flag = |command: &'static [&'static str]| {
        run(&[
            &["--config", config.to_str().unwrap(), "--db", other.to_str().unwrap()],
            command,
        ]
        .concat())
    };
    // A new, empty database (only `migrate` and key creation make one).
    run(&["--db", other.to_str().unwrap(), "migrate"]);
    let flag_wins = with_flag(&["keys", "list"]);
    assert!(!flag_wins.contains(&pk), "{flag_wins}");
    std::fs::write(&config, "db = 7\n").unwrap();
    let bad = Command::new(e2e::collector::binary())
        .args(["--config", config.to_str().unwrap(), "keys", "list"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("config file"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// `keys set` changes only what it is given, and prints the result.
/// (Before: `keys set --window-days 30` also wiped the allowed origins and
/// link parameters, and the live site got 403.)
#[test]
fn keys_set_changes_only_the_settings_given() {
    let c = Collector::start();
    let (pk, _) = c.create_key(&[
        "--origin",
        "https://shop.example",
        "--param",
        "via",
        "--require-consent",
    ]);
    let printed = c.cli(&["keys", "set", &pk, "--window-days", "30"]);
    let line = printed
        .lines()
        .find(|l| l.starts_with(&pk))
        .expect("the key is printed");
    for kept in [
        "origin=https://shop.example",
        "param=via:text",
        "consent=required",
        " 30d ",
    ] {
        assert!(line.contains(kept), "{kept} in {line}");
    }
    let printed = c.cli(&["keys", "set", &pk, "--require-consent", "false"]);
    let line = printed.lines().find(|l| l.starts_with(&pk)).unwrap();
    assert!(
        !line.contains("consent=required") && line.contains("origin=https://shop.example"),
        "{line}"
    );
}

/// `serve --demo` never puts a live key on the demo site.
#[test]
fn the_demo_refuses_a_live_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let collector = |args: &[&str]| {
        Command::new(e2e::collector::binary())
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(collector(&["keys", "create", "--mode", "live", "--name", "demo"])
        .status
        .success());
    let served = collector(&["serve", "--demo", "--addr", "127.0.0.1:0"]);
    assert!(!served.status.success());
    let stderr = String::from_utf8_lossy(&served.stderr);
    assert!(stderr.contains("is a live key"), "{stderr}");
}
