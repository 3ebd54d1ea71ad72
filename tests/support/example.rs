//! The examples as processes: the binary Cargo built next to the test binary (refused with
//! a hint when missing or older than its sources), started on 127.0.0.1 and killed when
//! dropped, even when the test fails.
//!
//! `cargo test` builds the examples (so does `cargo build --all-features --examples`);
//! `cargo test --test …` alone does not.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};

/// Longest wait for the example to announce that it listens.
pub const EXAMPLE_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `protected_api` example as a process, killed when dropped.
pub struct ExampleServer {
    pub url: String,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    _child: tokio::process::Child,
}

impl ExampleServer {
    /// Runs the built example and waits until it announces `listening on http://ADDR`.
    pub async fn start(issuer: &str, audience: &str, extra: &[&str]) -> ExampleServer {
        Self::start_with_env(issuer, audience, extra, &[]).await
    }

    /// [`start`](Self::start) with extra environment variables for the process.
    pub async fn start_with_env(
        issuer: &str,
        audience: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ExampleServer {
        let binary = example_binary("protected_api");
        let mut child = tokio::process::Command::new(&binary)
            .args(["--issuer", issuer, "--audience", audience])
            .args(["--addr", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));

        // Both pipes are drained for the child's whole life, so it never blocks on them.
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (url_tx, url_rx) = tokio::sync::oneshot::channel();
        collect_lines(
            child.stderr.take().expect("piped stderr"),
            Arc::clone(&stderr),
            None,
        );
        collect_lines(
            child.stdout.take().expect("piped stdout"),
            Arc::clone(&stdout),
            Some(url_tx),
        );

        let url = match tokio::time::timeout(EXAMPLE_STARTUP_TIMEOUT, url_rx).await {
            Ok(Ok(url)) => url,
            outcome => {
                let why = if outcome.is_err() {
                    "did not print `listening on http://ADDR` within 30 s"
                } else {
                    "closed its stdout without printing `listening on http://ADDR`"
                };
                let _ = child.start_kill();
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                panic!(
                    "{} {why} (exit: {status:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    binary.display(),
                    stdout.lock().map(|s| s.clone()).unwrap_or_default(),
                    stderr.lock().map(|s| s.clone()).unwrap_or_default(),
                );
            }
        };
        ExampleServer {
            url,
            stderr,
            stdout,
            _child: child,
        }
    }

    /// What the example wrote on stderr so far, for failure messages.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// What the example wrote on stdout so far (its announcements).
    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Appends each line of `pipe` to `sink`; sends the URL of the first `listening on URL` line.
fn collect_lines(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    sink: Arc<Mutex<String>>,
    mut listening: Option<tokio::sync::oneshot::Sender<String>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some((_, url)) = line.split_once("listening on ")
                && let Some(tx) = listening.take()
            {
                let _ = tx.send(url.trim().trim_end_matches('/').to_owned());
            }
            if let Ok(mut sink) = sink.lock() {
                sink.push_str(&line);
                sink.push('\n');
            }
        }
    });
}

/// The example binary Cargo built next to this test's binary (`target/<profile>/examples`),
/// refused when missing or older than a source it was built from.
pub fn example_binary(name: &str) -> PathBuf {
    let hint = format!(
        "build it with `cargo build --all-features --example {name}` (plain `cargo test` does too; `cargo test --test …` alone does not)"
    );
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/examples/<name>
    let examples = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .join("examples");
    let binary = examples.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|err| panic!("no example binary at {} ({err}): {hint}", binary.display()));

    // Cargo's dep-info lists the files the binary was built from.
    let dep_info = std::fs::read_to_string(examples.join(format!("{name}.d"))).unwrap_or_default();
    let sources = dep_info
        .lines()
        .filter_map(|line| line.split_once(": ").map(|(_, deps)| deps))
        .flat_map(str::split_whitespace)
        .map(Path::new)
        .filter(|path| path.starts_with(env!("CARGO_MANIFEST_DIR")));
    for source in sources {
        let modified = std::fs::metadata(source).and_then(|m| m.modified());
        if let Ok(modified) = modified {
            assert!(
                modified <= built,
                "{} is older than {}: {hint}",
                binary.display(),
                source.display()
            );
        }
    }
    binary
}
