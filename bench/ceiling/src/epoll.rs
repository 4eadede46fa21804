//! The epoll pump: level-triggered readiness, one recv(2) per readable event, the bytes sent
//! on to the paired socket at once (queued and sent on EPOLLOUT only if the send was short).

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

const LISTENER: u64 = u64::MAX;

struct Half {
    fd: RawFd,
    peer: usize,
    unsent: Vec<u8>,
    open: bool,
}

fn ctl(ep: RawFd, op: i32, fd: RawFd, token: u64, events: i32) {
    let mut ev = libc::epoll_event {
        events: events as u32,
        u64: token,
    };
    // SAFETY: epoll_ctl reads `ev`, which lives for the call; both descriptors are open.
    unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) };
}

pub fn run(listener: TcpListener, upstream: &str) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    // SAFETY: no arguments but flags.
    let ep = unsafe { libc::epoll_create1(0) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    ctl(
        ep,
        libc::EPOLL_CTL_ADD,
        listener.as_raw_fd(),
        LISTENER,
        libc::EPOLLIN,
    );
    let mut halves: Vec<Half> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: the kernel writes at most `events.len()` entries into `events`.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        for ev in &events[..n.max(0) as usize] {
            let (token, ready) = (ev.u64, ev.events as i32);
            if token == LISTENER {
                while let Ok((client, _)) = listener.accept() {
                    let up = super::pair_upstream(&client, upstream)?;
                    let a = halves.len();
                    halves.push(Half {
                        fd: client.into_raw_fd(),
                        peer: a + 1,
                        unsent: Vec::new(),
                        open: true,
                    });
                    halves.push(Half {
                        fd: up,
                        peer: a,
                        unsent: Vec::new(),
                        open: true,
                    });
                    ctl(
                        ep,
                        libc::EPOLL_CTL_ADD,
                        halves[a].fd,
                        a as u64,
                        libc::EPOLLIN,
                    );
                    ctl(ep, libc::EPOLL_CTL_ADD, up, (a + 1) as u64, libc::EPOLLIN);
                }
                continue;
            }
            let i = token as usize;
            if !halves[i].open {
                continue;
            }
            if ready & libc::EPOLLOUT != 0 {
                let h = &mut halves[i];
                // SAFETY: sends from `unsent`, which outlives the call.
                let sent = unsafe {
                    libc::send(
                        h.fd,
                        h.unsent.as_ptr().cast(),
                        h.unsent.len(),
                        libc::MSG_NOSIGNAL,
                    )
                };
                h.unsent.drain(..sent.max(0) as usize);
                if h.unsent.is_empty() {
                    ctl(ep, libc::EPOLL_CTL_MOD, h.fd, i as u64, libc::EPOLLIN);
                }
            }
            if ready & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) == 0 {
                continue;
            }
            // SAFETY: receives into `buf`, at most its length.
            let got = unsafe { libc::recv(halves[i].fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if got < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                continue;
            }
            let p = halves[i].peer;
            if got <= 0 {
                for j in [i, p] {
                    if halves[j].open {
                        halves[j].open = false;
                        // SAFETY: closes a descriptor this pump owns, once.
                        unsafe { libc::close(halves[j].fd) };
                    }
                }
                continue;
            }
            let data = &buf[..got as usize];
            let to = &mut halves[p];
            if !to.unsent.is_empty() {
                to.unsent.extend_from_slice(data);
                continue;
            }
            // SAFETY: sends from `data`, which outlives the call.
            let sent =
                unsafe { libc::send(to.fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
            let sent = sent.max(0) as usize;
            if sent < data.len() {
                to.unsent.extend_from_slice(&data[sent..]);
                ctl(
                    ep,
                    libc::EPOLL_CTL_MOD,
                    to.fd,
                    p as u64,
                    libc::EPOLLIN | libc::EPOLLOUT,
                );
            }
        }
    }
}
