//! Filesystems: size, free, inodes, read-only, per deduplicated mount.
//!
//! `statvfs` on a hung NFS mount blocks in the kernel forever, so stats run on a small
//! pool of worker threads and the scrape waits only until its deadline. A mount whose
//! stat is still running is remembered and skipped (reported as `timeout`) until that
//! stat returns, so hung stats never pile up behind each other.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::groups::FilesystemConfig;

/// node_exporter's default excluded filesystem types: pseudo and read-only image filesystems.
const EXCLUDED_FSTYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "erofs",
    "sysfs",
    "tracefs",
];

/// Mount points under these are never real data filesystems (node_exporter's default).
fn excluded_mountpoint(mp: &str) -> bool {
    let under = |p: &str| mp == p || mp.starts_with(&format!("{p}/"));
    under("/dev")
        || under("/proc")
        || under("/sys")
        || mp.starts_with("/run/credentials/")
        || mp.starts_with("/var/lib/docker/")
        || mp.starts_with("/var/lib/containers/storage/")
}

/// Pool threads at most: beyond this, stats wait in the queue (and time out).
const MAX_WORKERS: usize = 8;
/// Threads kept even when no stat hangs; more start only while some are stuck (each
/// thread costs memory, and answering stats take microseconds).
const MIN_WORKERS: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    /// "major:minor"
    pub dev_id: String,
    /// Root of the mount within its filesystem ("/" unless a bind mount of a subtree).
    pub root: String,
    pub readonly: bool,
}

/// Parses `/proc/self/mountinfo`; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let mut r = right.split(' ');
            if l.len() < 6 {
                return None;
            }
            let fstype = r.next()?;
            let device = r.next()?;
            Some(Mount {
                device: unescape(device),
                mountpoint: unescape(l[4]),
                fstype: unescape(fstype),
                dev_id: l[2].to_string(),
                root: unescape(l[3]),
                readonly: l[5].split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space) in mountinfo fields.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts worth reporting: pseudo filesystems dropped; one entry per device and mount
/// point (the last, which hides earlier ones); one per device id, preferring the mount of
/// the filesystem's root and then the shortest path (bind mounts repeat the same numbers).
pub fn select(mounts: &[Mount]) -> Vec<Mount> {
    let mut by_point: Vec<&Mount> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for m in mounts {
        if EXCLUDED_FSTYPES.contains(&m.fstype.as_str()) || excluded_mountpoint(&m.mountpoint) {
            continue;
        }
        match index.get(&(m.device.as_str(), m.mountpoint.as_str())) {
            Some(&i) => by_point[i] = m,
            None => {
                index.insert((&m.device, &m.mountpoint), by_point.len());
                by_point.push(m);
            }
        }
    }
    let mut best: HashMap<&str, &Mount> = HashMap::new();
    for m in &by_point {
        let rank = |m: &Mount| (m.root != "/", m.mountpoint.len());
        best.entry(&m.dev_id)
            .and_modify(|b| {
                if rank(m) < rank(b) {
                    *b = m;
                }
            })
            .or_insert(m);
    }
    by_point
        .into_iter()
        .filter(|m| {
            best.get(m.dev_id.as_str())
                .is_some_and(|b| std::ptr::eq(*b, *m))
        })
        .cloned()
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    pub size_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub files: u64,
    pub files_free: u64,
    pub readonly: bool,
}

pub type StatFn = dyn Fn(&Path) -> io::Result<FsStats> + Send + Sync;

pub fn statvfs(path: &Path) -> io::Result<FsStats> {
    let s = rustix::fs::statvfs(path)?;
    let unit = if s.f_frsize > 0 {
        s.f_frsize
    } else {
        s.f_bsize
    };
    Ok(FsStats {
        size_bytes: s.f_blocks.saturating_mul(unit),
        free_bytes: s.f_bfree.saturating_mul(unit),
        avail_bytes: s.f_bavail.saturating_mul(unit),
        files: s.f_files,
        files_free: s.f_ffree,
        readonly: s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatOutcome {
    Ok(FsStats),
    Failed,
    Timeout,
}

struct Job {
    index: usize,
    path: PathBuf,
    reply: mpsc::Sender<(usize, io::Result<FsStats>)>,
}

struct PoolShared {
    stat: Box<StatFn>,
    jobs: Mutex<mpsc::Receiver<Job>>,
    /// Mount points whose stat has been handed out and not returned yet.
    in_flight: Mutex<HashSet<PathBuf>>,
    idle: AtomicUsize,
}

/// Bounded, growing pool of stat workers (started on demand, at most `MAX_WORKERS`).
pub struct StatPool {
    shared: Arc<PoolShared>,
    sender: Mutex<mpsc::Sender<Job>>,
    workers: AtomicUsize,
}

impl StatPool {
    pub fn new(stat: Box<StatFn>) -> Self {
        let (tx, rx) = mpsc::channel();
        StatPool {
            shared: Arc::new(PoolShared {
                stat,
                jobs: Mutex::new(rx),
                in_flight: Mutex::new(HashSet::new()),
                idle: AtomicUsize::new(0),
            }),
            sender: Mutex::new(tx),
            workers: AtomicUsize::new(0),
        }
    }

    fn spawn_worker(&self) {
        // Idle from birth (counted before it can take a job), so a worker that has not been
        // scheduled yet is not doubled.
        self.shared.idle.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("statvfs".into())
            .spawn(move || {
                loop {
                    let job = {
                        let rx = shared.jobs.lock().unwrap_or_else(|p| p.into_inner());
                        rx.recv()
                    };
                    let Ok(job) = job else { return };
                    shared.idle.fetch_sub(1, Ordering::SeqCst);
                    let result = (shared.stat)(&job.path);
                    shared
                        .in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&job.path);
                    let _ = job.reply.send((job.index, result));
                    shared.idle.fetch_add(1, Ordering::SeqCst);
                }
            });
        match spawned {
            Ok(_) => {
                self.workers.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                self.shared.idle.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Stats every path, waiting at most `timeout` in all.
    pub fn stat_all(&self, paths: &[PathBuf], timeout: Duration) -> Vec<StatOutcome> {
        let deadline = Instant::now() + timeout;
        let mut out = vec![StatOutcome::Timeout; paths.len()];
        let (reply, results) = mpsc::channel();
        let mut pending = 0;
        {
            let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
            for (index, path) in paths.iter().enumerate() {
                let fresh = self
                    .shared
                    .in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(path.clone());
                if !fresh {
                    continue; // still stuck from an earlier scrape
                }
                let workers = self.workers.load(Ordering::SeqCst);
                let idle = self.shared.idle.load(Ordering::SeqCst);
                if workers < MIN_WORKERS || (idle == 0 && workers < MAX_WORKERS) {
                    self.spawn_worker();
                }
                let job = Job {
                    index,
                    path: path.clone(),
                    reply: reply.clone(),
                };
                if sender.send(job).is_ok() {
                    pending += 1;
                }
            }
        }
        drop(reply);
        while pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match results.recv_timeout(left) {
                Ok((i, r)) => {
                    out[i] = match r {
                        Ok(s) => StatOutcome::Ok(s),
                        Err(_) => StatOutcome::Failed,
                    };
                    pending -= 1;
                }
                Err(_) => break,
            }
        }
        out
    }
}

pub struct FilesystemCollector {
    mountinfo: PathBuf,
    config: FilesystemConfig,
    pool: StatPool,
}

/// An expected mount point and whether it is mounted.
pub type MountPresence = (String, bool);

/// One scrape's view of one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSnapshot {
    pub mount: Mount,
    pub outcome: StatOutcome,
}

impl FilesystemCollector {
    pub fn new(config: FilesystemConfig) -> Self {
        Self::with_sources(config, "/proc/self/mountinfo".into(), Box::new(statvfs))
    }

    pub fn with_sources(config: FilesystemConfig, mountinfo: PathBuf, stat: Box<StatFn>) -> Self {
        FilesystemCollector {
            mountinfo,
            config,
            pool: StatPool::new(stat),
        }
    }

    /// Selected mounts with their stats, and presence of each expected mount point.
    pub fn scrape(&self) -> anyhow::Result<(Vec<MountSnapshot>, Vec<MountPresence>)> {
        let text = std::fs::read_to_string(&self.mountinfo)?;
        let all = parse_mountinfo(&text);
        let present = self
            .config
            .expected_mountpoints
            .iter()
            .map(|p| {
                let want = p.trim_end_matches('/');
                let want = if want.is_empty() { "/" } else { want };
                (p.clone(), all.iter().any(|m| m.mountpoint == want))
            })
            .collect();
        let mounts = select(&all);
        let paths: Vec<PathBuf> = mounts
            .iter()
            .map(|m| PathBuf::from(&m.mountpoint))
            .collect();
        let outcomes = self.pool.stat_all(&paths, self.config.stat_timeout);
        let snaps = mounts
            .into_iter()
            .zip(outcomes)
            .map(|(mount, outcome)| MountSnapshot { mount, outcome })
            .collect();
        Ok((snaps, present))
    }

    pub fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        let (mounts, present) = self.scrape()?;
        encode(&mounts, &present, registry);
        Ok(())
    }
}

type Labels = Vec<(&'static str, String)>;

pub fn encode(mounts: &[MountSnapshot], present: &[(String, bool)], registry: &mut Registry) {
    let size = Family::<Labels, Gauge>::default();
    let free = Family::<Labels, Gauge>::default();
    let avail = Family::<Labels, Gauge>::default();
    let files = Family::<Labels, Gauge>::default();
    let files_free = Family::<Labels, Gauge>::default();
    let readonly = Family::<Labels, Gauge>::default();
    let error = Family::<Labels, Gauge>::default();
    let mount_present = Family::<Labels, Gauge>::default();
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for m in mounts {
        let l: Labels = vec![
            ("device", m.mount.device.clone()),
            ("mountpoint", m.mount.mountpoint.clone()),
            ("fstype", m.mount.fstype.clone()),
        ];
        if let StatOutcome::Ok(s) = &m.outcome {
            size.get_or_create(&l).set(clamp(s.size_bytes));
            free.get_or_create(&l).set(clamp(s.free_bytes));
            avail.get_or_create(&l).set(clamp(s.avail_bytes));
            files.get_or_create(&l).set(clamp(s.files));
            files_free.get_or_create(&l).set(clamp(s.files_free));
        }
        let ro = m.mount.readonly || matches!(&m.outcome, StatOutcome::Ok(s) if s.readonly);
        readonly.get_or_create(&l).set(i64::from(ro));
        for (reason, hit) in [
            ("timeout", m.outcome == StatOutcome::Timeout),
            ("stat_failed", m.outcome == StatOutcome::Failed),
        ] {
            let mut le = l.clone();
            le.push(("reason", reason.to_string()));
            error.get_or_create(&le).set(i64::from(hit));
        }
    }
    for (mp, here) in present {
        mount_present
            .get_or_create(&vec![("mountpoint", mp.clone())])
            .set(i64::from(*here));
    }
    for (name, help, fam) in [
        (
            "seattle_filesystem_size_bytes",
            "Filesystem size in bytes",
            size,
        ),
        (
            "seattle_filesystem_free_bytes",
            "Free bytes, including reserved",
            free,
        ),
        (
            "seattle_filesystem_avail_bytes",
            "Bytes available to non-root users",
            avail,
        ),
        ("seattle_filesystem_files", "Inodes", files),
        ("seattle_filesystem_files_free", "Free inodes", files_free),
        (
            "seattle_filesystem_readonly",
            "1 if mounted read-only",
            readonly,
        ),
        (
            "seattle_filesystem_device_error",
            "1 if the stat failed or did not answer in time",
            error,
        ),
        (
            "seattle_filesystem_mount_present",
            "For each expected mount point: 1 if mounted",
            mount_present,
        ),
    ] {
        registry.register(name, help, fam);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw - proc proc rw
24 22 0:22 / /run rw,nosuid - tmpfs tmpfs rw
25 22 8:1 /var/lib/mysql /srv/db rw - ext4 /dev/sda1 rw
26 22 8:1 / / rw,relatime - ext4 /dev/sda1 rw
27 22 0:40 / /mnt/nfs\\040share ro - nfs4 server:/export rw
28 22 0:41 / /var/lib/docker/overlay2/x rw - overlay overlay rw
29 22 8:17 / /data ro - xfs /dev/sdb1 rw
garbage line
";

    #[test]
    fn parses_and_selects_mounts() {
        let all = parse_mountinfo(MOUNTINFO);
        assert_eq!(all.len(), 8);
        assert_eq!(all[5].mountpoint, "/mnt/nfs share");
        assert!(all[5].readonly);
        let sel = select(&all);
        let points: Vec<&str> = sel.iter().map(|m| m.mountpoint.as_str()).collect();
        assert_eq!(points, vec!["/", "/run", "/mnt/nfs share", "/data"]);
        assert!(sel[3].readonly);
    }

    fn collector(stat: Box<StatFn>, dir: &Path) -> FilesystemCollector {
        let info = dir.join("mountinfo");
        std::fs::write(&info, MOUNTINFO).unwrap();
        FilesystemCollector::with_sources(
            FilesystemConfig {
                expected_mountpoints: vec!["/data".into(), "/backup".into()],
                // Long enough for answering stats on a loaded machine; only the hung one waits.
                stat_timeout: Duration::from_secs(2),
            },
            info,
            stat,
        )
    }

    #[test]
    fn hung_stat_is_reported_and_not_queued_again() {
        let dir = std::env::temp_dir().join(format!("spe-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let calls = Arc::new(AtomicUsize::new(0));
        let nfs_calls = Arc::clone(&calls);
        let c = collector(
            Box::new(move |p: &Path| {
                if p == Path::new("/mnt/nfs share") {
                    nfs_calls.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.lock().unwrap().recv();
                    return Ok(FsStats::default());
                }
                if p == Path::new("/run") {
                    return Err(io::Error::other("no"));
                }
                Ok(FsStats {
                    size_bytes: 100,
                    ..FsStats::default()
                })
            }),
            &dir,
        );
        for _ in 0..3 {
            let (mounts, present) = c.scrape().unwrap();
            let outcome = |mp: &str| {
                mounts
                    .iter()
                    .find(|m| m.mount.mountpoint == mp)
                    .unwrap()
                    .outcome
                    .clone()
            };
            assert_eq!(outcome("/mnt/nfs share"), StatOutcome::Timeout);
            assert_eq!(outcome("/run"), StatOutcome::Failed);
            assert!(matches!(outcome("/data"), StatOutcome::Ok(s) if s.size_bytes == 100));
            assert_eq!(
                present,
                vec![("/data".to_string(), true), ("/backup".to_string(), false)]
            );
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "hung stat was queued again"
        );
        release.send(()).unwrap();
        drop(release); // later stats of the mount answer at once
        // Once the stuck stat returns, the mount is stat'ed again.
        let mut again = false;
        // Polls: the released worker may not have run yet on a loaded machine.
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(50));
            let (mounts, _) = c.scrape().unwrap();
            if mounts.iter().any(|m| {
                m.mount.mountpoint == "/mnt/nfs share" && m.outcome != StatOutcome::Timeout
            }) {
                again = true;
                break;
            }
        }
        assert!(again);
        assert!(calls.load(Ordering::SeqCst) >= 2);
        let mut r = Registry::default();
        c.collect(&mut r).unwrap();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(text.contains(
            "seattle_filesystem_device_error{device=\"tmpfs\",mountpoint=\"/run\",fstype=\"tmpfs\",reason=\"stat_failed\"} 1"
        ), "{text}");
        assert!(text.contains("seattle_filesystem_mount_present{mountpoint=\"/backup\"} 0"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn real_mounts_of_this_machine() {
        let c = FilesystemCollector::new(FilesystemConfig {
            expected_mountpoints: vec!["/".into()],
            ..FilesystemConfig::default()
        });
        let (mounts, present) = c.scrape().unwrap();
        assert_eq!(present, vec![("/".to_string(), true)]);
        let mut seen = HashSet::new();
        for m in &mounts {
            assert!(seen.insert((m.mount.device.clone(), m.mount.mountpoint.clone())));
        }
    }
}
