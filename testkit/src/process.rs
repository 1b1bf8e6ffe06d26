//! One server process on a fixed port, with its output in a log file of its temporary
//! directory; stoppable and restartable on the same port.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

type ArgsFn = Box<dyn Fn(u16, &Path) -> Vec<String> + Send + Sync>;

/// A running (or stopped) server.
pub struct ServerProcess {
    name: &'static str,
    program: PathBuf,
    args: ArgsFn,
    ready_line: &'static str,
    timeout: Duration,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
}

impl ServerProcess {
    /// Starts the server on a free port and waits until its log shows `ready_line`.
    pub async fn start(
        name: &'static str,
        program: PathBuf,
        args: impl Fn(u16, &Path) -> Vec<String> + Send + Sync + 'static,
        ready_line: &'static str,
        timeout: Duration,
    ) -> ServerProcess {
        let dir = tempfile::Builder::new()
            .prefix(&format!("chat-test-{name}-"))
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temporary directory for {name}: {error}"));
        let mut server = ServerProcess {
            name,
            program,
            args: Box::new(args),
            ready_line,
            timeout,
            port: free_port(),
            dir,
            child: None,
            starts: 0,
        };
        server.restart().await;
        server
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the current (or last) run wrote to stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}-{}.log", self.name, self.starts))).unwrap_or_default()
    }

    /// Waits until the current run's output contains `text`; panics with the output
    /// when it does not within `within`.
    pub async fn wait_for_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "{} logged no {text:?} within {within:?}:\n{}", self.name, self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process gracefully (SIGTERM) and waits for it to exit, so that it can
    /// flush its data; falls back to SIGKILL after ten seconds.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data directory; waits until ready.
    pub async fn restart(&mut self) {
        self.kill();
        self.starts += 1;
        let log_path = self.dir.path().join(format!("{}-{}.log", self.name, self.starts));
        let started = Instant::now();
        loop {
            let log = std::fs::File::create(&log_path)
                .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_path.display()));
            let err_log =
                log.try_clone().unwrap_or_else(|error| panic!("cannot reopen {}: {error}", log_path.display()));
            let child = Command::new(&self.program)
                .args((self.args)(self.port, self.dir.path()))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err_log)
                .spawn()
                .unwrap_or_else(|error| {
                    panic!(
                        "cannot start {} ({}): {error}; run the test command, which installs it",
                        self.name,
                        self.program.display()
                    )
                });
            self.child = Some(child);
            match self.wait_ready(&log_path).await {
                Ok(()) => return,
                // The port may still be held by the previous process for a moment.
                Err(log) if started.elapsed() < self.timeout && log.contains("in use") => {
                    self.kill();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(log) => panic!("{} did not become ready:\n{log}", self.name),
            }
        }
    }

    async fn wait_ready(&mut self, log_path: &Path) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            if log.contains(self.ready_line) {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                return Err(log);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|error| panic!("no free port: {error}"))
}
