//! Which component version new connections get. Connections hold an `Arc`
//! to the version they started with, so replacing the current one never
//! disturbs a running session.

use std::sync::{Arc, RwLock};

use super::component::LoadedComponent;

pub struct Registry {
    current: RwLock<Arc<LoadedComponent>>,
}

impl Registry {
    pub fn new(initial: Arc<LoadedComponent>) -> Self {
        Registry { current: RwLock::new(initial) }
    }

    /// The version a new connection should use.
    pub fn current(&self) -> Arc<LoadedComponent> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `next` the version for new connections; returns the old one.
    pub fn swap(&self, next: Arc<LoadedComponent>) -> Arc<LoadedComponent> {
        std::mem::replace(&mut *self.current.write().unwrap_or_else(|e| e.into_inner()), next)
    }
}
