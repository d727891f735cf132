use super::clock::Clock;
use std::sync::Arc;
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct RateLimitsConfig {
    pub client_connections_per_minute: Option<u32>,
}
impl RateLimitsConfig {
    pub fn any(&self) -> bool {
        false
    }
}
pub struct RateLimits;
pub struct Limited;
impl Limited {
    pub fn name(&self) -> &'static str {
        "x"
    }
}
pub struct ConnectionSlot;
impl RateLimits {
    pub fn new(_c: &RateLimitsConfig, _k: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Ok(RateLimits)
    }
    pub fn admit(&self, _ip: std::net::IpAddr) -> Result<ConnectionSlot, Limited> {
        Ok(ConnectionSlot)
    }
    pub fn message(&self, _ip: std::net::IpAddr, _a: Option<&str>, _r: &str) -> Result<(), Limited> {
        Ok(())
    }
    pub fn recipient(&self, _ip: std::net::IpAddr) -> Result<(), Limited> {
        Ok(())
    }
    pub fn auth_failed(&self, _ip: std::net::IpAddr) {}
    pub fn auth_allowed(&self, _ip: std::net::IpAddr) -> bool {
        true
    }
}
