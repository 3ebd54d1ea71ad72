//! Stateless, rotating DPoP server nonces (RFC 9449 §8–9).
//!
//! A nonce is a time step and an HMAC-SHA-256 tag over it, base64url-encoded. It is valid
//! during its step and the next one, so it lives between one and two periods; nothing is
//! stored, and replicas sharing the secret accept each other's nonces.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The length of the tag kept in a nonce.
const TAG_LEN: usize = 16;
/// 8 bytes of step and the tag, base64url.
const NONCE_LEN: usize = (8 + TAG_LEN) * 4 / 3;

#[derive(Clone)]
pub(crate) struct Nonces {
    /// `None` when no secret could be drawn: no nonce is then valid.
    secret: Option<[u8; 32]>,
    period: u64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    pub(crate) fn new(secret: Option<[u8; 32]>, period_secs: u64) -> Self {
        Self {
            secret,
            period: period_secs.max(1),
        }
    }

    fn tag(&self, step: u64) -> [u8; TAG_LEN] {
        // A 32-byte key always fits HMAC; without a secret the tag is garbage that
        // `is_valid` never accepts.
        let Some(Ok(mut mac)) = self.secret.map(|s| Hmac::<Sha256>::new_from_slice(&s)) else {
            return [0; TAG_LEN];
        };
        mac.update(b"portcullis dpop nonce\0");
        mac.update(&step.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// The nonce for the step of `now` (Unix seconds).
    pub(crate) fn issue(&self, now: u64) -> String {
        let step = now / self.period;
        let mut bytes = [0; 8 + TAG_LEN];
        bytes[..8].copy_from_slice(&step.to_be_bytes());
        bytes[8..].copy_from_slice(&self.tag(step));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` was issued in the step of `now` or the one before.
    pub(crate) fn is_valid(&self, nonce: &str, now: u64) -> bool {
        if nonce.len() != NONCE_LEN {
            return false;
        }
        let mut bytes = [0; 8 + TAG_LEN];
        if URL_SAFE_NO_PAD.decode_slice(nonce, &mut bytes) != Ok(bytes.len()) {
            return false;
        }
        let mut step = [0; 8];
        step.copy_from_slice(&bytes[..8]);
        let step = u64::from_be_bytes(step);
        let current = now / self.period;
        if step != current && step.checked_add(1) != Some(current) {
            return false;
        }
        let Some(Ok(mut mac)) = self.secret.map(|s| Hmac::<Sha256>::new_from_slice(&s)) else {
            return false;
        };
        mac.update(b"portcullis dpop nonce\0");
        mac.update(&step.to_be_bytes());
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(&bytes[8..]).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_rotate_and_are_bound_to_the_secret() {
        let nonces = Nonces::new(Some([7; 32]), 60);
        let now = 1_000_020;
        let nonce = nonces.issue(now);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert!(nonces.is_valid(&nonce, now));
        assert!(nonces.is_valid(&nonce, now + 60), "valid in the next step");
        assert!(!nonces.is_valid(&nonce, now + 120), "stale two steps later");
        assert!(
            !nonces.is_valid(&nonce, now - 60),
            "not valid before its step"
        );
        assert!(
            !Nonces::new(Some([8; 32]), 60).is_valid(&nonce, now),
            "another secret"
        );
        let unusable = Nonces::new(None, 60);
        assert!(
            !unusable.is_valid(&unusable.issue(now), now),
            "no secret, no valid nonce"
        );
        let mut forged = nonce.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert!(!nonces.is_valid(&forged, now));
        for bad in [
            "",
            "abc",
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            &"A".repeat(33),
        ] {
            assert!(!nonces.is_valid(bad, now), "{bad}");
        }
    }
}
