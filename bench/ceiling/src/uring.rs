//! The io_uring pumps. One ring per process. Each half of a pair has one receive armed at all
//! times (one-shot, re-armed after each completion; or multishot into a provided-buffer ring)
//! and at most one send in flight, with bytes that arrive meanwhile queued behind it.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

const BUFFER_GROUP: u16 = 7;
const BUFFER_BYTES: usize = 16 * 1024;
const BUFFERS: u16 = 1024;

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;

fn user_data(kind: u64, half: usize) -> u64 {
    (kind << 56) | half as u64
}

struct Half {
    fd: RawFd,
    peer: usize,
    /// Bytes waiting for the send in flight to finish.
    queued: Vec<u8>,
    /// Bytes of the send in flight (the kernel reads them until its completion).
    in_flight: Vec<u8>,
    sent: usize,
    sending: bool,
    /// The one-shot receive's buffer (unused with multishot).
    recv_buf: Vec<u8>,
    open: bool,
}

/// Buffers the kernel picks from for multishot receives (IORING_REGISTER_PBUF_RING).
struct BufferRing {
    entries: *mut types::BufRingEntry,
    memory: Vec<u8>,
    tail: u16,
}

impl BufferRing {
    fn register(ring: &IoUring) -> io::Result<Self> {
        let layout = std::alloc::Layout::from_size_align(BUFFERS as usize * 16, 4096)
            .map_err(io::Error::other)?;
        // SAFETY: a non-zero, page-aligned layout; the ring memory lives for the process.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        // SAFETY: `entries` is page-aligned and holds BUFFERS entries, as registered.
        unsafe {
            ring.submitter()
                .register_buf_ring(entries as u64, BUFFERS, BUFFER_GROUP)?
        };
        let mut this = Self {
            entries,
            memory: vec![0; BUFFERS as usize * BUFFER_BYTES],
            tail: 0,
        };
        for id in 0..BUFFERS {
            this.give_back(id);
        }
        Ok(this)
    }

    /// Returns buffer `id` to the kernel.
    fn give_back(&mut self, id: u16) {
        // SAFETY: the slot index is masked into the ring; the address points into `memory`.
        unsafe {
            let entry = &mut *self.entries.add((self.tail & (BUFFERS - 1)) as usize);
            entry.set_addr(self.memory.as_ptr().add(id as usize * BUFFER_BYTES) as u64);
            entry.set_len(BUFFER_BYTES as u32);
            entry.set_bid(id);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field of the registered ring, published with release ordering.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    fn bytes(&self, id: u16, len: usize) -> &[u8] {
        let start = id as usize * BUFFER_BYTES;
        &self.memory[start..start + len]
    }
}

struct Pump {
    ring: IoUring,
    halves: Vec<Half>,
    buffers: Option<BufferRing>,
}

impl Pump {
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: every buffer an entry points at belongs to a half that outlives its op.
        while unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.ring.submit()?;
        }
        Ok(())
    }

    fn arm_recv(&mut self, i: usize) -> io::Result<()> {
        let fd = types::Fd(self.halves[i].fd);
        let entry = if self.buffers.is_some() {
            opcode::RecvMulti::new(fd, BUFFER_GROUP).build()
        } else {
            let buf = &mut self.halves[i].recv_buf;
            opcode::Recv::new(fd, buf.as_mut_ptr(), buf.capacity() as u32).build()
        };
        self.push(entry.user_data(user_data(RECV, i)))
    }

    fn send_queued(&mut self, i: usize) -> io::Result<()> {
        let h = &mut self.halves[i];
        std::mem::swap(&mut h.queued, &mut h.in_flight);
        h.queued.clear();
        h.sent = 0;
        h.sending = true;
        self.send_rest(i)
    }

    fn send_rest(&mut self, i: usize) -> io::Result<()> {
        let h = &self.halves[i];
        let rest = &h.in_flight[h.sent..];
        let entry = opcode::Send::new(types::Fd(h.fd), rest.as_ptr(), rest.len() as u32).build();
        self.push(entry.user_data(user_data(SEND, i)))
    }

    fn close_pair(&mut self, i: usize) {
        let p = self.halves[i].peer;
        for j in [i, p] {
            if self.halves[j].open {
                self.halves[j].open = false;
                // SAFETY: closes a descriptor this pump owns, once. The slot is never reused,
                // so a late completion for it finds `open == false` and is ignored.
                unsafe { libc::close(self.halves[j].fd) };
            }
        }
    }

    fn on_accept(&mut self, fd: RawFd, upstream: &str) -> io::Result<()> {
        use std::os::fd::FromRawFd;
        // SAFETY: `fd` is the freshly accepted socket, owned here only.
        let client = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        let up = super::pair_upstream(&client, upstream)?;
        let a = self.halves.len();
        let one_shot = self.buffers.is_none();
        let half = |fd, peer| Half {
            fd,
            peer,
            queued: Vec::with_capacity(BUFFER_BYTES),
            in_flight: Vec::with_capacity(BUFFER_BYTES),
            sent: 0,
            sending: false,
            recv_buf: if one_shot {
                Vec::with_capacity(BUFFER_BYTES)
            } else {
                Vec::new()
            },
            open: true,
        };
        self.halves
            .push(half(std::os::fd::IntoRawFd::into_raw_fd(client), a + 1));
        self.halves.push(half(up, a));
        self.arm_recv(a)?;
        self.arm_recv(a + 1)
    }

    fn on_recv(&mut self, i: usize, cqe: &cqueue::Entry) -> io::Result<()> {
        let res = cqe.result();
        if !self.halves[i].open {
            return Ok(());
        }
        if res == -libc::ENOBUFS {
            return self.arm_recv(i);
        }
        if res <= 0 {
            self.close_pair(i);
            return Ok(());
        }
        let p = self.halves[i].peer;
        let len = res as usize;
        match &mut self.buffers {
            Some(ring) => {
                let id = cqueue::buffer_select(cqe.flags())
                    .ok_or_else(|| io::Error::other("no buffer id"))?;
                self.halves[p].queued.extend_from_slice(ring.bytes(id, len));
                ring.give_back(id);
            }
            None => {
                let (src, dst) = if i < p {
                    let (lo, hi) = self.halves.split_at_mut(p);
                    (&lo[i], &mut hi[0])
                } else {
                    let (lo, hi) = self.halves.split_at_mut(i);
                    (&hi[0], &mut lo[p])
                };
                // SAFETY: the kernel wrote `len` bytes into `recv_buf`'s allocation.
                let got = unsafe { std::slice::from_raw_parts(src.recv_buf.as_ptr(), len) };
                dst.queued.extend_from_slice(got);
            }
        }
        if !self.halves[p].sending && self.halves[p].open {
            self.send_queued(p)?;
        }
        if self.buffers.is_none() || !cqueue::more(cqe.flags()) {
            self.arm_recv(i)?;
        }
        Ok(())
    }

    fn on_send(&mut self, i: usize, res: i32) -> io::Result<()> {
        if !self.halves[i].open {
            return Ok(());
        }
        if res < 0 {
            self.close_pair(i);
            return Ok(());
        }
        let h = &mut self.halves[i];
        h.sent += res as usize;
        if h.sent < h.in_flight.len() {
            return self.send_rest(i);
        }
        h.sending = false;
        if !h.queued.is_empty() {
            self.send_queued(i)?;
        }
        Ok(())
    }
}

pub fn run(listener: TcpListener, upstream: &str, multishot: bool) -> io::Result<()> {
    let ring = IoUring::builder()
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(4096)?;
    let buffers = if multishot {
        Some(BufferRing::register(&ring)?)
    } else {
        None
    };
    let mut pump = Pump {
        ring,
        halves: Vec::new(),
        buffers,
    };
    let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd())).build();
    pump.push(accept.clone().user_data(user_data(ACCEPT, 0)))?;
    let mut completions = Vec::with_capacity(1024);
    loop {
        pump.ring.submit_and_wait(1)?;
        completions.extend(pump.ring.completion());
        for cqe in completions.drain(..) {
            let half = (cqe.user_data() & ((1 << 56) - 1)) as usize;
            match cqe.user_data() >> 56 {
                ACCEPT if cqe.result() >= 0 => {
                    pump.on_accept(cqe.result(), upstream)?;
                    if !cqueue::more(cqe.flags()) {
                        pump.push(accept.clone().user_data(user_data(ACCEPT, 0)))?;
                    }
                }
                ACCEPT => return Err(io::Error::from_raw_os_error(-cqe.result())),
                RECV => pump.on_recv(half, &cqe)?,
                _ => pump.on_send(half, cqe.result())?,
            }
        }
    }
}
