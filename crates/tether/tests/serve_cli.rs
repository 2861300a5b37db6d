//! `tether serve` refuses to start without what it needs, with one clear message; `tether check`
//! tells every problem of a file; `tether token` prints a host token on its last line.

use std::process::Command;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "tether-serve-cli-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("tether.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{}/data/tether.db\"\n\
             [gateway.host_auth]\nissuer = \"https://host.example\"\naudience = \"tether\"\nhs256_secret_env = \"TETHER_TEST_JWT_SECRET\"\n",
            dir.display()
        ),
    )
    .expect("write config");
    path
}

fn tether() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
    command
        .env_remove("TETHER_ENCRYPTION_KEY")
        .env_remove("TETHER_TEST_JWT_SECRET")
        .env_remove("RUST_LOG");
    command
}

#[test]
fn serve_refuses_to_start_without_an_encryption_key_unless_dev() {
    let dir = temp_dir("nokey");
    let output = tether()
        .args(["serve", "--config"])
        .arg(config(&dir))
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TETHER_ENCRYPTION_KEY is not set"),
        "{stderr}"
    );
    assert!(
        !dir.join("data/tether.db").exists(),
        "nothing is created before the key check"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_and_bad_keys_are_one_clear_error() {
    let dir = temp_dir("bad");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_in_flight = 0\n").expect("write");
    let output = tether()
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_in_flight"), "{stderr}");

    let output = tether()
        .env("TETHER_ENCRYPTION_KEY", "not-a-key")
        .args(["serve", "--config"])
        .arg(config(&dir))
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TETHER_ENCRYPTION_KEY is not usable"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-a-key"),
        "the key is never echoed: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_prints_every_problem_of_a_file_and_fails() {
    let dir = temp_dir("check");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "public_url = \"not a url\"\n[limits]\nmax_in_flight = 0\n\
         [[servers]]\nname = \"a\"\nurl = \"https://a.example/mcp\"\n\
         [[servers]]\nname = \"a\"\nurl = \"https://b.example/mcp\"\n",
    )
    .expect("write");
    let output = tether()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "no settings printed for a bad file"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "max_in_flight",
        "configured twice",
        "could collide",
        "public_url",
        "4 problem(s)",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }

    let output = tether()
        .args(["check", "--config"])
        .arg(config(&dir))
        .output()
        .expect("runs");
    assert!(output.status.success(), "{output:?}");
    let settings = String::from_utf8_lossy(&output.stdout);
    assert!(settings.contains("stdio_init_timeout"), "{settings}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_prints_a_jwt_on_its_last_line() {
    let dir = temp_dir("token");
    let output = tether()
        .env(
            "TETHER_TEST_JWT_SECRET",
            "a-test-secret-that-is-long-enough-0123456789",
        )
        .args(["token", "--user", "alice", "--config"])
        .arg(config(&dir))
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("a line");
    assert_eq!(last.split('.').count(), 3, "a JWT: {last}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn rekey_reseals_stored_tokens_so_the_old_key_can_be_removed() {
    use tether_oauth::Secret;
    use tether_oauth::store::{TokenRecord, TokenVault};
    const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    let dir = temp_dir("rekey");
    let config = config(&dir);
    let url = format!("sqlite://{}/data/tether.db", dir.display());
    let pair = tether_core::PairKey::new("alice", "github");
    let record = TokenRecord {
        access_token: Secret::new("access-under-k1"),
        expires_at: None,
        scopes: vec![],
        refresh_token: Some(Secret::new("refresh-under-k1")),
        obtained_at: tether_core::Timestamp::from_millis(1),
        issuer: "https://as.example".into(),
        client_id: "c".into(),
        resource: "https://mcp.example/".into(),
    };
    let open = |keys: &'static str| {
        let url = url.clone();
        async move {
            tether_store::sql::SqlStore::open(
                &url,
                tether_store::crypto::Keyring::parse(keys).expect("keys"),
            )
            .await
            .expect("opens")
        }
    };
    let store = open(K1).await;
    TokenVault::put(&store, &pair, record).await.expect("saved");
    store.close().await;

    let run = |keys: String| {
        tether()
            .env("TETHER_ENCRYPTION_KEY", keys)
            .args(["rekey", "--config"])
            .arg(&config)
            .output()
            .expect("runs")
    };
    let output = run(format!("{K2},{K1}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(report["resealed"], 2, "{report}");
    assert_eq!(report["remaining_under_old_keys"], 0, "{report}");
    assert_eq!(report["current_key"], "k2", "{report}");

    let store = open(K2).await;
    let read = TokenVault::get(&store, &pair)
        .await
        .expect("opens with k2 alone");
    assert_eq!(
        read.and_then(|r| r.refresh_token)
            .map(|r| r.expose().to_owned())
            .as_deref(),
        Some("refresh-under-k1")
    );
    store.close().await;
    // Without the key that sealed them, values are not readable: reported, and a failure.
    let output = run("k3:AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=".to_owned());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("still sealed under keys other than k3"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
