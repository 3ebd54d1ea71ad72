//! A real `redis-server` (the Debian package) on a free loopback port, for the tests of the
//! `redis` feature.
//!
//! [`RedisServer::start`] runs `redis-server` without persistence (`--save ""`,
//! `--appendonly no`) bound to `127.0.0.1`, and waits until it answers `PING`. Dropping the
//! [`RedisServer`] stops it; so does the end of the test process, even a killed one: the
//! server runs under a small shell that stops it when its stdin (a pipe held by this
//! process) closes. [`RedisServer::stop`] and [`RedisServer::restart`] make an outage on the
//! same port. [`RedisServer::command`] speaks RESP directly, to plant or inspect values
//! behind portcullis' back.
//!
//! A missing `redis-server` fails the test with a message saying what to install.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before the test fails.
const START_BOUND: Duration = Duration::from_secs(20);

/// One `redis-server` process on a loopback port.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    extra: Vec<String>,
    child: Option<(Child, ChildStdin)>,
}

/// A RESP reply, as far as the tests need one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

fn require_redis_server() {
    match Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("`redis-server --version` failed ({status})"),
        Err(error) => panic!(
            "redis-server is required by the Redis tests and could not be run ({error}): \
             install it, e.g. `apt-get install -y redis-server`"
        ),
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

impl RedisServer {
    /// A server on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments (e.g. `["--requirepass", "pw"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        require_redis_server();
        let mut server = Self {
            port: free_port(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    /// The port it listens on (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the Redis server is already running");
        let dir = std::env::temp_dir();
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            dir.to_str().expect("UTF-8 temp dir"),
            "--logfile",
            "",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(self.extra.iter().cloned());
        // The shell stops the server when our end of its stdin closes (drop, or this process
        // dying), and waits for it, so that the port is free when it exits.
        let script = r#"redis-server "$@" & pid=$!
trap 'kill $pid 2>/dev/null' EXIT
while read -r _line; do :; done
kill $pid 2>/dev/null
wait $pid 2>/dev/null
trap - EXIT"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sh for redis-server");
        let stdin = child.stdin.take().expect("piped stdin");
        self.child = Some((child, stdin));
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Ok(Reply::Simple(pong)) = self.try_command(&[b"PING"]) {
                assert_eq!(pong, "PONG");
                return;
            }
            if let Some((child, _)) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "redis-server exited at start ({status}); is port {} taken?",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within {START_BOUND:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and waits until it has exited (its port is then closed).
    pub fn stop(&mut self) {
        if let Some((mut child, stdin)) = self.child.take() {
            drop(stdin);
            let deadline = Instant::now() + START_BOUND;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Starts it again, on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends one command (with the `--requirepass` password, if any) and reads its reply.
    pub fn command(&self, args: &[&[u8]]) -> Reply {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("Redis command failed: {e}"))
    }

    /// Like [`command`](Self::command) on database `db`.
    pub fn command_in(&self, db: u32, args: &[&[u8]]) -> Reply {
        let db = db.to_string();
        self.session(&[&[b"SELECT", db.as_bytes()], args])
            .unwrap_or_else(|e| panic!("Redis command failed: {e}"))
            .pop()
            .expect("a reply")
    }

    fn try_command(&self, args: &[&[u8]]) -> std::io::Result<Reply> {
        Ok(self.session(&[args])?.pop().expect("a reply"))
    }

    /// Sends the commands on one connection (after `AUTH` when a password is configured),
    /// returning their replies.
    fn session(&self, commands: &[&[&[u8]]]) -> std::io::Result<Vec<Reply>> {
        let stream = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        let password = self
            .extra
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| self.extra.get(i + 1));
        if let Some(password) = password {
            write_command(&mut writer, &[b"AUTH", password.as_bytes()])?;
            let reply = read_reply(&mut reader)?;
            assert_eq!(reply, Reply::Simple("OK".into()), "AUTH");
        }
        let mut replies = Vec::new();
        for args in commands {
            write_command(&mut writer, args)?;
            replies.push(read_reply(&mut reader)?);
        }
        Ok(replies)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_command(out: &mut impl Write, args: &[&[u8]]) -> std::io::Result<()> {
    let mut buf = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        buf.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        buf.extend_from_slice(arg);
        buf.extend_from_slice(b"\r\n");
    }
    out.write_all(&buf)
}

fn read_reply(input: &mut impl BufRead) -> std::io::Result<Reply> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(bad("connection closed"));
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| bad("empty line"))?;
    let number = || rest.parse::<i64>().map_err(|_| bad("not a number"));
    Ok(match kind {
        "+" => Reply::Simple(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Nil,
            Ok(len) => {
                let mut data = vec![0; len + 2];
                input.read_exact(&mut data)?;
                data.truncate(len);
                Reply::Bulk(data)
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Nil,
            Ok(n) => Reply::Array(
                (0..n)
                    .map(|_| read_reply(input))
                    .collect::<Result<_, _>>()?,
            ),
        },
        _ => return Err(bad("unknown reply type")),
    })
}
