//! The `[greylisting]` table of smtpcell.toml.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::policy::client_network::{Ipv4Prefix, Ipv6Prefix, NetworkPrefixes};

/// The `[greylisting]` table. Off by default; times are whole seconds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GreylistingConfig {
    /// Whether RCPT is greylisted at all (false).
    pub enabled: bool,
    /// How long after the first attempt a retry passes (300: 5 minutes).
    pub min_delay_secs: u64,
    /// How long after the first attempt a retry is still taken as one; a
    /// later one is a first attempt again (14400: 4 hours).
    pub expiry_secs: u64,
    /// How long a triplet passes after a retry passed, renewed as mail
    /// keeps passing (2592000: 30 days).
    pub pass_secs: u64,
    /// The database file ("./greylist.redb"), created if missing.
    pub database: PathBuf,
    /// Bits of an IPv4 client's address naming its network (24).
    pub ipv4_prefix: Ipv4Prefix,
    /// Bits of an IPv6 client's address naming its network (64).
    pub ipv6_prefix: Ipv6Prefix,
}

impl Default for GreylistingConfig {
    fn default() -> Self {
        GreylistingConfig {
            enabled: false,
            min_delay_secs: 300,
            expiry_secs: 4 * 3600,
            pass_secs: 30 * 86_400,
            database: PathBuf::from("./greylist.redb"),
            ipv4_prefix: Ipv4Prefix::default(),
            ipv6_prefix: Ipv6Prefix::default(),
        }
    }
}

/// Longest time accepted for any of the three durations: 10 years, far
/// beyond any use, and small enough that adding it to a time never
/// overflows.
const LONGEST_SECS: u64 = 10 * 366 * 86_400;

impl GreylistingConfig {
    /// Checks what each key's type cannot: a retry must be able to pass
    /// (`min_delay_secs` < `expiry_secs`), a pass must last
    /// (`pass_secs` >= 1), no duration beyond 10 years. Errors name the
    /// keys, as `greylisting.KEY`.
    pub fn validate(&self) -> Result<()> {
        for (key, secs) in
            [("min_delay_secs", self.min_delay_secs), ("expiry_secs", self.expiry_secs), ("pass_secs", self.pass_secs)]
        {
            if secs > LONGEST_SECS {
                bail!("greylisting.{key} = {secs}: at most {LONGEST_SECS} (10 years)");
            }
        }
        if self.min_delay_secs >= self.expiry_secs {
            bail!(
                "greylisting.min_delay_secs ({}) must be less than greylisting.expiry_secs ({}): \
                 no retry could ever pass",
                self.min_delay_secs,
                self.expiry_secs
            );
        }
        if self.pass_secs == 0 {
            bail!("greylisting.pass_secs must be at least 1");
        }
        Ok(())
    }

    /// The prefix lengths naming a client's network.
    pub fn prefixes(&self) -> NetworkPrefixes {
        NetworkPrefixes { ipv4: self.ipv4_prefix, ipv6: self.ipv6_prefix }
    }
}
