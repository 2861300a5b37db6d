//! The shared-state services as tests need them: a fresh database on the machine's PostgreSQL,
//! and private `redis-server` / PostgreSQL instances on free loopback ports that a test may stop
//! and start again without disturbing any other test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// The machine's PostgreSQL (trust auth), as the development and CI machines run it; the
/// environment variable `TETHER_TEST_POSTGRES` overrides it.
pub const POSTGRES_ADMIN_DEFAULT: &str = "postgres://root@127.0.0.1:5432/postgres";

/// How long a private service may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn unique(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let clean: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!("{clean}_{}_{nanos}", std::process::id())
}

/// A loopback port that was free a moment ago.
pub async fn free_port() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

async fn wait_until_listening(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what} on port {port} did not answer within {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates an empty database named after `label` on the machine's PostgreSQL and returns its
/// URL. Databases are left behind (each name is unique; CI machines are fresh).
pub async fn postgres_database(label: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let admin =
        std::env::var("TETHER_TEST_POSTGRES").unwrap_or_else(|_| POSTGRES_ADMIN_DEFAULT.to_owned());
    let name = format!("tether_e2e_{}", unique(label));
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .with_context(|| format!("PostgreSQL must answer at {admin} (trust auth)"))?;
    sqlx::Executor::execute(&mut connection, format!("CREATE DATABASE {name}").as_str())
        .await
        .context("creating a test database")?;
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .context("the admin URL names a database")?;
    Ok(format!("{base}/{name}"))
}

// ---------------------------------------------------------------------------------------------

/// A `redis-server` of one test, keeping nothing on disk. Killed on drop.
#[derive(Debug)]
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> anyhow::Result<Self> {
        let port = free_port().await?;
        let mut redis = Self { port, child: None };
        redis.start_again().await?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data is gone: it keeps nothing on disk).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("redis-server is installed (it runs the shared Redis too)")?;
        self.child = Some(child);
        wait_until_listening(self.port, "redis-server").await
    }
}

// ---------------------------------------------------------------------------------------------

/// A PostgreSQL cluster of one test (`initdb` in a temporary directory, trust auth, user
/// `root`), on a free loopback port: a test can stop and start it like an operator restarting
/// the database. Stopped and deleted on drop.
///
/// As root (CI), the server runs as the `postgres` system user, which PostgreSQL requires.
#[derive(Debug)]
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres_user: bool,
}

impl PrivatePostgres {
    pub async fn start() -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let dir = std::env::temp_dir().join(format!("tether-pg-{}", unique("cluster")));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let as_postgres_user = is_root();
        let pg = Self {
            port: free_port().await?,
            dir,
            bin,
            as_postgres_user,
        };
        if as_postgres_user {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(&pg.dir)
                .status()
                .await?;
            if !status.success() {
                bail!("chown postgres {} failed", pg.dir.display());
            }
        }
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-A",
                "trust",
                "-U",
                "root",
                "--no-sync",
            ],
        )
        .await?;
        pg.start_again().await?;
        Ok(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `postgres://root@127.0.0.1:{port}/postgres`
    pub fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) on its port.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        let data = self.data_dir();
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            path_str(&self.dir)?
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-o",
                &options,
                "-l",
                path_str(&log)?,
                "-w",
                "start",
            ],
        )
        .await?;
        wait_until_listening(self.port, "PostgreSQL").await
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub async fn stop(&self) -> anyhow::Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data)?, "-m", "fast", "-w", "stop"],
        )
        .await
    }

    async fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {}", program.display()))?;
        if !output.status.success() {
            bail!(
                "{tool} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres_user {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            std::process::Command::new(&program)
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory of `initdb` and `pg_ctl`: Debian keeps them off `PATH` under
/// `/usr/lib/postgresql/{version}/bin`.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    if let Some(newest) = candidates.pop() {
        return Ok(newest);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    bail!("PostgreSQL's initdb and pg_ctl were not found (Debian package postgresql)")
}
