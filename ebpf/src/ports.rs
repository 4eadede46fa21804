//! `Ports`: the gateway's destination ports (`ports` map). The filter applies only to
//! packets to these ports; everything else PASSes untouched, so an empty set filters
//! nothing.

use std::collections::HashSet;

use aya::maps::{HashMap, MapData};

use crate::addr::{found, removed};
use crate::error::PrefilterError;

const MAP: &str = "ports";

/// The set of TCP/UDP destination ports the pre-filter guards (host order).
#[derive(Debug)]
pub struct Ports {
    map: HashMap<MapData, u16, u8>,
}

impl Ports {
    pub(crate) fn new(map: HashMap<MapData, u16, u8>) -> Self {
        Ports { map }
    }

    /// Guards `port`; a no-op when it is already guarded.
    pub fn insert(&mut self, port: u16) -> Result<(), PrefilterError> {
        self.map
            .insert(port, 1, 0)
            .map_err(|e| PrefilterError::map(MAP, "insert", e))
    }

    /// Stops guarding `port`; `Ok(false)` when it was not guarded.
    pub fn remove(&mut self, port: u16) -> Result<bool, PrefilterError> {
        removed(self.map.remove(&port)).map_err(|e| PrefilterError::map(MAP, "remove", e))
    }

    /// Whether `port` is guarded.
    pub fn contains(&self, port: u16) -> Result<bool, PrefilterError> {
        found(self.map.get(&port, 0))
            .map(|value| value.is_some())
            .map_err(|e| PrefilterError::map(MAP, "get", e))
    }

    /// Every guarded port, sorted.
    pub fn list(&self) -> Result<Vec<u16>, PrefilterError> {
        let mut ports = self
            .map
            .keys()
            .collect::<Result<Vec<u16>, _>>()
            .map_err(|e| PrefilterError::map(MAP, "list", e))?;
        ports.sort_unstable();
        Ok(ports)
    }

    /// Makes the set exactly `ports`, adding before removing (a port kept across a reload
    /// is never unguarded).
    pub fn replace_all(&mut self, ports: &[u16]) -> Result<(), PrefilterError> {
        let wanted: HashSet<u16> = ports.iter().copied().collect();
        for port in &wanted {
            self.insert(*port)?;
        }
        for port in self.list()? {
            if !wanted.contains(&port) {
                self.remove(port)?;
            }
        }
        Ok(())
    }
}
