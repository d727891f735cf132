//! The checks themselves, through mail-auth: SPF when MAIL arrives (RFC
//! 7208, the HELO and MAIL FROM identities), DKIM (RFC 6376, RFC 8463),
//! ARC (RFC 8617, reported only) and DMARC (RFC 7489 as revised by RFC
//! 9989: the organizational domain by DNS tree walk) at the end of data;
//! the verdict as Authentication-Results (RFC 8601) and Received-SPF
//! (RFC 7208 section 9.1) header fields, or a refusal.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy as DmarcPolicy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, DnsError, MessageAuthenticator, Parameters,
    ReceivedSpf, SpfOutput, SpfResult,
};
use moka::sync::Cache;
use smtp_core::{Answer, Envelope, Reason, Refusal};
use tracing::info;

use super::config::{Action, MailAuthConfig};
use super::content::MessageContent;
use super::resolver::resolver;
use super::void_lookups::Recorder;
use crate::policy::{Client, EndOfData, Networks};

/// SPF results of MAILs remembered for their transaction's end of data.
const SPF_REMEMBERED: u64 = 10_000;
/// Longer than a transaction normally lasts; a result forgotten sooner is
/// looked up again (from the DNS cache).
const SPF_REMEMBERED_FOR: Duration = Duration::from_secs(600);

/// The SPF results of one MAIL.
#[derive(Debug)]
pub struct SpfVerdict {
    /// The HELO identity (RFC 7208 section 2.3).
    pub helo: SpfOutput,
    /// The MAIL FROM identity (section 2.4); for the null reverse-path,
    /// `postmaster@` the HELO domain, so the HELO check's result.
    pub mail_from: SpfOutput,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SpfKey {
    ip: IpAddr,
    helo: String,
    reverse_path: String,
}

/// The checks of a server (shared by its connections).
pub struct MailAuth {
    config: MailAuthConfig,
    resolver: MessageAuthenticator,
    /// Clients not checked besides authenticated ones.
    relay_networks: Networks,
    spf: Cache<SpfKey, Arc<SpfVerdict>>,
}

impl MailAuth {
    /// Errors: the system's resolver configuration cannot be read.
    pub fn new(config: MailAuthConfig, relay_networks: Networks) -> Result<MailAuth> {
        let resolver = resolver(config.dns_server)?;
        let spf = Cache::builder().max_capacity(SPF_REMEMBERED).time_to_live(SPF_REMEMBERED_FOR).build();
        Ok(MailAuth { config, resolver, relay_networks, spf })
    }

    /// Whether these checks are the ones `config` and `relay_networks`
    /// would build (a reload keeps them, and their caches, when so).
    pub fn same_as(&self, config: &MailAuthConfig, relay_networks: &Networks) -> bool {
        self.config == *config && self.relay_networks == *relay_networks
    }

    pub fn config(&self) -> &MailAuthConfig {
        &self.config
    }

    /// Authenticated clients and relay networks are ours: not checked.
    pub fn exempt(&self, client: &Client) -> bool {
        client.authenticated.is_some() || self.relay_networks.contains(client.ip)
    }

    /// SPF for a MAIL: the results, and the answer the configuration
    /// gives them (550 5.7.23 for `fail`, 451 4.7.24 for `temperror`, or
    /// accept).
    pub async fn mail(&self, ip: IpAddr, helo: &str, reverse_path: &str) -> Answer {
        let verdict = self.spf(ip, helo, reverse_path).await;
        let result = verdict.mail_from.result();
        let refuse = |permanent: bool, text: String| {
            Answer::Refuse(Refusal { reason: Reason::SenderRefused, permanent, text: Some(text), disconnect: false })
        };
        match result {
            SpfResult::Fail if self.config.spf_fail == Action::Refuse => {
                info!(client = %ip, domain = verdict.mail_from.domain(), "SPF fail: MAIL refused");
                refuse(true, format!("(SPF fail for {})", verdict.mail_from.domain()))
            }
            SpfResult::TempError if self.config.temp_error == Action::Refuse => {
                info!(client = %ip, domain = verdict.mail_from.domain(), "SPF temperror: MAIL deferred");
                refuse(false, format!("(SPF temperror for {})", verdict.mail_from.domain()))
            }
            _ => Answer::ACCEPT,
        }
    }

    /// The SPF results for a client and envelope sender, remembered so that
    /// the end of data reuses those of its MAIL. Each check is bounded by
    /// the configured timeout (past it: `temperror`) and by RFC 7208
    /// section 4.6.4's limits: mail-auth's of 10 DNS-querying terms, and
    /// ours of 2 void lookups (`void_lookups`), both `permerror`.
    pub async fn spf(&self, ip: IpAddr, helo: &str, reverse_path: &str) -> Arc<SpfVerdict> {
        let key = SpfKey { ip, helo: helo.to_string(), reverse_path: reverse_path.to_string() };
        if let Some(verdict) = self.spf.get(&key) {
            return verdict;
        }
        let host = self.config.authserv_id.as_str();
        let helo_check = self.bounded_spf(ip, helo, SpfParameters::verify_ehlo(ip, helo, host)).await;
        let mail_from = if reverse_path.is_empty() {
            helo_check.clone()
        } else {
            let domain = reverse_path.rsplit_once('@').map_or(helo, |(_, domain)| domain);
            self.bounded_spf(ip, domain, SpfParameters::verify_mail_from(ip, helo, host, reverse_path)).await
        };
        info!(client = %ip, helo = %helo_check.result(), mail_from = %mail_from.result(), domain = mail_from.domain(), "SPF");
        let verdict = Arc::new(SpfVerdict { helo: helo_check, mail_from });
        self.spf.insert(key, verdict.clone());
        verdict
    }

    async fn bounded_spf(&self, ip: IpAddr, domain: &str, params: SpfParameters<'_>) -> SpfOutput {
        if !spf_checkable(domain) {
            return SpfOutput::new(domain.to_string()).with_result(SpfResult::None);
        }
        let recorder = Recorder::default();
        let params = Parameters::new(params)
            .with_txt_cache(&recorder)
            .with_mx_cache(&recorder)
            .with_ptr_cache(&recorder)
            .with_ipv4_cache(&recorder)
            .with_ipv6_cache(&recorder);
        let checked = async {
            let output = self.resolver.verify_spf(params).await;
            recorder.limit(&self.resolver, ip, output).await
        };
        match tokio::time::timeout(self.config.timeout, checked).await {
            Ok(output) => output,
            Err(_) => SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError),
        }
    }

    /// The end-of-data decision for a message whose content went through
    /// `content` (finished): refused for DMARC `p=reject` or a DNS error
    /// when so configured, otherwise accepted with Authentication-Results
    /// and Received-SPF.
    pub async fn end_of_data(&self, client: &Client, envelope: &Envelope, content: &MessageContent) -> EndOfData {
        if content.too_large() {
            info!(client = %client.ip, "header section too large to authenticate: message refused");
            return EndOfData::Refuse(Refusal {
                reason: Reason::Policy,
                permanent: true,
                text: Some("(header section too large)".into()),
                disconnect: false,
            });
        }
        if content.removed() > 0 {
            info!(client = %client.ip, removed = content.removed(), "forged Authentication-Results removed");
        }
        let spf = self.spf(client.ip, &envelope.helo, &envelope.reverse_path).await;
        let (ip, helo, sender) = (client.ip, envelope.helo.as_str(), envelope.reverse_path.as_str());
        let id = self.config.authserv_id.as_str();
        let spf_results = AuthenticationResults::new(id)
            .with_spf_mailfrom_result(&spf.mail_from, ip, sender, helo)
            .with_spf_ehlo_result(&spf.helo, ip, helo)
            .to_string();
        let (content_results, dmarc) = match content.authenticated() {
            Some(message) => {
                let checked = tokio::time::timeout(self.config.timeout, self.content_results(&message, &spf, ip));
                match checked.await {
                    Ok(done) => done,
                    // Out of time: DMARC could not be decided, which is a
                    // DNS temporary error like any other.
                    Err(_) => {
                        let timed_out = mail_auth::Error::Dns(DnsError::Resolver("timed out".into()));
                        let domain = message.from().rsplit_once('@').map_or("", |(_, domain)| domain).to_string();
                        let verdict = (DmarcResult::TempError(timed_out), DmarcPolicy::Unspecified, domain);
                        (";\r\n\tdkim=temperror (timed out);\r\n\tdmarc=temperror (timed out)".into(), Some(verdict))
                    }
                }
            }
            None => (";\r\n\tdkim=none;\r\n\tdmarc=none".into(), None),
        };
        if let Some((result, policy, domain)) = &dmarc {
            info!(client = %ip, domain, result = %result, policy = ?policy, "DMARC");
            let refusal = |permanent: bool, text: String| {
                EndOfData::Refuse(Refusal { reason: Reason::Policy, permanent, text: Some(text), disconnect: false })
            };
            match result {
                DmarcResult::Fail(_)
                    if *policy == DmarcPolicy::Reject && self.config.dmarc_reject == Action::Refuse =>
                {
                    return refusal(true, format!("(DMARC policy of {domain} rejects this message)"));
                }
                DmarcResult::TempError(_) if self.config.temp_error == Action::Refuse => {
                    return refusal(false, format!("(DMARC of {domain} could not be checked)"));
                }
                _ => {}
            }
        }
        let mut headers = format!("Authentication-Results: {spf_results}{content_results}\r\n").into_bytes();
        headers.extend_from_slice(ReceivedSpf::new(&spf.mail_from, ip, helo, sender, id).to_header().as_bytes());
        EndOfData::Accept { headers }
    }

    /// DKIM, ARC and DMARC of `message`: the Authentication-Results
    /// methods (each starting `;\r\n\t`), and DMARC's result, policy and
    /// author domain when there is a DMARC record.
    async fn content_results(
        &self,
        message: &AuthenticatedMessage<'_>,
        spf: &SpfVerdict,
        ip: IpAddr,
    ) -> (String, Option<(DmarcResult, DmarcPolicy, String)>) {
        let dkim = self.resolver.verify_dkim(message).await;
        let arc = self.resolver.verify_arc(message).await;
        let mail_from_domain = spf.mail_from.domain();
        let dmarc =
            self.resolver.verify_dmarc(DmarcParameters::new(message, &dkim, mail_from_domain, &spf.mail_from)).await;
        let mut results = String::new();
        if dkim.is_empty() {
            results.push_str(";\r\n\tdkim=none");
        }
        for output in &dkim {
            if let Some(signature) = output.signature() {
                let result = match output.result() {
                    DkimResult::Pass => "pass".to_string(),
                    other => other.to_string(),
                };
                info!(client = %ip, d = signature.d, s = signature.s, result, "DKIM");
            }
        }
        let rest = AuthenticationResults::new("")
            .with_dkim_results(&dkim, message.from())
            .with_arc_result(&arc, ip)
            .with_dmarc_result(&dmarc)
            .to_string();
        results.push_str(&rest);
        let verdict = match dmarc.dmarc_record() {
            Some(_) => Some((dmarc.result(), dmarc.policy(), dmarc.domain().to_string())),
            None => match dmarc.result() {
                temp @ DmarcResult::TempError(_) => Some((temp, dmarc.policy(), dmarc.domain().to_string())),
                _ => None,
            },
        };
        (results, verdict)
    }
}

/// Whether `domain` can have an SPF record: RFC 7208 section 4.3 makes
/// check_host() "none", without a lookup, for a domain that is not a
/// multi-label domain name, such as a HELO address literal (`[192.0.2.1]`)
/// or a single label (`localhost`).
fn spf_checkable(domain: &str) -> bool {
    !domain.starts_with('[') && domain.trim_end_matches('.').contains('.')
}
