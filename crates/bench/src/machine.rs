//! What the numbers were measured on: CPU, memory, and how fast the disk makes appends durable,
//! which bounds any durable write path.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Appends timed by the fsync probe.
const FSYNC_PROBE_APPENDS: usize = 200;
/// Bytes of each probe append.
const FSYNC_PROBE_BYTES: usize = 4096;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu_model: String,
    pub n_cpus: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    /// 1-minute load average when the benchmark started: other work on the machine skews results.
    pub load_average: f64,
    /// fsync'd 4 KiB appends per second on the benchmark's temporary directory.
    pub fsyncs_per_second: f64,
}

impl Machine {
    /// The sentence every report opens with: when and on what it was measured, and how busy
    /// the (shared) machine was, since that moves wall-clock figures.
    pub fn measured_on(&self, date: &str, load_before: f64, load_after: f64) -> String {
        format!(
            "Measured {date} on {n_cpus} × {cpu}, {ram:.1} GiB RAM, Linux {kernel}; \
             the disk does {fsyncs:.0} fsync'd 4 KiB appends per second; \
             load average {load_before:.1} before and {load_after:.1} after the run \
             (the machine is shared; above {n_cpus} means the numbers are depressed by other work).",
            n_cpus = self.n_cpus,
            cpu = self.cpu_model,
            ram = self.memory_bytes as f64 / (1u64 << 30) as f64,
            kernel = self.kernel,
            fsyncs = self.fsyncs_per_second,
        )
    }

    pub fn probe(scratch_dir: &Path) -> anyhow::Result<Machine> {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let n_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib * 1024);
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let load_average = load_average();
        Ok(Machine {
            load_average,
            cpu_model,
            n_cpus,
            memory_bytes,
            kernel,
            fsyncs_per_second: fsync_rate(scratch_dir)?,
        })
    }
}

/// Times `FSYNC_PROBE_APPENDS` appends of `FSYNC_PROBE_BYTES`, each followed by `fdatasync`, as a
/// translog's group commit does.
fn fsync_rate(dir: &Path) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = fs::File::create(&path)?;
    let block = vec![0x5a_u8; FSYNC_PROBE_BYTES];
    let started = Instant::now();
    for _ in 0..FSYNC_PROBE_APPENDS {
        file.write_all(&block)?;
        file.sync_data()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    fs::remove_file(&path)?;
    Ok(FSYNC_PROBE_APPENDS as f64 / seconds)
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A list of CPU numbers, as `taskset -c` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpus(pub Vec<usize>);

impl std::fmt::Display for Cpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let numbers: Vec<String> = self.0.iter().map(usize::to_string).collect();
        f.write_str(&numbers.join(","))
    }
}

/// Parses a CPU list such as `0`, `1,3` or `0-3`.
pub fn parse_cpus(list: &str) -> Result<Cpus, String> {
    let mut cpus = Vec::new();
    for part in list
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let number = |text: &str| {
            text.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{text}` in the CPU list `{list}` is not a CPU number"))
        };
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(number(first)?..=number(last)?),
            None => cpus.push(number(part)?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("the CPU list `{list}` names no CPU"));
    }
    Ok(Cpus(cpus))
}

/// Lets the calling thread run only on `cpus`; threads and processes it starts afterwards
/// inherit the set.
pub fn pin_current_thread(cpus: &[usize]) -> anyhow::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for &cpu in cpus {
        anyhow::ensure!(
            cpu < rustix::thread::CpuSet::MAX_CPU,
            "CPU {cpu} is out of range"
        );
        set.set(cpu);
    }
    rustix::thread::sched_setaffinity(None, &set)
        .map_err(|error| anyhow::anyhow!("pinning to CPUs {cpus:?}: {error}"))
}

/// The CPUs the calling thread may run on.
pub fn current_cpus() -> anyhow::Result<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::parse_cpus;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0").unwrap().0, vec![0]);
        assert_eq!(parse_cpus("1,3").unwrap().to_string(), "1,3");
        assert_eq!(parse_cpus("0-2,5").unwrap().0, vec![0, 1, 2, 5]);
        assert!(parse_cpus("").is_err());
        assert!(parse_cpus("a").is_err());
    }
}
