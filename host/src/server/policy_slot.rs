//! The policy new connections get, and the session configurations that
//! follow from it (which questions the guest asks, which SASL mechanisms
//! it offers), swapped as one at a reload. A connection takes the policy in
//! force when it is accepted and keeps it to its end, as it keeps its
//! component version.

use std::sync::{Arc, RwLock};

use anyhow::{Result, bail};

use super::config::ServerConfig;
use crate::policy::{Policy, Role};
use crate::runtime::{GuestConfig, guest_config};

/// One policy and the configuration of each role's sessions under it.
pub struct InForce {
    pub policy: Arc<dyn Policy>,
    /// In [`Role::ALL`] order.
    guest_configs: [GuestConfig; 3],
}

impl InForce {
    /// The configuration for sessions of a listener of `role`.
    pub fn guest_config(&self, role: Role) -> &GuestConfig {
        &self.guest_configs[role as usize]
    }
}

/// The policy in force, replaceable whole.
pub struct PolicySlot {
    config: ServerConfig,
    /// Whether a listener serves only authenticated clients: a policy that
    /// offers no AUTH cannot be installed then.
    needs_auth: Option<Role>,
    current: RwLock<Arc<InForce>>,
}

impl PolicySlot {
    /// The slot of a server configured as `config`, with `policy` in force.
    /// Errors as [`PolicySlot::prepare`].
    pub fn new(config: &ServerConfig, policy: Arc<dyn Policy>) -> Result<PolicySlot> {
        let needs_auth = [(Role::Submission, config.listen_submission), (Role::Submissions, config.listen_tls)]
            .into_iter()
            .find_map(|(role, addr)| addr.map(|_| role));
        let first = prepare(config, needs_auth, policy)?;
        Ok(PolicySlot { config: config.clone(), needs_auth, current: RwLock::new(first) })
    }

    /// The policy for a connection accepted now.
    pub fn current(&self) -> Arc<InForce> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// `policy` with its session configurations, ready to install. Errors:
    /// a listener serves authenticated clients only and the policy offers
    /// no AUTH.
    pub fn prepare(&self, policy: Arc<dyn Policy>) -> Result<Arc<InForce>> {
        prepare(&self.config, self.needs_auth, policy)
    }

    /// New connections get `in_force` from now on.
    pub fn install(&self, in_force: Arc<InForce>) {
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = in_force;
    }
}

fn prepare(config: &ServerConfig, needs_auth: Option<Role>, policy: Arc<dyn Policy>) -> Result<Arc<InForce>> {
    if let Some(role) = needs_auth
        && !policy.auth_mechanisms().any()
    {
        bail!("the {} listener needs AUTH: give a users file (users)", role.name());
    }
    let (questions, auth) = (policy.questions(), policy.auth_mechanisms());
    let guest_configs = Role::ALL.map(|role| guest_config(&config.session_config(role, questions, auth)));
    Ok(Arc::new(InForce { policy, guest_configs }))
}
