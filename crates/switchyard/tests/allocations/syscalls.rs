//! System calls per request, counted by `perf stat` on the gateway's worker threads
//! with the kernel's `syscalls:sys_enter_*` tracepoints: the kernel side of the
//! request path, as the allocation count is the heap side. The socket calls a request
//! makes (reads and writes on the client's and the upstream's connections) do not
//! depend on how fast the machine is, so a change that adds one per request (a peek
//! before reusing a connection, a write split in two) fails the budget.
//!
//! Needs `perf` (Debian: `linux-perf`, installed by `.ci/run`) with access to
//! tracepoints (root, or `kernel.perf_event_paranoid` ≤ -1 and a readable tracefs).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tokio::time::Instant;

/// The socket and file I/O calls a request can make: budgeted.
pub(crate) const IO_CALLS: &[&str] = &[
    "read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg",
];

/// Calls that follow the scheduling (a worker parking between requests): reported only.
pub(crate) const SCHEDULING_CALLS: &[&str] = &["epoll_wait", "futex"];

/// The threads of this process whose name starts with `prefix` (Linux truncates a
/// thread's name to 15 bytes).
pub(crate) fn threads_named(prefix: &str) -> Vec<u32> {
    let mut tids: Vec<u32> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            let tid = entry.file_name().to_str()?.parse().ok()?;
            comm.trim_end().starts_with(prefix).then_some(tid)
        })
        .collect();
    tids.sort_unstable();
    tids
}

/// How long perf gets to start, answer a command or stop before the test fails.
const PERF_DEADLINE: Duration = Duration::from_secs(20);

/// A `perf stat` attached to some threads, its counters off until [`Counter::enable`].
/// Every step that waits on perf is bounded ([`PERF_DEADLINE`]): a perf that fails
/// fails the test with its own error output instead of hanging it.
pub(crate) struct Counter {
    perf: Child,
    /// The control FIFO (written) and the acknowledgement FIFO (read); `None` while a
    /// command is out.
    fifos: Option<(File, BufReader<File>)>,
    out: PathBuf,
    errors: PathBuf,
    dir: PathBuf,
}

impl Counter {
    /// Attaches to `tids`, counting [`IO_CALLS`] and [`SCHEDULING_CALLS`].
    pub(crate) fn attach(tids: &[u32]) -> Self {
        assert!(!tids.is_empty(), "no threads to count");
        probe();
        let dir = std::env::temp_dir().join(format!("switchyard-syscalls-{}", std::process::id()));
        let _fresh = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (ctl, ack) = (dir.join("ctl"), dir.join("ack"));
        let (out, errors) = (dir.join("counts"), dir.join("errors"));
        for fifo in [&ctl, &ack] {
            let made = Command::new("mkfifo").arg(fifo).status().expect("mkfifo");
            assert!(made.success(), "mkfifo {}", fifo.display());
        }
        let events: Vec<String> = IO_CALLS
            .iter()
            .chain(SCHEDULING_CALLS)
            .map(|call| format!("syscalls:sys_enter_{call}"))
            .collect();
        let tids: Vec<String> = tids.iter().map(u32::to_string).collect();
        let perf = Command::new("perf")
            .args(["stat", "-x,", "--delay=-1"])
            .arg(format!(
                "--control=fifo:{},{}",
                ctl.display(),
                ack.display()
            ))
            .arg("-o")
            .arg(&out)
            .args(["-t", &tids.join(","), "-e", &events.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Also "Events enabled" / "disabled" on every command.
            .stderr(File::create(&errors).expect("perf error file"))
            .spawn()
            .expect("perf");
        let mut counter = Self {
            perf,
            fifos: None,
            out,
            errors,
            dir,
        };
        // perf opens the control FIFO, then the acknowledgement one; each open blocks
        // until perf has its end open.
        let fifos = counter.bounded("open its control FIFOs", move || {
            let ctl = OpenOptions::new().write(true).open(&ctl).expect("ctl fifo");
            let ack = File::open(&ack).expect("ack fifo");
            (ctl, BufReader::new(ack))
        });
        counter.fifos = Some(fifos);
        counter
    }

    /// Runs `step` (which waits on perf) on its own thread, for at most
    /// [`PERF_DEADLINE`]; fails with perf's error output when it takes longer.
    #[expect(
        clippy::panic,
        reason = "test fixture: a perf that hangs fails the test"
    )]
    fn bounded<T: Send + 'static>(
        &mut self,
        what: &str,
        step: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || {
            let _gone = done.send(step());
        });
        match result.recv_timeout(PERF_DEADLINE) {
            Ok(value) => value,
            Err(_) => {
                let _killed = self.perf.kill();
                let errors = std::fs::read_to_string(&self.errors).unwrap_or_default();
                panic!("perf did not {what} within {PERF_DEADLINE:?}; its errors:\n{errors}");
            }
        }
    }

    fn command(&mut self, what: &'static str) {
        let (mut ctl, mut ack) = self.fifos.take().expect("perf is attached");
        let (answer, fifos) = self.bounded(what, move || {
            writeln!(ctl, "{what}").expect("perf control");
            let mut line = String::new();
            ack.read_line(&mut line).expect("perf ack");
            (line, (ctl, ack))
        });
        self.fifos = Some(fifos);
        // perf writes `ack\n` with its C string's NUL, which starts the next answer.
        let trimmed = answer.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        assert_eq!(trimmed, "ack", "perf answered {answer:?} to {what}");
    }

    /// Counts from now on (perf acknowledged it when this returns).
    pub(crate) fn enable(&mut self) {
        self.command("enable");
    }

    /// Stops counting; the calls counted since [`Counter::enable`], by name.
    pub(crate) fn finish(mut self) -> BTreeMap<String, u64> {
        self.command("disable");
        let stopped = Command::new("kill")
            .args(["-INT", &self.perf.id().to_string()])
            .status()
            .expect("kill");
        assert!(stopped.success());
        let deadline = Instant::now() + PERF_DEADLINE;
        while self.perf.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "perf did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        let text = std::fs::read_to_string(&self.out).expect("perf output");
        let counts: BTreeMap<String, u64> = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                let call = fields.get(2)?.strip_prefix("syscalls:sys_enter_")?;
                Some((call.to_owned(), fields[0].parse().ok()?))
            })
            .collect();
        assert_eq!(
            counts.len(),
            IO_CALLS.len() + SCHEDULING_CALLS.len(),
            "perf did not count every call:\n{text}"
        );
        counts
    }
}

impl Drop for Counter {
    /// A perf still attached (the test failed half-way) goes with it.
    fn drop(&mut self) {
        if self.perf.try_wait().ok().flatten().is_none() {
            let _killed = self.perf.kill();
            let _reaped = self.perf.wait();
        }
        let _gone = std::fs::remove_dir_all(&self.dir);
    }
}

/// Fails with what to do when perf cannot count system calls here.
fn probe() {
    let probe = Command::new("perf")
        .args([
            "stat",
            "-x,",
            "-e",
            "syscalls:sys_enter_write",
            "--",
            "true",
        ])
        .output();
    let ok = probe.as_ref().is_ok_and(|p| p.status.success());
    assert!(
        ok,
        "counting system calls needs perf with tracepoint access (Debian: apt-get install \
         linux-perf; as root, or with kernel.perf_event_paranoid = -1): {probe:?}"
    );
}
