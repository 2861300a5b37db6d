//! Starting a stdio MCP server as a child process.

use std::process::Stdio;

use process_wrap::tokio::{CommandWrap, ProcessGroup};
use rmcp::transport::TokioChildProcess;
use tether_core::{ConnectError, ServerName, TransportFailure};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tracing::debug;

/// Variables a child inherits from the gateway; everything else is withheld. The gateway's
/// environment holds its own secrets (signing keys, database URLs), which a third-party MCP
/// server has no business seeing. Same list as the reference MCP SDKs' default environment.
const INHERITED_ENV: &[&str] = &["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// Longest stderr line forwarded to the log; the rest of the line is dropped, so a child that
/// never writes a newline cannot make us buffer without bound.
const MAX_STDERR_LINE: usize = 4096;

/// Spawns `command args…` in its own process group (so closing the session also ends whatever
/// it spawned, e.g. `npx` → `node`) and forwards its stderr to the log.
pub(crate) fn spawn(
    server: &ServerName,
    command: &str,
    args: &[String],
) -> Result<TokioChildProcess, ConnectError> {
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args).env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    let mut wrapped = CommandWrap::from(cmd);
    wrapped.wrap(ProcessGroup::leader());
    let (child, stderr) = TokioChildProcess::builder(wrapped)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            // The command line is the operator's configuration, not secret, but arguments can
            // hold tokens; only the I/O error kind is reported.
            ConnectError::transport(
                TransportFailure::Network,
                format!("could not start the server process ({})", e.kind()),
            )
        })?;
    if let Some(stderr) = stderr {
        tokio::spawn(forward_stderr(server.clone(), stderr));
    }
    Ok(child)
}

/// Logs the child's stderr line by line until it closes (the child exits or is killed).
async fn forward_stderr(server: ServerName, stderr: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_bounded_line(&mut reader, &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                debug!(server = %server, line = %text.trim_end(), "stdio server stderr");
            }
        }
    }
}

/// Reads one line into `out` keeping at most [`MAX_STDERR_LINE`] bytes; returns the bytes
/// consumed (0 at end of stream).
async fn read_bounded_line(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = MAX_STDERR_LINE.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        reader.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_cut_and_the_rest_is_consumed() {
        let mut input = vec![b'a'; MAX_STDERR_LINE * 3];
        input.extend_from_slice(b"\nnext\n");
        let mut reader = BufReader::new(&input[..]);
        let mut line = Vec::new();
        let n = read_bounded_line(&mut reader, &mut line)
            .await
            .expect("reads");
        assert_eq!(n, MAX_STDERR_LINE * 3 + 1);
        assert_eq!(line.len(), MAX_STDERR_LINE);
        line.clear();
        read_bounded_line(&mut reader, &mut line)
            .await
            .expect("reads");
        assert_eq!(line, b"next\n");
        line.clear();
        assert_eq!(
            read_bounded_line(&mut reader, &mut line)
                .await
                .expect("reads"),
            0
        );
    }
}
