//! The parts of a compact JWS (RFC 7515 §7.1): found with one scan for their dots and
//! decoded from base64url with vector code, since every token a request carries goes
//! through here.
//!
//! Decoding is strict, as RFC 7515 §2 has it: the URL-safe alphabet, no padding, no
//! whitespace, and the unused bits of the last character zero, so that one part has exactly
//! one spelling.

use std::mem::MaybeUninit;

use base64_simd::{Out, URL_SAFE_NO_PAD};

/// `part` decoded, or `None` when it is not strict unpadded base64url.
pub(crate) fn decode(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode_to_vec(part).ok()
}

/// `part` decoded into `buf` (no byte of it written beforehand), or `None` when it is not
/// strict unpadded base64url or does not fit.
pub(crate) fn decode_into<'b>(part: &str, buf: &'b mut [MaybeUninit<u8>]) -> Option<&'b [u8]> {
    let len = URL_SAFE_NO_PAD.decoded_length(part.as_bytes()).ok()?;
    if len > buf.len() {
        return None;
    }
    URL_SAFE_NO_PAD
        .decode(part.as_bytes(), Out::from_uninit_slice(buf))
        .ok()
        .map(|decoded| &*decoded)
}

/// The three parts of a compact JWS, `None` unless `token` holds exactly two dots.
pub(crate) fn split(token: &str) -> Option<(&str, &str, &str)> {
    let first = memchr::memchr(b'.', token.as_bytes())?;
    let (header, rest) = (token.get(..first)?, token.get(first + 1..)?);
    let second = memchr::memchr(b'.', rest.as_bytes())?;
    let (payload, signature) = (rest.get(..second)?, rest.get(second + 1..)?);
    if memchr::memchr(b'.', signature.as_bytes()).is_some() {
        return None;
    }
    Some((header, payload, signature))
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose};
    use proptest::prelude::*;

    use super::*;

    /// The decoding the crate used before: the reference for strictness.
    fn reference(part: &str) -> Option<Vec<u8>> {
        general_purpose::URL_SAFE_NO_PAD.decode(part).ok()
    }

    fn into_buffer(part: &str, room: usize) -> Option<Vec<u8>> {
        let mut buf = vec![MaybeUninit::uninit(); room];
        decode_into(part, &mut buf).map(<[u8]>::to_vec)
    }

    #[test]
    fn refuses_what_strict_base64url_refuses() {
        for part in [
            "YQ=", "YQ==", "YR", "YWF", "Y", "YWJjZ", "a+b/", "YW Jj", "YW\nJj", "YQ.", "\u{e9}A",
        ] {
            assert_eq!(reference(part), None, "{part:?}");
            assert_eq!(decode(part), None, "{part:?}");
            assert_eq!(into_buffer(part, 64), None, "{part:?}");
        }
        assert_eq!(decode("YWJj-_8"), Some(b"abc\xfb\xff".to_vec()));
        assert_eq!(decode(""), Some(Vec::new()));
    }

    #[test]
    fn a_part_too_long_for_the_buffer_is_refused() {
        // 48 characters decode to 36 bytes: vector code and the tail both run.
        let part = general_purpose::URL_SAFE_NO_PAD.encode([7u8; 36]);
        assert_eq!(into_buffer(&part, 36), Some(vec![7u8; 36]));
        assert_eq!(into_buffer(&part, 35), None);
        assert_eq!(into_buffer("", 0), Some(Vec::new()));
    }

    #[test]
    fn splits_on_exactly_two_dots() {
        assert_eq!(split("a.b.c"), Some(("a", "b", "c")));
        assert_eq!(split(".."), Some(("", "", "")));
        assert_eq!(split("a.b."), Some(("a", "b", "")));
        for token in ["", "abc", "a.b", "a.b.c.d", "a..b.c", "...."] {
            assert_eq!(split(token), None, "{token:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Accepts and decodes exactly what the reference does, on strings of the alphabet
        /// with a few strangers, at lengths around the vector block (32 characters).
        #[test]
        fn decodes_as_the_reference(part in "[A-Za-z0-9_\\-+/=. \u{e9}]{0,80}") {
            prop_assert_eq!(decode(&part), reference(&part));
            prop_assert_eq!(into_buffer(&part, 80), reference(&part));
        }

        /// Every encoding of random bytes comes back, at every length.
        #[test]
        fn decodes_what_is_encoded(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let part = general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert_eq!(decode(&part), Some(bytes.clone()));
            prop_assert_eq!(into_buffer(&part, bytes.len()), Some(bytes));
        }

        /// One character of a valid encoding replaced by another of the alphabet (the last
        /// one's unused bits among them): the same answer as the reference.
        #[test]
        fn decodes_a_changed_encoding_as_the_reference(
            bytes in proptest::collection::vec(any::<u8>(), 1..100),
            at in any::<proptest::sample::Index>(),
            with in proptest::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec(),
            ),
        ) {
            let mut part = general_purpose::URL_SAFE_NO_PAD.encode(&bytes).into_bytes();
            let at = at.index(part.len());
            part[at] = with;
            let part = String::from_utf8(part).expect("ASCII");
            prop_assert_eq!(decode(&part), reference(&part));
            prop_assert_eq!(into_buffer(&part, bytes.len()), reference(&part));
        }

        /// The same three parts as the reading by `splitn`.
        #[test]
        fn splits_as_splitn(token in "[a.]{0,12}") {
            let mut parts = token.splitn(4, '.');
            let expected = match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(h), Some(p), Some(s), None) => Some((h, p, s)),
                _ => None,
            };
            prop_assert_eq!(split(&token), expected);
        }
    }
}
