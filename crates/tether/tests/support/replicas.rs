//! Two gateway processes of one deployment: the same PostgreSQL database, the same Redis key
//! prefix, the same public URL (the load balancer's address, here replica 1's), each with its
//! own directory for configuration and logs.

use std::path::Path;

use super::gateway_process::{GatewayProcess, Launch, TempDir, config_with, free_port};

/// What the replicas of one deployment share.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub postgres_url: String,
    pub redis_url: String,
    /// A Redis key prefix of this test alone, so parallel tests never collide.
    pub prefix: String,
    /// Lines for the `[oauth]` table (`refresh_ahead = "0s"`).
    pub oauth_extra: String,
}

impl Deployment {
    /// A fresh database on the machine's PostgreSQL and a fresh prefix on `redis_url`.
    pub async fn new(label: &str, redis_url: &str) -> Self {
        let postgres_url = tether_testkit::services::postgres_database(label)
            .await
            .expect("a test database on the machine's PostgreSQL (127.0.0.1:5432)");
        Self::on(label, postgres_url, redis_url)
    }

    /// The database at `postgres_url` and a fresh prefix on `redis_url`.
    pub fn on(label: &str, postgres_url: String, redis_url: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Self {
            postgres_url,
            redis_url: redis_url.to_owned(),
            prefix: format!("tether-e2e-{label}-{}-{nanos}", std::process::id()),
            oauth_extra: String::new(),
        }
    }

    /// A replica's configuration: `public_url` and the shared storage and state, the extra
    /// `[oauth]` lines, then the common e2e parts and `rest`.
    pub fn config(&self, public_url: &str, rest: &str) -> String {
        let head = format!(
            "public_url = \"{public_url}\"\n\n[storage]\nurl = \"{}\"\n\n[state]\nurl = \"{}\"\nprefix = \"{}\"\n",
            self.postgres_url, self.redis_url, self.prefix
        );
        config_with(&head, &self.oauth_extra, rest)
    }
}

/// Two replicas behind one public URL.
pub struct Pair {
    pub one: GatewayProcess,
    pub two: GatewayProcess,
    /// The public URL both use (replica 1's address: the callback's "load balancer").
    pub public_url: String,
    pub dirs: (TempDir, TempDir),
}

/// Ports for two replicas and the public URL, decided before the OAuth peers are started
/// (their static clients need the redirect URI).
pub struct Ports {
    pub one: u16,
    pub two: u16,
}

impl Ports {
    pub async fn new() -> Self {
        Self {
            one: free_port().await,
            two: free_port().await,
        }
    }

    pub fn public_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.one)
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth/callback", self.public_url())
    }
}

impl Pair {
    /// Starts replica 1 and replica 2 of `deployment` with the same `rest`; `env` goes to both.
    pub async fn start(
        label: &str,
        deployment: &Deployment,
        ports: &Ports,
        rest: &str,
        env: &[(String, String)],
    ) -> Self {
        let public_url = ports.public_url();
        let dirs = (
            TempDir::new(&format!("{label}-r1")),
            TempDir::new(&format!("{label}-r2")),
        );
        let launch = |dir: &Path, port: u16| {
            let mut launch = Launch::new(dir);
            launch.listen = format!("127.0.0.1:{port}");
            launch.rust_log = "info,tether=debug,tether_oauth=debug".to_owned();
            launch.env = env.to_vec();
            launch
        };
        let one = GatewayProcess::start(
            &launch(&dirs.0.path, ports.one),
            &deployment.config(&public_url, rest),
        )
        .await;
        let two = GatewayProcess::start(
            &launch(&dirs.1.path, ports.two),
            &deployment.config(&public_url, rest),
        )
        .await;
        Self {
            one,
            two,
            public_url,
            dirs,
        }
    }

    /// Both replicas' logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- replica 1 ---\n{}\n--- replica 2 ---\n{}",
            super::gateway_process::tail(&self.one.logs(), 30),
            super::gateway_process::tail(&self.two.logs(), 30)
        )
    }
}
