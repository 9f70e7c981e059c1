//! Process groups: count, expected range, CPU, memory, fds, restarts, listening.
//!
//! Per scrape each process costs one `stat` read. What decides group membership
//! (command line, executable, uid) is read once per process lifetime: the result is
//! cached under (pid, start time, comm, command-line address). Comm and the address of
//! the command line (`arg_start`, from the same `stat` read) are part of the key because
//! `exec` keeps the pid and start time but changes the program (and so, almost always,
//! comm) and always builds a new stack; a child seen between fork and an `exec` of a
//! program with its parent's comm (python starting python) is still classified again.
//! An answer drawn from an empty or unreadable command line is not cached: during
//! `exec` the kernel sets the new comm before the new command line exists, so a
//! process seen in that window reads as "" and would otherwise stay unmatched for
//! its whole life.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::groups::{Matcher, ProcessGroup};
use crate::proc_scan::{self, ProcReader, ProcScanner, Stat};
use crate::tcp_check;

/// What one scrape found for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    pub name: String,
    pub processes: u64,
    pub min: u64,
    pub max: Option<u64>,
    pub in_range: bool,
    /// Unix seconds; 0 when the group is empty.
    pub oldest_start_time_seconds: f64,
    pub cpu_user_seconds: f64,
    pub cpu_system_seconds: f64,
    pub resident_memory_bytes: u64,
    pub open_fds: u64,
    pub restarts: u64,
    pub listening: Vec<(SocketAddr, bool)>,
}

struct CachedProcess {
    starttime: u64,
    comm: [u8; 16],
    comm_len: u8,
    arg_start: u64,
    /// Indexes of the groups this process belongs to; empty (no allocation) for most.
    groups: Box<[u16]>,
    /// False when the answer came from an empty or unreadable command line (mid-`exec`,
    /// or exiting): classified again on the next scrape.
    settled: bool,
    generation: u64,
}

#[derive(Default)]
struct GroupState {
    /// (pid, starttime) → (utime, stime, generation last seen), in clock ticks.
    members: HashMap<(u32, u64), (u64, u64, u64)>,
    /// CPU of members that have exited, so the counter does not go down.
    exited_utime: u64,
    exited_stime: u64,
    restarts: u64,
    had_members: bool,
    was_empty: bool,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    processes: u64,
    oldest_start_ticks: Option<u64>,
    utime: u64,
    stime: u64,
    rss_pages: u64,
    open_fds: u64,
}

struct State {
    scanner: ProcScanner,
    cache: HashMap<u32, CachedProcess>,
    generation: u64,
    groups: Vec<GroupState>,
    tallies: Vec<Tally>,
}

pub struct ProcessCollector {
    groups: Vec<ProcessGroup>,
    connect_timeout: Duration,
    ticks_per_second: f64,
    page_size: u64,
    boot_time: u64,
    state: Mutex<State>,
}

impl ProcessCollector {
    pub fn new(groups: Vec<ProcessGroup>) -> std::io::Result<Self> {
        Self::with_proc_root(groups, Path::new("/proc"))
    }

    pub fn with_proc_root(groups: Vec<ProcessGroup>, proc_root: &Path) -> std::io::Result<Self> {
        let n = groups.len();
        Ok(ProcessCollector {
            groups,
            connect_timeout: Duration::from_millis(500),
            ticks_per_second: proc_scan::clock_ticks_per_second().max(1) as f64,
            page_size: proc_scan::page_size(),
            boot_time: proc_scan::boot_time(proc_root).unwrap_or(0),
            state: Mutex::new(State {
                scanner: ProcScanner::new(proc_root)?,
                cache: HashMap::new(),
                generation: 0,
                groups: (0..n).map(|_| GroupState::default()).collect(),
                tallies: vec![Tally::default(); n],
            }),
        })
    }

    pub fn groups(&self) -> &[ProcessGroup] {
        &self.groups
    }

    /// Scans `/proc` once and returns every configured group.
    pub fn scrape(&self) -> anyhow::Result<Vec<GroupSnapshot>> {
        let targets: Vec<(usize, SocketAddr)> = self
            .groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.listen.iter().map(move |a| (i, *a)))
            .collect();
        // Before the lock: a slow address does not hold up a concurrent scrape's /proc walk.
        let addrs: Vec<SocketAddr> = targets.iter().map(|(_, a)| *a).collect();
        let answered = tcp_check::accepts(&addrs, self.connect_timeout);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        self.scan(state)?;

        let mut out = Vec::with_capacity(self.groups.len());
        for (i, g) in self.groups.iter().enumerate() {
            let t = state.tallies[i];
            let gs = &state.groups[i];
            out.push(GroupSnapshot {
                name: g.name.clone(),
                processes: t.processes,
                min: g.min,
                max: g.max,
                in_range: t.processes >= g.min && g.max.is_none_or(|m| t.processes <= m),
                oldest_start_time_seconds: t.oldest_start_ticks.map_or(0.0, |s| {
                    self.boot_time as f64 + s as f64 / self.ticks_per_second
                }),
                cpu_user_seconds: (gs.exited_utime + t.utime) as f64 / self.ticks_per_second,
                cpu_system_seconds: (gs.exited_stime + t.stime) as f64 / self.ticks_per_second,
                resident_memory_bytes: t.rss_pages.saturating_mul(self.page_size),
                open_fds: t.open_fds,
                restarts: gs.restarts,
                listening: targets
                    .iter()
                    .zip(&answered)
                    .filter(|((gi, _), _)| *gi == i)
                    .map(|((_, a), ok)| (*a, *ok))
                    .collect(),
            });
        }
        Ok(out)
    }

    fn scan(&self, state: &mut State) -> anyhow::Result<()> {
        state.generation += 1;
        let generation = state.generation;
        for t in state.tallies.iter_mut() {
            *t = Tally::default();
        }
        let State {
            scanner,
            cache,
            groups: group_states,
            tallies,
            ..
        } = state;
        scanner.for_each(|stat, reader| {
            if stat.is_kernel_thread() || stat.is_defunct() {
                return;
            }
            let comm = &stat.comm[..stat.comm.len().min(16)];
            let fresh = match cache.get(&stat.pid) {
                Some(c) => {
                    !c.settled
                        || c.starttime != stat.starttime
                        || c.arg_start != stat.arg_start
                        || &c.comm[..c.comm_len as usize] != comm
                }
                None => true,
            };
            if fresh {
                let (groups, settled) = self.classify(stat, reader);
                let mut c = [0u8; 16];
                c[..comm.len()].copy_from_slice(comm);
                cache.insert(
                    stat.pid,
                    CachedProcess {
                        starttime: stat.starttime,
                        comm: c,
                        comm_len: comm.len() as u8,
                        arg_start: stat.arg_start,
                        groups,
                        settled,
                        generation,
                    },
                );
            }
            let Some(cached) = cache.get_mut(&stat.pid) else {
                return;
            };
            cached.generation = generation;
            if cached.groups.is_empty() {
                return;
            }
            // Counted once per process even when it belongs to several groups.
            let fds = reader.open_fds(stat.pid).unwrap_or(0);
            for &gi in cached.groups.iter() {
                let gi = gi as usize;
                let t = &mut tallies[gi];
                t.processes += 1;
                t.oldest_start_ticks = Some(
                    t.oldest_start_ticks
                        .map_or(stat.starttime, |o| o.min(stat.starttime)),
                );
                t.utime += stat.utime;
                t.stime += stat.stime;
                t.rss_pages += stat.rss;
                t.open_fds += fds;
                group_states[gi].members.insert(
                    (stat.pid, stat.starttime),
                    (stat.utime, stat.stime, generation),
                );
            }
        })?;
        cache.retain(|_, c| c.generation == generation);
        for (gs, t) in group_states.iter_mut().zip(tallies.iter()) {
            let (mut gone_u, mut gone_s) = (0, 0);
            gs.members.retain(|_, &mut (u, s, g)| {
                if g != generation {
                    gone_u += u;
                    gone_s += s;
                }
                g == generation
            });
            gs.exited_utime += gone_u;
            gs.exited_stime += gone_s;
            if t.processes > 0 {
                if gs.had_members && gs.was_empty {
                    gs.restarts += 1;
                }
                gs.had_members = true;
            }
            gs.was_empty = t.processes == 0;
        }
        Ok(())
    }

    /// Which groups a (new) process belongs to; reads its command line, executable
    /// and uid only when some group needs them. The flag is false when a command line
    /// was needed but read empty or not at all, so the answer must not be cached.
    fn classify(&self, stat: &Stat<'_>, reader: &mut ProcReader) -> (Box<[u16]>, bool) {
        let mut uid: Option<Option<u32>> = None;
        let mut exe: Option<Option<Vec<u8>>> = None;
        let mut cmdline: Option<Option<String>> = None;
        let mut out: Vec<u16> = Vec::new();
        for (i, g) in self.groups.iter().enumerate() {
            let m: &Matcher = &g.matcher;
            // The kernel keeps only the first 15 bytes of a command name.
            let same_comm = |c: &String| c.as_bytes()[..c.len().min(15)] == *stat.comm;
            if !m.comm.is_empty() && !m.comm.iter().any(same_comm) {
                continue;
            }
            if let Some(want) = m.uid {
                let have = *uid.get_or_insert_with(|| reader.uid(stat.pid));
                if have != Some(want) {
                    continue;
                }
            }
            if m.needs_cmdline() {
                let cmd = cmdline.get_or_insert_with(|| read_cmdline(reader, stat));
                let Some(cmd) = cmd.as_deref() else {
                    continue;
                };
                if let Some(re) = &m.cmdline
                    && !re.is_match(cmd)
                {
                    continue;
                }
                if !m.exe.is_empty() {
                    let path = exe.get_or_insert_with(|| reader.exe(stat.pid));
                    let argv0 = cmd.split(' ').next().unwrap_or("");
                    let hit = m
                        .exe
                        .iter()
                        .any(|e| e == argv0 || path.as_deref().is_some_and(|p| p == e.as_bytes()));
                    if !hit {
                        continue;
                    }
                }
            }
            if let Ok(i) = u16::try_from(i) {
                out.push(i);
            }
        }
        let settled = match &cmdline {
            None => true,
            Some(read) => read.as_deref().is_some_and(|c| !c.is_empty()),
        };
        (out.into_boxed_slice(), settled)
    }

    /// Scrapes and writes every group's metrics into `registry`.
    pub fn collect(&self, registry: &mut Registry) -> anyhow::Result<()> {
        let groups = self.scrape()?;
        encode(&groups, registry);
        Ok(())
    }
}

type Labels = Vec<(&'static str, String)>;

fn group_label(name: &str) -> Labels {
    vec![("group", name.to_string())]
}

/// Writes snapshots as metrics (names from docs/metrics.md).
pub fn encode(groups: &[GroupSnapshot], registry: &mut Registry) {
    let processes = Family::<Labels, Gauge>::default();
    let min = Family::<Labels, Gauge>::default();
    let max = Family::<Labels, Gauge>::default();
    let in_range = Family::<Labels, Gauge>::default();
    let oldest = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let cpu = Family::<Labels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    let rss = Family::<Labels, Gauge>::default();
    let fds = Family::<Labels, Gauge>::default();
    let restarts = Family::<Labels, Counter>::default();
    let listening = Family::<Labels, Gauge>::default();
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for g in groups {
        let l = group_label(&g.name);
        processes.get_or_create(&l).set(clamp(g.processes));
        min.get_or_create(&l).set(clamp(g.min));
        if let Some(m) = g.max {
            max.get_or_create(&l).set(clamp(m));
        }
        in_range.get_or_create(&l).set(i64::from(g.in_range));
        oldest.get_or_create(&l).set(g.oldest_start_time_seconds);
        for (mode, v) in [
            ("user", g.cpu_user_seconds),
            ("system", g.cpu_system_seconds),
        ] {
            let mut lm = l.clone();
            lm.push(("mode", mode.to_string()));
            cpu.get_or_create(&lm).inc_by(v);
        }
        rss.get_or_create(&l).set(clamp(g.resident_memory_bytes));
        fds.get_or_create(&l).set(clamp(g.open_fds));
        restarts.get_or_create(&l).inc_by(g.restarts);
        for (addr, up) in &g.listening {
            let mut la = l.clone();
            la.push(("address", addr.to_string()));
            listening.get_or_create(&la).set(i64::from(*up));
        }
    }
    registry.register(
        "seattle_process_group_processes",
        "Processes matching the group now",
        processes,
    );
    registry.register(
        "seattle_process_group_expected_min_processes",
        "Configured minimum number of processes",
        min,
    );
    registry.register(
        "seattle_process_group_expected_max_processes",
        "Configured maximum number of processes (absent when unbounded)",
        max,
    );
    registry.register(
        "seattle_process_group_in_range",
        "1 if the number of processes is within [min, max]",
        in_range,
    );
    registry.register(
        "seattle_process_group_oldest_start_time_seconds",
        "Start time of the oldest member, Unix seconds; 0 when none",
        oldest,
    );
    // prometheus-client appends `_total` to counters.
    registry.register(
        "seattle_process_group_cpu_seconds",
        "CPU used by members, including members that have exited",
        cpu,
    );
    registry.register(
        "seattle_process_group_resident_memory_bytes",
        "Summed resident memory of members",
        rss,
    );
    registry.register(
        "seattle_process_group_open_fds",
        "Summed open file descriptors of members",
        fds,
    );
    registry.register(
        "seattle_process_group_restarts",
        "Times the group came back from 0 processes",
        restarts,
    );
    registry.register(
        "seattle_process_group_listening",
        "1 if the configured TCP address accepts connections",
        listening,
    );
}

/// How often, and how far apart, a command line read mid-exec is read again.
const MID_EXEC_RETRIES: u32 = 10;
const MID_EXEC_PAUSE: Duration = Duration::from_micros(100);

/// The command line. A process caught in `exec` (its new memory map has no arguments yet:
/// `arg_start` 0 and an empty command line) has them microseconds later: read again a few times
/// rather than miss it until the next scrape. Other processes are read once.
fn read_cmdline(reader: &mut ProcReader, stat: &Stat<'_>) -> Option<String> {
    for _ in 0..MID_EXEC_RETRIES {
        match reader.cmdline(stat.pid) {
            Some([]) if stat.arg_start == 0 => std::thread::sleep(MID_EXEC_PAUSE),
            read => return read.map(|b| String::from_utf8_lossy(b).into_owned()),
        }
    }
    reader
        .cmdline(stat.pid)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::Matcher;
    use regex::Regex;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    fn group(name: &str, pattern: &str) -> ProcessGroup {
        ProcessGroup {
            name: name.into(),
            matcher: Matcher {
                cmdline: Some(Regex::new(pattern).unwrap()),
                ..Matcher::default()
            },
            min: 1,
            max: Some(2),
            listen: vec![],
        }
    }

    fn spawn_named(argv0: &str) -> Child {
        Command::new("sleep").arg0(argv0).arg("60").spawn().unwrap()
    }

    fn find<'a>(s: &'a [GroupSnapshot], name: &str) -> &'a GroupSnapshot {
        s.iter().find(|g| g.name == name).unwrap()
    }

    #[test]
    fn counts_members_and_keeps_cpu_and_restarts_across_exits() {
        let tag = format!("spe-unit-{}", std::process::id());
        let c = ProcessCollector::new(vec![
            group("g", &format!("^{tag}-a ")),
            group("absent", "^no-such-program-anywhere "),
        ])
        .unwrap();
        let s = c.scrape().unwrap();
        assert_eq!(find(&s, "g").processes, 0);
        assert!(!find(&s, "g").in_range);
        assert_eq!(find(&s, "g").oldest_start_time_seconds, 0.0);

        let mut a = spawn_named(&format!("{tag}-a"));
        let mut b = spawn_named(&format!("{tag}-a"));
        let mut other = spawn_named(&format!("{tag}-b"));
        let s = c.scrape().unwrap();
        let g = find(&s, "g");
        assert_eq!(g.processes, 2);
        assert!(g.in_range);
        assert!(g.resident_memory_bytes > 0);
        assert!(g.open_fds >= 2);
        assert!(g.oldest_start_time_seconds > 1.6e9);
        assert_eq!(g.restarts, 0);
        assert_eq!(find(&s, "absent").processes, 0);
        let cpu_before = g.cpu_user_seconds + g.cpu_system_seconds;

        a.kill().unwrap();
        a.wait().unwrap();
        let s = c.scrape().unwrap();
        assert_eq!(find(&s, "g").processes, 1);
        let cpu_after = find(&s, "g").cpu_user_seconds + find(&s, "g").cpu_system_seconds;
        assert!(cpu_after >= cpu_before, "{cpu_after} < {cpu_before}");

        b.kill().unwrap();
        b.wait().unwrap();
        let s = c.scrape().unwrap();
        assert_eq!(find(&s, "g").processes, 0);
        assert_eq!(find(&s, "g").restarts, 0);

        let mut d = spawn_named(&format!("{tag}-a"));
        let s = c.scrape().unwrap();
        assert_eq!(find(&s, "g").processes, 1);
        assert_eq!(find(&s, "g").restarts, 1);
        for p in [&mut d, &mut other] {
            p.kill().unwrap();
            p.wait().unwrap();
        }
    }

    /// A fake `/proc` with one process, whose `stat` and `cmdline` the test rewrites.
    fn fake_process(root: &Path, comm: &str, arg_start: u64, cmdline: &[u8]) {
        let dir = root.join("4242");
        std::fs::create_dir_all(&dir).unwrap();
        let stat = format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194304 100 0 0 0 3 1 0 0 20 0 1 0 777 1000000 50 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 {arg_start} 0 0 0 0\n"
        );
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    }

    #[test]
    fn process_seen_mid_exec_is_matched_once_its_command_line_exists() {
        let root = std::env::temp_dir().join(format!("seattle-host-exec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let c =
            ProcessCollector::with_proc_root(vec![group("backend", r"backend_daemon\.py")], &root)
                .unwrap();
        // Between fork and exec: the parent's comm and command line.
        fake_process(
            &root,
            "e2e-test-thread",
            1000,
            b"/target/debug/deps/e2e-123\0",
        );
        assert_eq!(c.scrape().unwrap()[0].processes, 0);
        // Inside exec: the new comm is set before the new command line is. The command
        // line's address stays 0 here as for a process the exporter may not trace.
        fake_process(&root, "sleep", 0, b"");
        assert_eq!(c.scrape().unwrap()[0].processes, 0);
        // Same pid, start time and comm; now the command line is there.
        let argv = b"/usr/bin/python /home/ch/deploy/backend/backend_daemon.py\x00600\x00";
        fake_process(&root, "sleep", 0, argv);
        assert_eq!(c.scrape().unwrap()[0].processes, 1);
        // Settled: still counted, and the cache keeps the answer.
        assert_eq!(c.scrape().unwrap()[0].processes, 1);
        assert!(c.state.lock().unwrap().cache[&4242].settled);
        // A further exec of a program with the same comm: a new command-line address.
        fake_process(&root, "sleep", 3000, b"sleep\x001\x00");
        assert_eq!(c.scrape().unwrap()[0].processes, 0);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn listening_reports_open_and_closed_ports() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let mut g = group("l", "^no-such-program-anywhere ");
        g.listen = vec![open.local_addr().unwrap(), closed_addr];
        let c = ProcessCollector::new(vec![g]).unwrap();
        let s = c.scrape().unwrap();
        assert_eq!(
            s[0].listening,
            vec![(open.local_addr().unwrap(), true), (closed_addr, false)]
        );
    }

    #[test]
    fn comm_exe_and_user_matching() {
        let me = std::process::id();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").unwrap().uid();
        let m = |matcher: Matcher| ProcessGroup {
            name: "x".into(),
            matcher,
            min: 0,
            max: None,
            listen: vec![],
        };
        let groups = vec![
            m(Matcher {
                exe: vec![exe.display().to_string()],
                ..Matcher::default()
            }),
            m(Matcher {
                comm: vec![comm.trim_end().to_string()],
                uid: Some(uid),
                ..Matcher::default()
            }),
            m(Matcher {
                comm: vec![comm.trim_end().to_string()],
                uid: Some(uid.wrapping_add(12345)),
                ..Matcher::default()
            }),
        ];
        let c = ProcessCollector::new(groups).unwrap();
        let mut state = c.state.lock().unwrap();
        c.scan(&mut state).unwrap();
        let mine = &state.cache[&me].groups;
        assert!(mine.contains(&0) && mine.contains(&1) && !mine.contains(&2));
    }

    #[test]
    fn encodes_every_metric_name() {
        let s = GroupSnapshot {
            name: "g".into(),
            processes: 0,
            min: 1,
            max: None,
            in_range: false,
            oldest_start_time_seconds: 0.0,
            cpu_user_seconds: 1.5,
            cpu_system_seconds: 0.5,
            resident_memory_bytes: 0,
            open_fds: 0,
            restarts: 0,
            listening: vec![("127.0.0.1:8020".parse().unwrap(), false)],
        };
        let mut r = Registry::default();
        encode(&[s], &mut r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        for line in [
            "seattle_process_group_processes{group=\"g\"} 0",
            "seattle_process_group_expected_min_processes{group=\"g\"} 1",
            "seattle_process_group_in_range{group=\"g\"} 0",
            "seattle_process_group_oldest_start_time_seconds{group=\"g\"} 0.0",
            "seattle_process_group_cpu_seconds_total{group=\"g\",mode=\"user\"} 1.5",
            "seattle_process_group_resident_memory_bytes{group=\"g\"} 0",
            "seattle_process_group_open_fds{group=\"g\"} 0",
            "seattle_process_group_restarts_total{group=\"g\"} 0",
            "seattle_process_group_listening{group=\"g\",address=\"127.0.0.1:8020\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("seattle_process_group_expected_max_processes{"));
    }
}
