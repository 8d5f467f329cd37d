//! Resource-aware placement: what a machine offers (GPUs by index, CPUs, memory) and which of
//! it each run holds.
//!
//! A run declares its needs in the contract (`[run.resources]`); the coordinator's
//! [`ResourcePool`] hands out concrete GPU indices and counts CPUs and memory. A run waits until
//! its needs fit among what is free; a run whose needs exceed the whole machine is refused at
//! once with a message that says so (it would otherwise wait forever). The GPU indices a run
//! holds reach it as `CUDA_VISIBLE_DEVICES`, so two runs never share a GPU, and a run that asked
//! for none sees none.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use picidae_core::contract::Resources;

/// What a machine offers to runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// GPU indices (as `nvidia-smi` and `CUDA_VISIBLE_DEVICES` number them).
    pub gpus: Vec<u32>,
    pub cpus: u32,
    pub memory_mb: u64,
}

impl Capacity {
    /// This machine: GPUs from `nvidia-smi` (none when it is absent), CPUs available to this
    /// process, and total memory from `/proc/meminfo`.
    pub fn detect() -> Capacity {
        let gpus = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=index", "--format=csv,noheader"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| parse_gpu_indices(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_default();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let memory_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map(|kb| kb / 1024)
            .unwrap_or(u64::MAX);
        Capacity {
            gpus,
            cpus,
            memory_mb,
        }
    }
}

/// GPU indices from `nvidia-smi --query-gpu=index --format=csv,noheader` output.
pub fn parse_gpu_indices(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Parse a GPU list as given on the command line: `0,1,3` (or empty for none).
pub fn parse_gpu_list(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let i: u32 = part
            .parse()
            .map_err(|_| format!("{part:?} is not a GPU index (expected e.g. 0,1,3)"))?;
        if out.contains(&i) {
            return Err(format!("GPU {i} is listed twice"));
        }
        out.push(i);
    }
    Ok(out)
}

#[derive(Debug)]
struct Free {
    gpus: Vec<u32>,
    cpus: u32,
    memory_mb: u64,
}

/// The resources of one machine, shared by the runs of every program on it.
#[derive(Debug)]
pub struct ResourcePool {
    capacity: Capacity,
    free: Mutex<Free>,
    changed: Condvar,
}

/// Resources a run holds; dropping it gives them back.
#[derive(Debug)]
pub struct Placement<'a> {
    pool: &'a ResourcePool,
    pub gpus: Vec<u32>,
    cpus: u32,
    memory_mb: u64,
}

impl Placement<'_> {
    /// The value of `CUDA_VISIBLE_DEVICES` for this run (empty: no GPU visible).
    pub fn cuda_visible_devices(&self) -> String {
        let ids: Vec<String> = self.gpus.iter().map(|g| g.to_string()).collect();
        ids.join(",")
    }
}

impl Drop for Placement<'_> {
    fn drop(&mut self) {
        let mut f = self.pool.lock();
        f.gpus.append(&mut self.gpus);
        f.gpus.sort_unstable();
        f.cpus += self.cpus;
        f.memory_mb = f.memory_mb.saturating_add(self.memory_mb);
        drop(f);
        self.pool.changed.notify_all();
    }
}

impl ResourcePool {
    pub fn new(mut capacity: Capacity) -> ResourcePool {
        capacity.gpus.sort_unstable();
        let gpus = capacity.gpus.clone();
        ResourcePool {
            free: Mutex::new(Free {
                gpus,
                cpus: capacity.cpus,
                memory_mb: capacity.memory_mb,
            }),
            capacity,
            changed: Condvar::new(),
        }
    }

    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `need` could ever fit on this machine; the error says what is short.
    pub fn check(&self, need: &Resources) -> Result<(), String> {
        let c = &self.capacity;
        if need.gpus as usize > c.gpus.len() {
            return Err(format!(
                "the run needs {} GPU(s) but this coordinator has {} ({})",
                need.gpus,
                c.gpus.len(),
                if c.gpus.is_empty() {
                    "none detected; give them with --gpus".to_string()
                } else {
                    format!("indices {}", join(&c.gpus))
                }
            ));
        }
        if need.cpus > c.cpus {
            return Err(format!(
                "the run needs {} CPUs but this coordinator has {}",
                need.cpus, c.cpus
            ));
        }
        if let Some(m) = need.memory_mb {
            if m > c.memory_mb {
                return Err(format!(
                    "the run needs {m} MB of memory but this coordinator has {} MB",
                    c.memory_mb
                ));
            }
        }
        Ok(())
    }

    /// Wait until `need` fits, then take it: the lowest free GPU indices, CPUs and memory.
    /// `Ok(None)` when `cancelled` became true while waiting; an error when `need` can never
    /// fit (see [`check`](Self::check)).
    pub fn acquire(
        &self,
        need: &Resources,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<Placement<'_>>, String> {
        self.check(need)?;
        let mem = need.memory_mb.unwrap_or(0);
        let mut f = self.lock();
        loop {
            if cancelled() {
                return Ok(None);
            }
            if f.gpus.len() >= need.gpus as usize && f.cpus >= need.cpus && f.memory_mb >= mem {
                let gpus: Vec<u32> = f.gpus.drain(..need.gpus as usize).collect();
                f.cpus -= need.cpus;
                f.memory_mb -= mem;
                return Ok(Some(Placement {
                    pool: self,
                    gpus,
                    cpus: need.cpus,
                    memory_mb: mem,
                }));
            }
            f = self
                .changed
                .wait_timeout(f, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// GPUs currently held by runs.
    pub fn gpus_in_use(&self) -> usize {
        self.capacity.gpus.len() - self.lock().gpus.len()
    }
}

fn join(ids: &[u32]) -> String {
    ids.iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn need(gpus: u32, cpus: u32, mem: Option<u64>) -> Resources {
        Resources {
            cpus,
            gpus,
            memory_mb: mem,
            max_processes: None,
        }
    }

    fn pool() -> ResourcePool {
        ResourcePool::new(Capacity {
            gpus: vec![3, 0, 1],
            cpus: 4,
            memory_mb: 1000,
        })
    }

    #[test]
    fn runs_get_distinct_gpus_and_give_them_back() {
        let p = pool();
        let a = p.acquire(&need(2, 1, None), &|| false).unwrap().unwrap();
        assert_eq!(a.cuda_visible_devices(), "0,1");
        let b = p.acquire(&need(1, 1, None), &|| false).unwrap().unwrap();
        assert_eq!(b.gpus, vec![3]);
        assert_eq!(p.gpus_in_use(), 3);
        let none = p.acquire(&need(0, 1, None), &|| false).unwrap().unwrap();
        assert_eq!(none.cuda_visible_devices(), "");
        drop(a);
        assert_eq!(p.gpus_in_use(), 1);
        let c = p.acquire(&need(2, 1, None), &|| false).unwrap().unwrap();
        assert_eq!(c.gpus, vec![0, 1]);
    }

    #[test]
    fn a_run_that_can_never_fit_is_refused_with_the_reason() {
        let p = pool();
        let e = p.acquire(&need(4, 1, None), &|| false).unwrap_err();
        assert!(e.contains("needs 4 GPU(s)") && e.contains("0,1,3"), "{e}");
        let e = p.acquire(&need(0, 8, None), &|| false).unwrap_err();
        assert!(e.contains("8 CPUs"), "{e}");
        let e = p.acquire(&need(0, 1, Some(5000)), &|| false).unwrap_err();
        assert!(e.contains("5000 MB"), "{e}");
    }

    #[test]
    fn a_run_waits_for_memory_and_cancel_ends_the_wait() {
        let p = Arc::new(pool());
        let held = p
            .acquire(&need(0, 1, Some(800)), &|| false)
            .unwrap()
            .unwrap();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || {
            let got = p2.acquire(&need(0, 1, Some(500)), &|| false).unwrap();
            got.map(|g| g.memory_mb)
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !waiter.is_finished(),
            "500 MB must wait while 800 of 1000 are held"
        );
        drop(held);
        assert_eq!(waiter.join().unwrap(), Some(500));
        let _all = p.acquire(&need(0, 4, None), &|| false).unwrap().unwrap();
        let got = p.acquire(&need(0, 1, None), &|| true).unwrap();
        assert!(got.is_none());
    }

    #[test]
    fn gpu_lists_parse_and_reject_nonsense() {
        assert_eq!(parse_gpu_list("0, 2,3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_gpu_list("").unwrap(), Vec::<u32>::new());
        assert!(parse_gpu_list("0,x").is_err());
        assert!(parse_gpu_list("1,1").is_err());
        assert_eq!(parse_gpu_indices("0\n1\n"), vec![0, 1]);
    }
}
