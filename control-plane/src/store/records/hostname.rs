//! A hostname as sled stores it: its certificate, default flag and client-certificate negotiation.

use super::HOSTNAME_PREFIX;
use crate::model::Hostname;

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct HostnameRecord {
    #[prost(string, tag = "1")]
    pub(super) name: String,
    #[prost(string, tag = "2")]
    pub(super) certificate_id: String,
    #[prost(bool, tag = "3")]
    pub(super) default: bool,
    #[prost(bool, tag = "4")]
    pub(super) negotiate_client_certificate: bool,
    #[prost(string, repeated, tag = "5")]
    pub(super) client_ca_ids: Vec<String>,
    #[prost(uint64, tag = "6")]
    pub(super) revision: u64,
}

/// The batch entry for a hostname (at its own revision).
pub(in crate::store) fn hostname_entry(hostname: &Hostname) -> (Vec<u8>, Vec<u8>) {
    let record = HostnameRecord {
        name: hostname.name.clone(),
        certificate_id: hostname.certificate_id.clone(),
        default: hostname.default,
        negotiate_client_certificate: hostname.negotiate_client_certificate,
        client_ca_ids: hostname.client_ca_ids.clone(),
        revision: hostname.revision,
    };
    (hostname_key(&hostname.name), prost::Message::encode_to_vec(&record))
}

pub(in crate::store) fn hostname_key(name: &str) -> Vec<u8> {
    format!("{HOSTNAME_PREFIX}{name}").into_bytes()
}
