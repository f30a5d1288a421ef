//! The slab of listeners and connections, named by generation-checked ids.

use super::*;

pub(super) enum Entry {
    Free,
    Listener(TcpListener, usize),
    Conn(Box<Conn>),
}

pub(super) struct Slot {
    pub(super) generation: u32,
    pub(super) queued: bool,
    pub(super) entry: Entry,
}

pub(super) fn get(slots: &mut [Slot], id: ConnectionId) -> Option<&mut Conn> {
    match slots.get_mut(id.index as usize) {
        Some(Slot {
            generation,
            entry: Entry::Conn(c),
            ..
        }) if *generation == id.generation => Some(c),
        _ => None,
    }
}

impl ConnectionSet {
    pub(super) fn open(&mut self, id: ConnectionId) -> Result<&mut Connection, Error> {
        match get(&mut self.slots, id).map(|c| &mut c.phase) {
            Some(Phase::Open(conn)) => Ok(conn),
            Some(Phase::Client(_) | Phase::Server(_)) => Err(Error::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "the opening handshake is not over",
            ))),
            _ => Err(Error::WebSocket(tether_core::Error::Closed)),
        }
    }

    pub(super) fn get_ref(&self, id: ConnectionId) -> Option<&Conn> {
        match self.slots.get(id.index as usize)? {
            Slot {
                generation,
                entry: Entry::Conn(c),
                ..
            } if *generation == id.generation => Some(c),
            _ => None,
        }
    }

    pub(super) fn id_at(&self, index: u32) -> ConnectionId {
        ConnectionId {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    pub(super) fn insert(&mut self, entry: Entry) -> u32 {
        match self.free.pop() {
            Some(index) => {
                self.slots[index as usize].entry = entry;
                index
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    queued: false,
                    entry,
                });
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Deregisters and frees a slot; dropping the socket closes it.
    pub(super) fn remove_slot(&mut self, index: u32) -> Option<Box<Conn>> {
        let slot = &mut self.slots[index as usize];
        let entry = std::mem::replace(&mut slot.entry, Entry::Free);
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        match entry {
            Entry::Conn(mut c) => {
                let _ = self.registry.deregister(&mut c.io.stream);
                self.live -= 1;
                self.drain_count_end();
                Some(c)
            }
            Entry::Listener(mut l, _) => {
                let _ = self.registry.deregister(&mut l);
                None
            }
            Entry::Free => None,
        }
    }
}
