//! Open connections: a cap per client address, and the slots of
//! `max-connections`, which idle connections give up to newcomers.
//!
//! Without a cap per address, one host opening slow connections (headers
//! sent a byte at a time) held every permit of `max-connections` until
//! their header deadline, and everyone else waited. Reverse proxies in
//! `trusted-proxies` carry many clients and are exempt.
//!
//! Even from many addresses, connections that hold a slot without using
//! it (keep-alive connections waiting for their next request, slowloris
//! senders) made a client arriving at `max-connections` wait until the
//! header timeout freed a slot. So a newcomer finding every slot taken
//! closes the connection idle longest, as nginx does with its keep-alive
//! connections. Idle means no request in flight: waiting for a request or
//! part-way through sending one, which holds no response. A connection
//! whose response is being computed or sent is never chosen, or a download
//! would be cut; when every connection is busy the newcomer waits for one
//! to finish or go idle.
//!
//! A response is in flight until its last byte is in the kernel's hands,
//! not only until hyper has its body: hyper drops a body once it holds
//! all of it, and a large download can then still be many megabytes in
//! hyper's and the sendfile writer's buffers. So the connection's stream
//! itself notes while writes wait for the client to read (`Outgoing`).
//!
//! The closing itself is the connection's own task's, where hyper's state
//! cannot change under it (see `Occupant::evicted`). Still idle there, the
//! connection is dropped: nothing of a response is left in user space, and
//! the kernel delivers what it holds before the end of stream (hyper's
//! graceful shutdown would leave a fresh connection with part of a head
//! waiting for the rest). If it took a request since it was chosen,
//! the newcomer is told to pick another, and this one closes by hyper's
//! graceful shutdown once its response is sent.

use crate::config::Cidr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Counts of open connections by peer address.
pub struct PerAddress {
    cap: usize,
    exempt: Vec<Cidr>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted connection; dropping it counts it out.
pub struct Claim {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    /// At most `cap` connections from each address not in `exempt`.
    pub fn new(cap: usize, exempt: Vec<Cidr>) -> PerAddress {
        PerAddress {
            cap,
            exempt,
            open: Arc::default(),
        }
    }

    /// New limits over the same counts (connections open stay counted).
    pub fn with_limits(&self, cap: usize, exempt: Vec<Cidr>) -> PerAddress {
        PerAddress {
            cap,
            exempt,
            open: self.open.clone(),
        }
    }

    /// Counts a new connection from `ip`, or `None` when it has too many.
    pub fn claim(&self, ip: IpAddr) -> Option<Claim> {
        let ip = ip.to_canonical();
        let exempt = self.exempt.iter().any(|net| net.contains(ip));
        let mut open = self.open.lock().expect("connections lock");
        let count = open.entry(ip).or_default();
        if *count >= self.cap && !exempt {
            if *count == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(Claim {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connections lock");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The slots of `max-connections` and the connections holding them, each
/// idle or with requests in flight.
#[derive(Clone)]
pub struct Occupancy {
    slots: Arc<Semaphore>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    ledger: Mutex<Ledger>,
    /// Wakes a newcomer waiting for a slot: a connection went idle, or
    /// the one told to close took a request first.
    vacancy: Notify,
}

#[derive(Default)]
struct Ledger {
    next_id: u64,
    /// Counts connections going idle: only the order of the ticks matters.
    clock: u64,
    open: HashMap<u64, Tenancy>,
    /// The connection told to close for a newcomer, until it is gone.
    evicting: Option<u64>,
    /// A newcomer found no idle connection and waits for one.
    waiting: bool,
}

/// One connection's entry in the ledger.
struct Tenancy {
    in_flight: usize,
    /// Whether written bytes wait for the client to make room for them.
    sending: bool,
    /// The tick at which it last went idle (or opened).
    idle_since: u64,
    evicted: bool,
    close: Arc<Notify>,
}

/// One connection holding a slot; dropping it frees the slot.
pub struct Occupant {
    id: u64,
    shared: Arc<Shared>,
    close: Arc<Notify>,
    slot: Option<OwnedSemaphorePermit>,
}

/// One request in flight on a connection, until its response body is
/// dropped (sent or abandoned).
pub struct InFlight {
    id: u64,
    shared: Arc<Shared>,
}

impl Occupancy {
    /// `slots` connections at most.
    pub fn new(slots: usize) -> Occupancy {
        Occupancy {
            slots: Arc::new(Semaphore::new(slots)),
            shared: Arc::default(),
        }
    }

    /// A slot for a connection just accepted: a free one, else the one an
    /// idle connection holds, closed for it; else waits for one.
    pub async fn admit(&self) -> Occupant {
        let slot = loop {
            if let Ok(slot) = self.slots.clone().try_acquire_owned() {
                break slot;
            }
            self.evict_longest_idle();
            tokio::select! {
                slot = self.slots.clone().acquire_owned() => {
                    break slot.expect("the slots are never closed");
                }
                _ = self.shared.vacancy.notified() => {}
            }
        };
        self.enter(slot)
    }

    fn enter(&self, slot: OwnedSemaphorePermit) -> Occupant {
        let close = Arc::new(Notify::new());
        let mut ledger = self.shared.ledger.lock().expect("occupancy lock");
        let id = ledger.next_id;
        ledger.next_id += 1;
        ledger.clock += 1;
        let tenancy = Tenancy {
            in_flight: 0,
            sending: false,
            idle_since: ledger.clock,
            evicted: false,
            close: close.clone(),
        };
        ledger.open.insert(id, tenancy);
        Occupant {
            id,
            shared: self.shared.clone(),
            close,
            slot: Some(slot),
        }
    }

    /// Tells the connection idle longest to close, unless one told before
    /// is still closing; with none idle, asks to be woken when one is.
    fn evict_longest_idle(&self) {
        let mut ledger = self.shared.ledger.lock().expect("occupancy lock");
        if ledger.evicting.is_some() {
            return;
        }
        let longest = ledger
            .open
            .iter_mut()
            .filter(|(_, t)| t.is_idle() && !t.evicted)
            .min_by_key(|(_, t)| t.idle_since);
        let Some((&id, tenancy)) = longest else {
            ledger.waiting = true;
            return;
        };
        tenancy.evicted = true;
        tenancy.close.notify_one();
        ledger.evicting = Some(id);
    }
}

impl Ledger {
    /// Marks `id` idle from now on, waking a newcomer waiting for one.
    fn went_idle(&mut self, id: u64, vacancy: &Notify) {
        self.clock += 1;
        let Some(tenancy) = self.open.get_mut(&id) else {
            return;
        };
        tenancy.idle_since = self.clock;
        if self.waiting && self.evicting.is_none() && !tenancy.evicted {
            self.waiting = false;
            vacancy.notify_one();
        }
    }
}

impl Tenancy {
    fn is_idle(&self) -> bool {
        self.in_flight == 0 && !self.sending
    }
}

impl Occupant {
    /// `io`, this connection's stream, noting when its writes wait.
    pub fn outgoing<I>(&self, io: I) -> Outgoing<I> {
        Outgoing {
            io,
            id: self.id,
            shared: self.shared.clone(),
            sending: false,
        }
    }

    /// Counts a request in flight on this connection.
    pub fn request(&self) -> InFlight {
        let mut ledger = self.shared.ledger.lock().expect("occupancy lock");
        let Ledger { open, evicting, .. } = &mut *ledger;
        if let Some(tenancy) = open.get_mut(&self.id) {
            tenancy.in_flight += 1;
        }
        // Told to close, it took a request first: it answers, then closes,
        // and the newcomer picks another idle connection meanwhile.
        if *evicting == Some(self.id) {
            *evicting = None;
            self.shared.vacancy.notify_one();
        }
        InFlight {
            id: self.id,
            shared: self.shared.clone(),
        }
    }

    /// Resolves when a newcomer needs this connection's slot. Awaited in
    /// the connection's own task, beside (not inside) hyper's polling, so
    /// no request can start while the task decides how to close.
    pub async fn evicted(&self) {
        self.close.notified().await
    }

    /// Whether it has no request in flight and nothing left to write:
    /// then dropping it closes it cleanly (the kernel still delivers what
    /// it was handed, then the end of stream).
    pub fn is_idle(&self) -> bool {
        let ledger = self.shared.ledger.lock().expect("occupancy lock");
        ledger.open.get(&self.id).is_none_or(Tenancy::is_idle)
    }

    #[cfg(test)]
    fn is_evicted(&self) -> bool {
        let ledger = self.shared.ledger.lock().expect("occupancy lock");
        ledger.open[&self.id].evicted
    }
}

impl Drop for Occupant {
    fn drop(&mut self) {
        let mut ledger = self.shared.ledger.lock().expect("occupancy lock");
        ledger.open.remove(&self.id);
        if ledger.evicting == Some(self.id) {
            ledger.evicting = None;
        }
        drop(ledger);
        // The slot last: the newcomer it admits, and the next one, must
        // find no eviction under way, or the next would wait for a slot
        // nobody is freeing.
        drop(self.slot.take());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut ledger = self.shared.ledger.lock().expect("occupancy lock");
        let Some(tenancy) = ledger.open.get_mut(&self.id) else {
            return;
        };
        tenancy.in_flight -= 1;
        if tenancy.is_idle() {
            ledger.went_idle(self.id, &self.shared.vacancy);
        }
    }
}

/// A connection's stream, telling the ledger while its writes wait for
/// the client: until then the response is still in flight.
pub struct Outgoing<I> {
    io: I,
    id: u64,
    shared: Arc<Shared>,
    /// As last told to the ledger (which is locked only on a change).
    sending: bool,
}

impl<I> Outgoing<I> {
    /// Notes whether a write waits: a write or flush that could not finish
    /// starts the wait; a flush that completed (all bytes handed to the
    /// kernel, as hyper flushes after every write) ends it.
    fn note<T>(&mut self, polled: Poll<T>, flushed: bool) -> Poll<T> {
        let sending = match &polled {
            Poll::Pending => true,
            Poll::Ready(_) if flushed => false,
            Poll::Ready(_) => return polled,
        };
        if sending != self.sending {
            self.sending = sending;
            let mut ledger = self.shared.ledger.lock().expect("occupancy lock");
            if let Some(tenancy) = ledger.open.get_mut(&self.id) {
                tenancy.sending = sending;
                if tenancy.is_idle() {
                    ledger.went_idle(self.id, &self.shared.vacancy);
                }
            }
        }
        polled
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Outgoing<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Outgoing<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(polled, false)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(polled, false)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.note(polled, true)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_cap_and_proxies_none() {
        let proxy = Cidr::parse("10.0.0.1").unwrap();
        let caps = PerAddress::new(2, vec![proxy]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = caps.claim(a).unwrap();
        let _second = caps.claim(a).unwrap();
        assert!(caps.claim(a).is_none());
        assert!(caps.claim("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(
            caps.claim(a).is_some(),
            "a closed connection frees its place"
        );
        let held: Vec<_> = (0..5)
            .map(|_| caps.claim("10.0.0.1".parse().unwrap()).unwrap())
            .collect();
        assert_eq!(held.len(), 5);
    }

    /// Lets every spawned task run until it waits.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    fn admit_later(occupancy: &Occupancy) -> tokio::task::JoinHandle<Occupant> {
        let occupancy = occupancy.clone();
        tokio::spawn(async move { occupancy.admit().await })
    }

    #[tokio::test]
    async fn a_newcomer_at_the_limit_closes_the_connection_idle_longest() {
        let occupancy = Occupancy::new(3);
        let never_asked = occupancy.admit().await;
        let (answered, busy) = (occupancy.admit().await, occupancy.admit().await);
        let _in_flight = busy.request();
        drop(answered.request());
        assert!(answered.is_idle() && never_asked.is_idle() && !busy.is_idle());
        let newcomer = admit_later(&occupancy);
        settle().await;
        assert!(
            never_asked.is_evicted(),
            "it opened before the other went idle"
        );
        assert!(!answered.is_evicted() && !busy.is_evicted());
        assert!(!newcomer.is_finished(), "the slot is still held");
        drop(never_asked);
        let newcomer = newcomer.await.unwrap();
        // The next newcomer takes the slot of the one answered, not the busy one.
        let next = admit_later(&occupancy);
        settle().await;
        assert!(answered.is_evicted() && !busy.is_evicted() && !newcomer.is_evicted());
        drop(answered);
        next.await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_with_a_request_in_flight_is_never_closed() {
        let occupancy = Occupancy::new(1);
        let downloading = occupancy.admit().await;
        let download = downloading.request();
        let newcomer = admit_later(&occupancy);
        settle().await;
        assert!(!downloading.is_evicted() && !newcomer.is_finished());
        // Once its response is sent, it is idle, and gives its slot up.
        drop(download);
        settle().await;
        assert!(downloading.is_evicted() && !newcomer.is_finished());
        drop(downloading);
        newcomer.await.unwrap();
    }

    #[tokio::test]
    async fn one_told_to_close_that_takes_a_request_first_is_passed_over() {
        let occupancy = Occupancy::new(2);
        let (first, second) = (occupancy.admit().await, occupancy.admit().await);
        let newcomer = admit_later(&occupancy);
        settle().await;
        assert!(first.is_evicted() && !second.is_evicted());
        let _late_request = first.request();
        settle().await;
        assert!(second.is_evicted(), "the newcomer moved on");
        drop(second);
        newcomer.await.unwrap();
    }

    #[tokio::test]
    async fn only_one_connection_is_closed_per_newcomer() {
        let occupancy = Occupancy::new(3);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(occupancy.admit().await);
        }
        let newcomer = admit_later(&occupancy);
        settle().await;
        // Another going idle meanwhile does not cost a second connection.
        drop(held[2].request());
        settle().await;
        let told: Vec<_> = held.iter().map(Occupant::is_evicted).collect();
        assert_eq!(told, [true, false, false]);
        drop(held);
        newcomer.await.unwrap();
    }

    #[tokio::test]
    async fn a_response_still_being_written_keeps_its_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let occupancy = Occupancy::new(1);
        let downloading = occupancy.admit().await;
        let (near, mut client) = tokio::io::duplex(16);
        let mut stream = downloading.outgoing(near);
        // hyper has the whole body (and has dropped it); the client has not.
        drop(downloading.request());
        let writer = tokio::spawn(async move {
            stream.write_all(&[7; 64]).await.unwrap();
            stream.flush().await.unwrap();
        });
        let newcomer = admit_later(&occupancy);
        settle().await;
        assert!(!downloading.is_evicted() && !newcomer.is_finished());
        client.read_exact(&mut [0; 64]).await.unwrap();
        writer.await.unwrap();
        settle().await;
        assert!(downloading.is_evicted(), "sent, it is idle");
        drop(downloading);
        newcomer.await.unwrap();
    }
}
