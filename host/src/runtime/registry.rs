//! Which component version new connections get. Connections hold a lease
//! on the version they started with, so replacing the current one never
//! disturbs a running session; old versions are freed when their last
//! connection ends.

use std::sync::{Arc, Mutex, RwLock, Weak};

use super::component::LoadedComponent;

pub struct Registry {
    current: RwLock<Arc<LoadedComponent>>,
    /// Every version ever made current; those still alive are reported.
    history: Mutex<Vec<Weak<LoadedComponent>>>,
}

/// One loaded version, as `smtpcell status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionStatus {
    pub label: String,
    pub contract: String,
    pub connections: usize,
    pub current: bool,
}

impl Registry {
    pub fn new(initial: Arc<LoadedComponent>) -> Self {
        let history = Mutex::new(vec![Arc::downgrade(&initial)]);
        Registry { current: RwLock::new(initial), history }
    }

    /// The version a new connection should use.
    pub fn current(&self) -> Arc<LoadedComponent> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `next` the version for new connections; returns the old one.
    pub fn swap(&self, next: Arc<LoadedComponent>) -> Arc<LoadedComponent> {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.retain(|v| v.strong_count() > 0);
        history.push(Arc::downgrade(&next));
        std::mem::replace(&mut *self.current.write().unwrap_or_else(|e| e.into_inner()), next)
    }

    /// The versions still loaded (current, or serving connections), oldest first.
    pub fn status(&self) -> Vec<VersionStatus> {
        let current = self.current();
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history
            .iter()
            .filter_map(Weak::upgrade)
            .map(|v| VersionStatus {
                label: v.label(),
                contract: v.info().contract.clone(),
                connections: v.connections(),
                current: Arc::ptr_eq(&v, &current),
            })
            .collect()
    }
}
