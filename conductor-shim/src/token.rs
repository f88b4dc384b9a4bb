//! Agent tokens: generation (like Python's `secrets.token_urlsafe()`) and comparison.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// The value Ironic returns instead of a token that was already handed out.
pub const MASKED: &str = "******";

/// A new token: 32 random bytes as 43 URL-safe base64 characters without padding.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares a received token with the stored one in constant time.
pub fn matches(received: &str, stored: &str) -> bool {
    received.as_bytes().ct_eq(stored.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_look_like_token_urlsafe() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert!(matches(&a, &a));
        assert!(!matches(&a, &b));
        assert!(!matches("", &a));
    }
}
