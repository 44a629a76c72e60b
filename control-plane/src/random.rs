//! Random secrets shown once (bearer tokens, subscription keys): 256 bits from the system's
//! generator, URL-safe base64 behind a prefix that says what the secret is.

use base64::Engine as _;
use ring::rand::SecureRandom;

/// `prefix` and 256 random bits in URL-safe base64 without padding (43 characters).
pub fn secret(prefix: &str) -> String {
    let mut random = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut random).expect("the system random generator works");
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_carry_their_prefix_and_differ() {
        let (a, b) = (super::secret("p_"), super::secret("p_"));
        assert!(a.starts_with("p_") && a.len() == 2 + 43, "{a}");
        assert!(a[2..].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{a}");
        assert_ne!(a, b);
    }
}
