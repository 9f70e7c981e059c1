//! "Does this address accept TCP connections?" for many addresses at once, on the
//! calling thread: non-blocking connects waited for together with one `poll`, so a
//! scrape costs a few syscalls per address instead of a thread each.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, connect, socket_with, sockopt};

/// Sockets open at once, at most (bounds fds; later addresses wait for a free slot).
const MAX_IN_FLIGHT: usize = 64;

/// For each address, whether a TCP connect succeeded within `timeout` (all in parallel).
pub fn accepts(addrs: &[SocketAddr], timeout: Duration) -> Vec<bool> {
    let deadline = Instant::now() + timeout;
    let mut out = vec![false; addrs.len()];
    for (chunk_index, chunk) in addrs.chunks(MAX_IN_FLIGHT).enumerate() {
        let base = chunk_index * MAX_IN_FLIGHT;
        let mut pending: Vec<(usize, OwnedFd)> = Vec::new();
        for (i, addr) in chunk.iter().enumerate() {
            let family = match addr {
                SocketAddr::V4(_) => AddressFamily::INET,
                SocketAddr::V6(_) => AddressFamily::INET6,
            };
            let Ok(fd) = socket_with(
                family,
                SocketType::STREAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            ) else {
                continue;
            };
            match connect(&fd, addr) {
                Ok(()) => out[base + i] = true,
                Err(Errno::INPROGRESS) | Err(Errno::INTR) => pending.push((base + i, fd)),
                Err(_) => {}
            }
        }
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ts = Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            };
            let mut fds: Vec<PollFd<'_>> = pending
                .iter()
                .map(|(_, fd)| PollFd::new(fd, PollFlags::OUT))
                .collect();
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => break,
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(_) => break,
            }
            let ready: Vec<bool> = fds.iter().map(|p| !p.revents().is_empty()).collect();
            drop(fds);
            let mut k = 0;
            pending.retain(|(index, fd)| {
                let done = ready[k];
                k += 1;
                if done {
                    out[*index] = matches!(sockopt::socket_error(fd), Ok(Ok(())));
                }
                !done
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_closed_and_unroutable() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open6 = std::net::TcpListener::bind("[::1]:0").ok();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let mut addrs = vec![open.local_addr().unwrap(), closed_addr];
        if let Some(l) = &open6 {
            addrs.push(l.local_addr().unwrap());
        }
        let got = accepts(&addrs, Duration::from_secs(5));
        assert!(got[0]);
        assert!(!got[1]);
        if open6.is_some() {
            assert!(got[2]);
        }
        // More addresses than sockets at once still all get an answer.
        let many: Vec<SocketAddr> = (0..(MAX_IN_FLIGHT * 2 + 3))
            .map(|i| if i % 2 == 0 { addrs[0] } else { closed_addr })
            .collect();
        let got = accepts(&many, Duration::from_secs(5));
        for (i, ok) in got.iter().enumerate() {
            assert_eq!(*ok, i % 2 == 0, "{i}");
        }
        assert!(accepts(&[], Duration::from_secs(1)).is_empty());
    }
}
