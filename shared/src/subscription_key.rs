//! Subscription keys as both planes know them: the control plane stores only a key's SHA-256,
//! and the data plane hashes what a client presents the same way to compare.

/// The SHA-256 of a subscription key: what is stored and sent to data planes instead of it.
pub type KeyHash = [u8; 32];

/// How every subscription key begins, so secret scanners and people can recognize one.
pub const PREFIX: &str = "ghsk_";

/// The header an API takes keys in unless it names another (Azure API Management's).
pub const DEFAULT_HEADER: &str = "Ocp-Apim-Subscription-Key";

/// The query parameter a key may come in instead of the header.
pub const QUERY_PARAMETER: &str = "subscription-key";

/// The SHA-256 of `key`. A lookup by this hash takes no longer for a nearly right key than for
/// a wrong one, so timing reveals nothing about stored keys.
pub fn hash(key: &str) -> KeyHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hash_is_sha256_of_the_key_text() {
        // echo -n abc | sha256sum
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let hex: String = super::hash("abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }
}
