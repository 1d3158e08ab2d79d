//! The device the agent runs on, as the fleet-status snapshot reports it: a stable
//! device id, CPU from `/proc/stat` deltas, memory from `/proc/meminfo`, disk from `statvfs("/")`.

use std::path::Path;

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Cumulative CPU time from the first line of `/proc/stat`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Parses the `cpu` line of `/proc/stat` (user nice system idle iowait irq softirq steal …).
pub fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

pub fn cpu_times() -> Option<CpuTimes> {
    parse_cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// CPU use between two samples, in percent.
pub fn cpu_pct(before: CpuTimes, after: CpuTimes) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    let busy = after.busy.checked_sub(before.busy)?;
    (total > 0).then(|| round1(100.0 * busy as f64 / total as f64))
}

/// `(ramUsedPct, ramAvailableKb)` from `/proc/meminfo` text.
pub fn parse_meminfo(meminfo: &str) -> Option<(f64, i64)> {
    let field = |name: &str| -> Option<i64> {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    if total <= 0 {
        return None;
    }
    let used = (total - available).max(0);
    Some((round1(100.0 * used as f64 / total as f64), available))
}

pub fn memory() -> Option<(f64, i64)> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// Used share of the root file system, as `df` counts it (blocks reserved for root excluded).
pub fn disk_usage_pct() -> Option<f64> {
    let st = nix::sys::statvfs::statvfs("/").ok()?;
    let total = st.blocks() as f64;
    let free = st.blocks_free() as f64;
    let avail = st.blocks_available() as f64;
    let used = total - free;
    (used + avail > 0.0).then(|| round1(100.0 * used / (used + avail)))
}

fn round1(x: f64) -> f64 {
    ((x * 10.0).round() / 10.0).clamp(0.0, 100.0)
}

/// A device id that survives restarts: derived from `/etc/machine-id`, else generated once
/// and kept as `device-id` in `state_dir`.
pub fn device_id(state_dir: &Path) -> Uuid {
    if let Ok(machine) = std::fs::read_to_string("/etc/machine-id") {
        let machine = machine.trim();
        if !machine.is_empty() {
            return derive_device_id(machine);
        }
    }
    let file = state_dir.join("device-id");
    if let Some(id) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| Uuid::try_parse(s.trim()).ok())
    {
        return id;
    }
    let id = Uuid::new_v4();
    let kept =
        std::fs::create_dir_all(state_dir).and_then(|()| std::fs::write(&file, id.to_string()));
    if let Err(err) = kept {
        tracing::warn!(file = %file.display(), error = %err, "cannot keep the device id; it will change on restart");
    }
    id
}

/// A name-based UUID: the machine id itself is not sent anywhere.
pub fn derive_device_id(machine_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("warren-device:{machine_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// `linux_amd64`, `darwin_arm64`, … as connectors name their platform.
pub fn arch() -> String {
    let cpu = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    format!("{os}_{cpu}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_use_is_the_busy_share_of_the_delta() {
        let a = parse_cpu_times("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let b = parse_cpu_times("cpu  150 0 150 900 0 0 0 0 0 0\n").unwrap();
        assert_eq!(cpu_pct(a, b), Some(50.0));
        assert_eq!(cpu_pct(b, b), None);
    }

    #[test]
    fn memory_comes_from_total_and_available() {
        let text = "MemTotal:       1000 kB\nMemFree:   10 kB\nMemAvailable:    250 kB\n";
        assert_eq!(parse_meminfo(text), Some((75.0, 250)));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn the_device_id_is_stable_per_machine() {
        assert_eq!(derive_device_id("abc"), derive_device_id("abc"));
        assert_ne!(derive_device_id("abc"), derive_device_id("abd"));
    }

    #[test]
    fn this_machine_reports_plausible_numbers() {
        if let Some((pct, kb)) = memory() {
            assert!((0.0..=100.0).contains(&pct) && kb >= 0);
        }
        if let Some(pct) = disk_usage_pct() {
            assert!((0.0..=100.0).contains(&pct));
        }
        assert!(arch().contains('_'));
    }
}
