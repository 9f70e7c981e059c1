//! Raw, allocation-free reading of `/proc`: one `stat` read per process per scrape.
//!
//! Why not the `procfs` crate: its `Process::stat()` allocates the file contents and the
//! command name per process, and its directory walk allocates per entry; with 2,000
//! processes those allocations cost more than the three syscalls (open, read, close)
//! that are the floor. Here `/proc` is walked with `getdents` into a reused buffer and
//! every path is built on the stack.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::path::Path;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, RawDir};

/// `PF_KTHREAD` in the `flags` field of `stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of `/proc/<pid>/stat` this exporter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    pub pid: u32,
    pub comm: &'a [u8],
    pub state: u8,
    pub flags: u64,
    pub utime: u64,
    pub stime: u64,
    /// Clock ticks after boot.
    pub starttime: u64,
    /// Pages.
    pub rss: u64,
    /// Address of the command line (field 48): a new one after each `exec`, even when the
    /// program and so comm stay the same. 0 when not permitted to see it (another user's
    /// process without ptrace access) or on kernels before 3.5.
    pub arg_start: u64,
}

impl Stat<'_> {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
    /// Zombie or dead: no longer running anything.
    pub fn is_defunct(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses one `/proc/<pid>/stat` line. The command name may contain spaces and
/// parentheses, so it spans from the first `(` to the last `)`.
pub fn parse_stat(buf: &[u8]) -> Option<Stat<'_>> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = parse_u64(trim(&buf[..open]))?;
    let comm = &buf[open + 1..close];
    let mut fields = buf
        .get(close + 1..)?
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    // Field numbers as in proc(5): state is 3.
    let state = *fields.next()?.first()?;
    let mut nth = |skip: usize| -> Option<u64> { parse_u64(fields.nth(skip)?) };
    let flags = nth(5)?; // 9
    let utime = nth(4)?; // 14
    let stime = nth(0)?; // 15
    let starttime = nth(6)?; // 22
    let rss = nth(1)?; // 24
    let arg_start = nth(23).unwrap_or(0); // 48
    Some(Stat {
        pid: u32::try_from(pid).ok()?,
        comm,
        state,
        flags,
        utime,
        stime,
        starttime,
        rss,
        arg_start,
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &b[s..e.max(s)]
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// A NUL-terminated `<pid>/<suffix>` path on the stack.
struct PidPath {
    buf: [u8; 48],
}

impl PidPath {
    fn new(pid: u32, suffix: &str) -> Option<Self> {
        let mut buf = [0u8; 48];
        let mut digits = [0u8; 10];
        let mut n = pid;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let total = len + suffix.len();
        if total >= buf.len() {
            return None;
        }
        for i in 0..len {
            buf[i] = digits[len - 1 - i];
        }
        buf[len..total].copy_from_slice(suffix.as_bytes());
        Some(PidPath { buf })
    }
    fn as_cstr(&self) -> &CStr {
        // The buffer is zeroed beyond the path, so a NUL always follows it.
        CStr::from_bytes_until_nul(&self.buf).unwrap_or_default()
    }
}

/// Reads of individual processes, with reused buffers.
pub struct ProcReader {
    proc_dir: OwnedFd,
    buf: Vec<u8>,
    dir_buf: Vec<MaybeUninit<u8>>,
}

/// Longest command line read; enough for any real match, bounded memory.
pub const CMDLINE_CAP: usize = 32 * 1024;

impl ProcReader {
    fn open_at(&self, pid: u32, suffix: &str, flags: OFlags) -> Option<OwnedFd> {
        let path = PidPath::new(pid, suffix)?;
        rustix::fs::openat(
            &self.proc_dir,
            path.as_cstr(),
            flags | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
    }

    /// Reads a file of a process into the reused buffer, up to `cap` bytes.
    fn read_file(&mut self, pid: u32, suffix: &str, cap: usize) -> Option<&[u8]> {
        let fd = self.open_at(pid, suffix, OFlags::empty())?;
        self.buf.clear();
        loop {
            if self.buf.len() >= cap {
                break;
            }
            let want = (cap - self.buf.len()).min(4096);
            let start = self.buf.len();
            self.buf.resize(start + want, 0);
            match rustix::io::read(&fd, &mut self.buf[start..]) {
                Ok(0) => {
                    self.buf.truncate(start);
                    break;
                }
                Ok(n) => self.buf.truncate(start + n),
                Err(rustix::io::Errno::INTR) => self.buf.truncate(start),
                Err(_) => return None,
            }
        }
        Some(&self.buf)
    }

    /// The command line, arguments separated by single spaces (trailing NULs dropped).
    pub fn cmdline(&mut self, pid: u32) -> Option<&[u8]> {
        self.read_file(pid, "/cmdline", CMDLINE_CAP)?;
        while self.buf.last() == Some(&0) {
            self.buf.pop();
        }
        for b in self.buf.iter_mut() {
            if *b == 0 {
                *b = b' ';
            }
        }
        Some(&self.buf)
    }

    /// The executable's path (without the kernel's " (deleted)" suffix after an upgrade).
    pub fn exe(&mut self, pid: u32) -> Option<Vec<u8>> {
        let path = PidPath::new(pid, "/exe")?;
        let target = rustix::fs::readlinkat(&self.proc_dir, path.as_cstr(), Vec::new()).ok()?;
        let mut bytes = target.into_bytes();
        if bytes.ends_with(b" (deleted)") {
            bytes.truncate(bytes.len() - b" (deleted)".len());
        }
        Some(bytes)
    }

    /// Owner of `/proc/<pid>`: the process's effective uid (one `statx`, no parsing).
    pub fn uid(&mut self, pid: u32) -> Option<u32> {
        let path = PidPath::new(pid, "")?;
        rustix::fs::statat(&self.proc_dir, path.as_cstr(), AtFlags::empty())
            .ok()
            .map(|s| s.st_uid)
    }

    /// Number of open file descriptors; None when not permitted or gone.
    pub fn open_fds(&mut self, pid: u32) -> Option<u64> {
        let fd = self.open_at(pid, "/fd", OFlags::DIRECTORY)?;
        let mut dir = RawDir::new(fd, &mut self.dir_buf);
        let mut count = 0;
        while let Some(entry) = dir.next() {
            let entry = entry.ok()?;
            if entry.file_name().to_bytes().first() != Some(&b'.') {
                count += 1;
            }
        }
        Some(count)
    }
}

/// Walks all processes of a `/proc` tree.
pub struct ProcScanner {
    stat_buf: Vec<u8>,
    dir_buf: Vec<MaybeUninit<u8>>,
    pub reader: ProcReader,
}

impl ProcScanner {
    pub fn new(proc_root: &Path) -> io::Result<Self> {
        let proc_dir = rustix::fs::open(
            proc_root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ProcScanner {
            stat_buf: vec![0; 1024],
            dir_buf: vec![MaybeUninit::uninit(); 32 * 1024],
            reader: ProcReader {
                proc_dir,
                buf: Vec::with_capacity(4096),
                dir_buf: vec![MaybeUninit::uninit(); 8 * 1024],
            },
        })
    }

    /// Calls `f` with the parsed `stat` of every process. A process that exits
    /// between the directory read and its `stat` read is skipped, not an error.
    pub fn for_each(&mut self, mut f: impl FnMut(&Stat<'_>, &mut ProcReader)) -> io::Result<()> {
        let dir = rustix::fs::openat(
            &self.reader.proc_dir,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut entries = RawDir::new(dir, &mut self.dir_buf);
        while let Some(entry) = entries.next() {
            let entry = entry?;
            let Some(pid) = parse_u64(entry.file_name().to_bytes()) else {
                continue;
            };
            let Ok(pid) = u32::try_from(pid) else {
                continue;
            };
            let Some(path) = PidPath::new(pid, "/stat") else {
                continue;
            };
            let Ok(fd) = rustix::fs::openat(
                &self.reader.proc_dir,
                path.as_cstr(),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            let Some(len) = read_once(fd.as_fd(), &mut self.stat_buf) else {
                continue;
            };
            drop(fd);
            if let Some(stat) = parse_stat(&self.stat_buf[..len]) {
                f(&stat, &mut self.reader);
            }
        }
        Ok(())
    }
}

/// One `read`: `/proc/<pid>/stat` is produced whole by a single read into a buffer
/// larger than any stat line, so a second read (returning 0) is not needed.
fn read_once(fd: rustix::fd::BorrowedFd<'_>, buf: &mut [u8]) -> Option<usize> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Some(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Clock ticks per second and page size, for converting `stat` fields.
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

pub fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Boot time in Unix seconds, from the `btime` line of `/proc/stat`.
pub fn boot_time(proc_root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] = b"1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 98765 1000000 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";

    #[test]
    fn parses_stat_with_odd_command_name() {
        let s = parse_stat(LINE).unwrap();
        assert_eq!(s.pid, 1234);
        assert_eq!(s.comm, b"a (weird) name");
        assert_eq!(s.state, b'S');
        assert_eq!(s.flags, 4194560);
        assert_eq!((s.utime, s.stime), (250, 75));
        assert_eq!(s.starttime, 98765);
        assert_eq!(s.rss, 321);
        assert_eq!(s.arg_start, 0, "field 48 absent: 0");
        let long = b"7 (x) S 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 140737488346000 140737488346100 0 0 0\n";
        assert_eq!(parse_stat(long).unwrap().arg_start, 140737488346000);
        assert!(!s.is_kernel_thread());
    }

    #[test]
    fn rejects_truncated_or_garbage_stat() {
        for bad in [
            &b""[..],
            b"1234",
            b"1234 (x",
            b")( 1 2 3",
            b"1234 (x) S 1 2",
            b"x (y) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 6 7",
        ] {
            assert_eq!(parse_stat(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        for cut in 0..LINE.len() {
            let _ = parse_stat(&LINE[..cut]);
        }
    }

    #[test]
    fn scans_this_process() {
        let me = std::process::id();
        let mut scanner = ProcScanner::new(Path::new("/proc")).unwrap();
        let mut found = None;
        let mut count = 0;
        scanner
            .for_each(|s, r| {
                count += 1;
                if s.pid == me {
                    let cmd = String::from_utf8_lossy(r.cmdline(me).unwrap()).into_owned();
                    found = Some((s.starttime, cmd, r.open_fds(me), r.uid(me)));
                }
            })
            .unwrap();
        let (start, cmd, fds, uid) = found.expect("own pid in /proc");
        assert!(start > 0);
        assert!(cmd.contains("seattle_host"), "{cmd}");
        assert!(fds.unwrap() >= 3);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(uid, Some(std::fs::metadata("/proc/self").unwrap().uid()));
        assert!(count > 1);
        assert!(scanner.reader.exe(me).is_some());
        assert_eq!(scanner.reader.cmdline(u32::MAX), None);
    }
}
