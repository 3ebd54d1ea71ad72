//! Values authenticated with the key the replicas share: HMAC-SHA-256 over the Redis key
//! and the value, so that a value written by anything without the key, moved from another
//! key, cut short or grown is never taken for one of ours.
//!
//! Layout of a stored value: one version byte, the 32-byte tag, then the payload.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The first byte of every value this version writes.
const VERSION: u8 = 1;
const TAG_LEN: usize = 32;
/// Bytes a sealed value has beyond its payload.
pub(super) const OVERHEAD: usize = 1 + TAG_LEN;
/// Keeps these tags apart from any other use of the same key.
const CONTEXT: &[u8] = b"portcullis redis value v1\0";

/// The shortest shared key accepted: 32 bytes, the size of the HMAC-SHA-256 output.
pub const MIN_SHARED_KEY_LEN: usize = 32;

/// The keyed MAC, prepared once.
#[derive(Clone)]
pub(super) struct Sealer {
    mac: HmacSha256,
}

impl Sealer {
    /// `None` when `key` is shorter than [`MIN_SHARED_KEY_LEN`].
    pub(super) fn new(key: &[u8]) -> Option<Self> {
        if key.len() < MIN_SHARED_KEY_LEN {
            return None;
        }
        // HMAC takes keys of any length; the length check above is ours.
        let mac = HmacSha256::new_from_slice(key).ok()?;
        Some(Self { mac })
    }

    fn tagger(&self, redis_key: &[u8], payload: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(CONTEXT);
        // The key's length first, so that no key/payload split can be shifted.
        mac.update(&(redis_key.len() as u64).to_be_bytes());
        mac.update(redis_key);
        mac.update(payload);
        mac
    }

    /// `payload` sealed for storage under `redis_key`.
    pub(super) fn seal(&self, redis_key: &[u8], payload: &[u8]) -> Vec<u8> {
        let tag = self.tagger(redis_key, payload).finalize().into_bytes();
        let mut sealed = Vec::with_capacity(OVERHEAD + payload.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&tag);
        sealed.extend_from_slice(payload);
        sealed
    }

    /// The payload of `sealed`, read from `redis_key`, when its tag verifies (compared in
    /// constant time); `None` for anything else.
    pub(super) fn open<'a>(&self, redis_key: &[u8], sealed: &'a [u8]) -> Option<&'a [u8]> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < TAG_LEN {
            return None;
        }
        let (tag, payload) = rest.split_at(TAG_LEN);
        self.tagger(redis_key, payload)
            .verify_slice(tag)
            .ok()
            .map(|()| payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn short_keys_are_refused() {
        assert!(Sealer::new(&KEY[..31]).is_none());
        assert!(Sealer::new(KEY).is_some());
    }

    #[test]
    fn only_an_untouched_value_under_its_own_key_opens() {
        let sealer = Sealer::new(KEY).expect("key");
        let other = Sealer::new(b"another shared key of 32 bytes!!").expect("key");
        let sealed = sealer.seal(b"p:introspect:aa", b"{\"active\":true}");
        assert_eq!(
            sealer.open(b"p:introspect:aa", &sealed),
            Some(&b"{\"active\":true}"[..])
        );

        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let mut bad_tag = sealed.clone();
        bad_tag[5] ^= 0x80;
        let mut bad_version = sealed.clone();
        bad_version[0] = 2;
        let mut grown = sealed.clone();
        grown.push(b' ');
        let refused: [(&[u8], &[u8], &str); 9] = [
            (b"p:introspect:bb", &sealed, "moved to another key"),
            (b"p:introspect:aa", &flipped, "payload changed"),
            (b"p:introspect:aa", &bad_tag, "tag changed"),
            (b"p:introspect:aa", &bad_version, "unknown version"),
            (b"p:introspect:aa", &grown, "payload grown"),
            (b"p:introspect:aa", &sealed[..sealed.len() - 1], "cut short"),
            (
                b"p:introspect:aa",
                &sealed[..OVERHEAD - 1],
                "shorter than a tag",
            ),
            (b"p:introspect:aa", b"", "empty"),
            (b"p:introspect:aa", b"{\"active\":true}", "plain JSON"),
        ];
        for (key, value, why) in refused {
            assert_eq!(sealer.open(key, value), None, "{why}");
        }
        assert_eq!(
            other.open(b"p:introspect:aa", &sealed),
            None,
            "sealed with another key"
        );
    }

    mod properties {
        use proptest::{prelude::*, sample::Index, test_runner::Config};

        use super::{KEY, Sealer};

        proptest! {
            #![proptest_config(Config { cases: 256, max_shrink_iters: 2_000, ..Config::default() })]

            /// Any payload under any key round-trips; changing any one byte of the stored
            /// value, cutting it anywhere or reading it under another key never opens.
            #[test]
            fn only_the_sealed_bytes_under_their_key_open(
                redis_key in proptest::collection::vec(any::<u8>(), 0..40),
                payload in proptest::collection::vec(any::<u8>(), 0..200),
                at in any::<Index>(),
                flip in 1u8..=255,
                cut in any::<Index>(),
            ) {
                let sealer = Sealer::new(KEY).expect("key");
                let sealed = sealer.seal(&redis_key, &payload);
                prop_assert_eq!(sealer.open(&redis_key, &sealed), Some(&payload[..]));
                let mut changed = sealed.clone();
                changed[at.index(sealed.len())] ^= flip;
                prop_assert_eq!(sealer.open(&redis_key, &changed), None);
                prop_assert_eq!(sealer.open(&redis_key, &sealed[..cut.index(sealed.len())]), None);
                let mut other_key = redis_key.clone();
                other_key.push(0);
                prop_assert_eq!(sealer.open(&other_key, &sealed), None);
            }

            /// Arbitrary bytes never open (a forged tag has a 2^-256 chance).
            #[test]
            fn arbitrary_bytes_never_open(value in proptest::collection::vec(any::<u8>(), 0..300)) {
                let sealer = Sealer::new(KEY).expect("key");
                prop_assert_eq!(sealer.open(b"k", &value), None);
            }
        }
    }

    #[test]
    fn an_empty_payload_round_trips() {
        let sealer = Sealer::new(KEY).expect("key");
        let sealed = sealer.seal(b"k", b"");
        assert_eq!(sealed.len(), OVERHEAD);
        assert_eq!(sealer.open(b"k", &sealed), Some(&b""[..]));
    }
}
