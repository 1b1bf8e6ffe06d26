//! Resource figures from `/proc`: CPU time of the stack's processes (by PID) and of the
//! generator's own worker threads, the whole box's busy share, and resident memory.
//! Everything is sampled at the start and the end of a measured window and reported as
//! the difference, so work done before the window (start-up, connecting) is left out.

use std::{path::Path, time::Instant};

use serde::Serialize;

/// `AT_CLKTCK` in the auxiliary vector: clock ticks per second.
const AT_CLKTCK: u64 = 17;
/// What Linux uses on every common architecture, when the auxiliary vector cannot be read.
const DEFAULT_CLOCK_TICKS: u64 = 100;
/// The name of the generator's worker threads, as `/proc/self/task/*/comm` shows it.
pub const WORKER_THREAD_NAME: &str = "bench-client";

/// A process of the stack whose CPU time is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// What it is (`ws-edge`, `api`, `nats-server`, …).
    pub name: String,
    /// Its PID.
    pub pid: u32,
}

impl Watched {
    /// True for the WebSocket edge, whose CPU per delivery is reported on its own.
    pub fn is_edge(&self) -> bool {
        matches!(self.name.as_str(), "ws-edge" | "edge")
    }
}

/// Clock ticks per second, from the auxiliary vector (the workspace forbids the
/// `unsafe` a `sysconf` call would need).
pub fn clock_ticks() -> u64 {
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return DEFAULT_CLOCK_TICKS;
    };
    let word = std::mem::size_of::<usize>();
    let read = |bytes: &[u8]| -> u64 {
        let mut buffer = [0u8; 8];
        buffer[..word].copy_from_slice(bytes);
        u64::from_ne_bytes(buffer)
    };
    auxv.chunks_exact(2 * word)
        .map(|pair| (read(&pair[..word]), read(&pair[word..])))
        .find(|(key, _)| *key == AT_CLKTCK)
        .map_or(DEFAULT_CLOCK_TICKS, |(_, ticks)| ticks.max(1))
}

/// utime + stime, in ticks, from a `stat` file (`/proc/<pid>/stat` or a task's).
fn stat_ticks(path: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks a process has used so far.
pub fn process_ticks(pid: u32) -> Option<u64> {
    stat_ticks(Path::new(&format!("/proc/{pid}/stat")))
}

/// CPU ticks this process has used so far.
fn own_ticks() -> Option<u64> {
    stat_ticks(Path::new("/proc/self/stat"))
}

/// CPU ticks the generator's worker threads have used so far.
fn worker_ticks() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim_end() == WORKER_THREAD_NAME)
        })
        .filter_map(|task| stat_ticks(&task.path().join("stat")))
        .sum()
}

/// Busy and total ticks of the whole box, from the first line of `/proc/stat`.
fn box_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest times are inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Resident memory of a process, in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// Counters at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    processes: Vec<Option<u64>>,
    own: Option<u64>,
    workers: u64,
    system: Option<(u64, u64)>,
}

/// Takes samples of a fixed set of processes.
#[derive(Debug, Clone)]
pub struct Sampler {
    watched: Vec<Watched>,
    ticks_per_s: f64,
    threads: usize,
}

/// CPU of one process over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessCpu {
    /// Its name.
    pub name: String,
    /// Its PID.
    pub pid: u32,
    /// CPU seconds (user + system) within the window; `null` when it could not be read.
    pub cpu_s: Option<f64>,
}

/// The generator's own CPU over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientCpu {
    /// Worker threads running the clients.
    pub threads: usize,
    /// CPU seconds of those threads.
    pub worker_cpu_s: f64,
    /// Their busy share: CPU seconds / (window × threads), in percent.
    pub worker_busy_pct: f64,
    /// CPU seconds of the whole generator process (`/proc/self/stat`).
    pub process_cpu_s: Option<f64>,
    /// True when the workers were busy enough (> 85 %) to distort the figures.
    pub saturated: bool,
}

/// Resource figures of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Length of the window, in seconds.
    pub window_s: f64,
    /// Each watched process.
    pub processes: Vec<ProcessCpu>,
    /// Sum over the watched processes.
    pub stack_cpu_s: f64,
    /// The whole box's busy share, in percent of all its CPUs.
    pub box_busy_pct: Option<f64>,
    /// The generator.
    pub client: ClientCpu,
}

/// A worker busy share above this many percent makes the generator suspect.
pub const SATURATED_PCT: f64 = 85.0;

impl Sampler {
    /// A sampler of these processes, for a generator running `threads` workers.
    pub fn new(watched: Vec<Watched>, threads: usize) -> Self {
        Sampler { watched, ticks_per_s: clock_ticks() as f64, threads }
    }

    /// The watched processes.
    pub fn watched(&self) -> &[Watched] {
        &self.watched
    }

    /// Counters now.
    pub fn sample(&self) -> Sample {
        Sample {
            at: Instant::now(),
            processes: self.watched.iter().map(|process| process_ticks(process.pid)).collect(),
            own: own_ticks(),
            workers: worker_ticks(),
            system: box_ticks(),
        }
    }

    /// What was used between two samples.
    pub fn usage(&self, start: &Sample, end: &Sample) -> Usage {
        let seconds = |ticks: u64| ticks as f64 / self.ticks_per_s;
        let window_s = end.at.saturating_duration_since(start.at).as_secs_f64();
        let processes: Vec<ProcessCpu> = self
            .watched
            .iter()
            .zip(start.processes.iter().zip(&end.processes))
            .map(|(process, (before, after))| ProcessCpu {
                name: process.name.clone(),
                pid: process.pid,
                cpu_s: before.zip(*after).map(|(before, after)| seconds(after.saturating_sub(before))),
            })
            .collect();
        let stack_cpu_s = processes.iter().filter_map(|process| process.cpu_s).sum();
        let box_busy_pct = start.system.zip(end.system).and_then(|((busy0, total0), (busy1, total1))| {
            let total = total1.saturating_sub(total0);
            (total > 0).then(|| 100.0 * busy1.saturating_sub(busy0) as f64 / total as f64)
        });
        let worker_cpu_s = seconds(end.workers.saturating_sub(start.workers));
        let capacity = window_s * self.threads.max(1) as f64;
        let worker_busy_pct = if capacity > 0.0 { 100.0 * worker_cpu_s / capacity } else { 0.0 };
        Usage {
            window_s,
            processes,
            stack_cpu_s,
            box_busy_pct,
            client: ClientCpu {
                threads: self.threads,
                worker_cpu_s,
                worker_busy_pct,
                process_cpu_s: start.own.zip(end.own).map(|(before, after)| seconds(after.saturating_sub(before))),
                saturated: worker_busy_pct > SATURATED_PCT,
            },
        }
    }

    /// CPU seconds of the edge over a window, if an edge is watched.
    pub fn edge_cpu_s(&self, usage: &Usage) -> Option<f64> {
        let edges: Vec<f64> = self
            .watched
            .iter()
            .zip(&usage.processes)
            .filter(|(watched, _)| watched.is_edge())
            .filter_map(|(_, process)| process.cpu_s)
            .collect();
        (!edges.is_empty()).then(|| edges.iter().sum())
    }

    /// Resident memory of the edge (the first watched one), if any.
    pub fn edge_rss(&self) -> Option<u64> {
        self.watched.iter().find(|watched| watched.is_edge()).and_then(|edge| rss_bytes(edge.pid))
    }
}

#[cfg(test)]
mod tests {
    use super::{Sampler, Watched, clock_ticks, process_ticks, rss_bytes};

    #[test]
    fn this_process_can_be_measured() {
        let pid = std::process::id();
        assert!(clock_ticks() >= 1);
        assert!(process_ticks(pid).is_some());
        assert!(rss_bytes(pid).is_some_and(|bytes| bytes > 0));
        let sampler = Sampler::new(vec![Watched { name: "ws-edge".into(), pid }], 1);
        let start = sampler.sample();
        let mut spin = 0u64;
        for i in 0..2_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        std::hint::black_box(spin);
        let usage = sampler.usage(&start, &sampler.sample());
        assert!(usage.processes[0].cpu_s.is_some());
        assert!(sampler.edge_cpu_s(&usage).is_some());
        assert!(sampler.edge_rss().is_some());
    }
}
