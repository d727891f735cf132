use super::clock::Clock;
use std::sync::Arc;
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct GreylistingConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub database: std::path::PathBuf,
}
#[derive(PartialEq)]
pub enum Verdict {
    Pass,
    Defer,
}
pub struct Greylist;
impl Greylist {
    pub fn open(_c: &GreylistingConfig, _k: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Ok(Greylist)
    }
    pub async fn check(&self, _ip: std::net::IpAddr, _r: &str, _t: &str) -> Verdict {
        Verdict::Pass
    }
}
