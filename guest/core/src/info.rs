//! Who this build is, for the host's logs and status reports.

use crate::ehlo;
use crate::prelude::*;

/// Identity of the protocol implementation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub name: &'static str,
    pub version: &'static str,
    /// The WIT contract implemented.
    pub contract: &'static str,
    /// Extension keywords this build can advertise when configured.
    pub capabilities: Vec<&'static str>,
}

/// The contract this crate implements, as wit/session.wit names its package.
pub const CONTRACT: &str = "smtp:session@3.0.0";

pub fn info() -> Info {
    Info {
        name: "smtpcell-guest",
        version: env!("CARGO_PKG_VERSION"),
        contract: CONTRACT,
        capabilities: ehlo::capabilities(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_names_the_contract_and_extensions() {
        let info = info();
        assert_eq!(info.name, "smtpcell-guest");
        assert_eq!(info.contract, "smtp:session@3.0.0");
        assert!(info.capabilities.contains(&"CHUNKING"));
        assert_eq!(info.capabilities.len(), 11);
    }
}
