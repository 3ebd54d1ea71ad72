//! Where the bearer token is taken from (RFC 6750 §2).
//!
//! By default only the `Authorization: Bearer` header is read. A named header, a cookie and
//! the `access_token` query parameter can each be enabled explicitly; a token found in more
//! than one enabled place is a malformed request.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, Uri, header};

use crate::error::AuthError;

/// The default cap on a token's length, in bytes: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The places a token is looked for. Built through the layer's `token_from_*` methods.
#[derive(Clone, Debug)]
pub(crate) struct TokenSource {
    pub(crate) header: Option<HeaderName>,
    pub(crate) cookie: Option<Box<str>>,
    pub(crate) query: bool,
    pub(crate) max_len: usize,
}

impl Default for TokenSource {
    fn default() -> Self {
        Self {
            header: None,
            cookie: None,
            query: false,
            max_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }
}

impl TokenSource {
    /// Finds the one token in the request and the scheme it came with (`Ok(None)` when
    /// there is none): `DPoP` only for an `Authorization: DPoP` header; every other source
    /// counts as `Bearer`.
    pub(crate) fn credentials<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Option<(Cow<'r, str>, Scheme)>, AuthError> {
        let mut found = Found {
            token: None,
            fits: false,
            max_len: self.max_len,
        };
        let mut scheme = Scheme::Bearer;
        if let Some((token, s, fits)) = authorization(headers)? {
            found.add(Cow::Borrowed(token))?;
            found.fits = fits;
            scheme = s;
        }
        // `Authorization` is always read; naming it again adds nothing.
        if let Some(name) = self.header.as_ref().filter(|n| *n != header::AUTHORIZATION) {
            for value in headers.get_all(name) {
                let token = value.to_str().map_err(|_| {
                    AuthError::invalid_request("the token header is not visible ASCII")
                })?;
                found.add(Cow::Borrowed(token))?;
            }
        }
        if let Some(name) = &self.cookie {
            for token in cookies(headers, name) {
                found.add(Cow::Borrowed(token))?;
            }
        }
        if self.query {
            query(uri, &mut found)?;
        }
        match found.token {
            Some(token) if found.fits => Ok(Some((token, scheme))),
            Some(token) => check(&token).map(|()| Some((token, scheme))),
            None => Ok(None),
        }
    }
}

/// The authorization scheme a token came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Bearer` (RFC 6750), or any source other than the `Authorization` header.
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): a DPoP proof must come with it.
    Dpop,
}

/// The one token found so far, from any enabled source.
struct Found<'r> {
    token: Option<Cow<'r, str>>,
    /// Whether `token` is known to fit the `b64token` grammar.
    fits: bool,
    max_len: usize,
}

impl<'r> Found<'r> {
    /// Takes one more candidate. The length cap comes first, as soon as a candidate is
    /// found, so an oversized token is refused as too long even when it is also a second
    /// token; a second token within the cap is a malformed request.
    fn add(&mut self, token: Cow<'r, str>) -> Result<(), AuthError> {
        if token.len() > self.max_len {
            return Err(too_long());
        }
        if self.token.is_some() {
            return Err(AuthError::invalid_request(
                "the request carries more than one access token",
            ));
        }
        self.token = Some(token);
        Ok(())
    }
}

/// The token of an `Authorization: Bearer` or `DPoP` header (another scheme counts as no
/// token), and whether it already fits the `b64token` grammar.
fn authorization(headers: &HeaderMap) -> Result<Option<(&str, Scheme, bool)>, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(
            "the request carries more than one Authorization header",
        ));
    }
    let not_visible =
        || AuthError::invalid_request("the Authorization header is not visible ASCII");
    let bytes = value.as_bytes();
    let text = std::str::from_utf8(bytes).map_err(|_| not_visible())?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let token = rest.trim_start_matches(' ');
    // The value must be visible ASCII, as `HeaderValue::to_str` has it. A token that fits
    // the `b64token` grammar is visible ASCII already, so then only the scheme is left to
    // look at, and the grammar is not checked again later.
    let fits = is_b64token(token);
    let visible = (fits && is_visible_ascii(scheme.as_bytes())) || is_visible_ascii(bytes);
    if !visible {
        return Err(not_visible());
    }
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Ok(None);
    };
    if token.is_empty() {
        return Err(AuthError::invalid_request(
            "the Bearer credentials carry no token",
        ));
    }
    Ok(Some((token, scheme, fits)))
}

/// The values of every cookie named `name`.
fn cookies<'r, 'n>(
    headers: &'r HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'r str> + use<'r, 'n> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
}

/// Every `access_token` query parameter, decoded, into `found`.
fn query<'r>(uri: &'r Uri, found: &mut Found<'r>) -> Result<(), AuthError> {
    let Some(query) = uri.query() else {
        return Ok(());
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !form_urlencoded::parse(key.as_bytes()).any(|(k, _)| k == "access_token") {
            continue;
        }
        // Decoding only shortens a value: a raw value over three times the cap (`%XX` per
        // byte) is too long whatever it decodes to, and is never decoded.
        if value.len() > found.max_len.saturating_mul(3) {
            return Err(too_long());
        }
        if let Some((_, decoded)) = form_urlencoded::parse(pair.as_bytes()).next() {
            found.add(decoded)?;
        }
    }
    Ok(())
}

fn too_long() -> AuthError {
    AuthError::invalid_token("the token is longer than allowed")
}

/// Whether `f` holds for every byte. The bytes are taken 32 at a time without an early exit
/// inside a block, so the compiler turns the test into vector instructions: this runs over
/// every token of every request.
fn all_bytes(bytes: &[u8], f: impl Fn(u8) -> bool) -> bool {
    let mut blocks = bytes.chunks_exact(32);
    blocks
        .by_ref()
        .all(|block| block.iter().fold(true, |all, &b| all & f(b)))
        && blocks.remainder().iter().all(|&b| f(b))
}

/// Whether every byte is visible ASCII or a tab: the rule of
/// [`HeaderValue::to_str`](http::HeaderValue::to_str).
fn is_visible_ascii(bytes: &[u8]) -> bool {
    all_bytes(bytes, |b| (b' '..=b'~').contains(&b) | (b == b'\t'))
}

/// Whether `b` may appear in a `b64token` before its `=` padding.
fn b64token_byte(b: u8) -> bool {
    // `| 0x20` maps `A-Z` onto `a-z` and leaves every other byte outside `a-z`; `-./0-9`
    // are the run 0x2D..=0x39. Five tests per byte, each a vector compare.
    (b | 0x20).wrapping_sub(b'a') < 26
        || b.wrapping_sub(b'-') < 13
        || b == b'+'
        || b == b'_'
        || b == b'~'
}

/// Whether `token` fits the RFC 6750 `b64token` grammar:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && all_bytes(body.as_bytes(), b64token_byte)
}

/// The `b64token` grammar as a rule (the length cap is [`Found::add`]'s).
fn check(token: &str) -> Result<(), AuthError> {
    if is_b64token(token) {
        Ok(())
    } else {
        Err(AuthError::invalid_request(
            "the token does not fit the b64token grammar",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use http::{HeaderValue, Request};

    fn run(source: &TokenSource, req: &Request<()>) -> Result<Option<String>, ErrorKind> {
        source
            .credentials(req.headers(), req.uri())
            .map(|t| t.map(|(token, _)| token.into_owned()))
            .map_err(|e| e.kind())
    }

    #[test]
    fn byte_classes_match_their_definitions() {
        for b in 0..=255u8 {
            let b64 = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(b64token_byte(b), b64, "b64token byte {b:#04x}");
        }
        // Every byte at every place of a block and of the remainder, against `to_str`.
        let base = vec![b'a'; 70];
        for b in 0..=255u8 {
            for at in [0, 5, 31, 32, 63, 64, 69] {
                let mut bytes = base.clone();
                bytes[at] = b;
                let expected = HeaderValue::from_bytes(&bytes).is_ok_and(|v| v.to_str().is_ok());
                assert_eq!(is_visible_ascii(&bytes), expected, "byte {b:#04x} at {at}");
                let expected = bytes.iter().all(|&c| b64token_byte(c));
                assert_eq!(
                    all_bytes(&bytes, b64token_byte),
                    expected,
                    "{b:#04x} at {at}"
                );
            }
        }
    }

    fn with_auth(value: &'static str) -> Request<()> {
        Request::builder()
            .header("authorization", value)
            .body(())
            .expect("request")
    }

    #[test]
    fn authorization_header_grammar() {
        let source = TokenSource::default();
        let table: &[(&str, Result<Option<&str>, ErrorKind>)] = &[
            ("Bearer abc.def.ghi", Ok(Some("abc.def.ghi"))),
            ("bearer abc", Ok(Some("abc"))),
            ("BEARER abc", Ok(Some("abc"))),
            ("BeArEr   abc", Ok(Some("abc"))),
            ("Bearer a-b_c~d+e/f==", Ok(Some("a-b_c~d+e/f=="))),
            ("DPoP abc.def.ghi", Ok(Some("abc.def.ghi"))),
            ("dpop abc", Ok(Some("abc"))),
            ("DPOP", Err(ErrorKind::InvalidRequest)),
            ("DPoPabc", Ok(None)),
            ("Basic dXNlcjpwYXNz", Ok(None)),
            ("Bearerabc", Ok(None)),
            ("Bearer", Err(ErrorKind::InvalidRequest)),
            ("Bearer ", Err(ErrorKind::InvalidRequest)),
            ("Bearer ===", Err(ErrorKind::InvalidRequest)),
            ("Bearer a=b", Err(ErrorKind::InvalidRequest)),
            ("Bearer abc def", Err(ErrorKind::InvalidRequest)),
            ("Bearer {\"a\":1}", Err(ErrorKind::InvalidRequest)),
            ("Bearer a,b", Err(ErrorKind::InvalidRequest)),
        ];
        for (value, expected) in table {
            let got = run(&source, &with_auth(value));
            let expected = expected.map(|t| t.map(str::to_owned));
            assert_eq!(got, expected, "Authorization: {value}");
        }
    }

    #[test]
    fn scheme_is_reported() {
        let source = TokenSource::default();
        let scheme = |value| {
            let req = with_auth(value);
            source
                .credentials(req.headers(), req.uri())
                .ok()
                .flatten()
                .map(|(_, s)| s)
        };
        assert_eq!(scheme("Bearer a"), Some(Scheme::Bearer));
        assert_eq!(scheme("DPoP a"), Some(Scheme::Dpop));
        assert_eq!(scheme("dPoP a"), Some(Scheme::Dpop));
    }

    #[test]
    fn no_header_is_no_token() {
        let req = Request::new(());
        assert_eq!(run(&TokenSource::default(), &req), Ok(None));
    }

    #[test]
    fn two_authorization_headers_are_invalid_request() {
        let mut req = with_auth("Bearer a");
        req.headers_mut()
            .append("authorization", HeaderValue::from_static("Bearer b"));
        assert_eq!(
            run(&TokenSource::default(), &req),
            Err(ErrorKind::InvalidRequest)
        );
    }

    #[test]
    fn non_ascii_header_is_invalid_request() {
        let mut req = Request::new(());
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_bytes(b"Bearer \xff").expect("value"),
        );
        assert_eq!(
            run(&TokenSource::default(), &req),
            Err(ErrorKind::InvalidRequest)
        );
    }

    /// The header read as `HeaderValue::to_str` then split, as the layer once read it: the
    /// oracle for the one reading of the value.
    fn read_as_text(value: &HeaderValue) -> Result<Option<String>, ErrorKind> {
        let text = value.to_str().map_err(|_| ErrorKind::InvalidRequest)?;
        let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("dpop") {
            return Ok(None);
        }
        let token = rest.trim_start_matches(' ');
        if token.is_empty() {
            return Err(ErrorKind::InvalidRequest);
        }
        check(token).map_err(|e| e.kind())?;
        Ok(Some(token.to_owned()))
    }

    #[test]
    fn the_value_is_judged_as_when_read_as_text() {
        let schemes: &[&[u8]] = &[
            b"Bearer",
            b"bearer",
            b"DPoP",
            b"Basic",
            b"Be\x80rer",
            b"B\xc3\xa9arer",
            b"Bearer\t",
            b"",
        ];
        let gaps: &[&[u8]] = &[b" ", b"  ", b"", b"\t"];
        let tokens: &[&[u8]] = &[
            b"abc.def-_~+/==",
            b"abc=def",
            b"abc\x80",
            b"\xc3\xa9t\xc3\xa9",
            b"abc\tdef",
            b"abc def",
            b"",
            b"=",
            b"a\"b",
        ];
        for scheme in schemes {
            for gap in gaps {
                for token in tokens {
                    let bytes = [*scheme, *gap, *token].concat();
                    let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                        continue;
                    };
                    let mut req = Request::new(());
                    req.headers_mut().insert("authorization", value.clone());
                    assert_eq!(
                        run(&TokenSource::default(), &req),
                        read_as_text(&value),
                        "{bytes:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn length_cap_applies_before_grammar() {
        let source = TokenSource {
            max_len: 4,
            ..TokenSource::default()
        };
        assert_eq!(
            run(&source, &with_auth("Bearer abcd")),
            Ok(Some("abcd".into()))
        );
        assert_eq!(
            run(&source, &with_auth("Bearer abcde")),
            Err(ErrorKind::InvalidToken)
        );
        assert_eq!(
            run(&source, &with_auth("Bearer {{{{{")),
            Err(ErrorKind::InvalidToken)
        );
    }

    #[test]
    fn other_sources_are_off_by_default() {
        let req = Request::builder()
            .uri("/x?access_token=abc")
            .header("cookie", "at=abc")
            .header("x-token", "abc")
            .body(())
            .expect("request");
        assert_eq!(run(&TokenSource::default(), &req), Ok(None));
    }

    #[test]
    fn enabled_sources_and_conflicts() {
        let source = TokenSource {
            header: Some(HeaderName::from_static("x-token")),
            cookie: Some("at".into()),
            query: true,
            ..TokenSource::default()
        };
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            Result<Option<&'a str>, ErrorKind>,
        );
        let table: &[Case<'_>] = &[
            ("/?access_token=q1", &[], Ok(Some("q1"))),
            ("/?access_token=a%2Bb", &[], Ok(Some("a+b"))),
            ("/", &[("cookie", "x=1; at=c1; y=2")], Ok(Some("c1"))),
            ("/", &[("x-token", "h1")], Ok(Some("h1"))),
            (
                "/",
                &[("cookie", "at=c1"), ("cookie", "at=c2")],
                Err(ErrorKind::InvalidRequest),
            ),
            (
                "/?access_token=a&access_token=b",
                &[],
                Err(ErrorKind::InvalidRequest),
            ),
            (
                "/?access_token=q1",
                &[("authorization", "Bearer h1")],
                Err(ErrorKind::InvalidRequest),
            ),
            (
                "/",
                &[("x-token", "h1"), ("cookie", "at=c1")],
                Err(ErrorKind::InvalidRequest),
            ),
            (
                "/",
                &[("authorization", "Basic abc"), ("cookie", "at=c1")],
                Ok(Some("c1")),
            ),
            (
                "/",
                &[("x-token", "a"), ("x-token", "b")],
                Err(ErrorKind::InvalidRequest),
            ),
            ("/?access_token=a%20b", &[], Err(ErrorKind::InvalidRequest)),
            ("/?access%5Ftoken=q2&other=1", &[], Ok(Some("q2"))),
            ("/?access_tokenx=q3&x=access_token", &[], Ok(None)),
        ];
        for (uri, headers, expected) in table {
            let mut builder = Request::builder().uri(*uri);
            for (k, v) in *headers {
                builder = builder.header(*k, *v);
            }
            let req = builder.body(()).expect("request");
            let expected = expected.map(|t| t.map(str::to_owned));
            assert_eq!(run(&source, &req), expected, "{uri} {headers:?}");
        }
    }

    #[test]
    fn the_length_cap_comes_before_conflicts_and_decoding() {
        let source = TokenSource {
            header: Some(HeaderName::from_static("x-token")),
            cookie: Some("at".into()),
            query: true,
            max_len: 4,
        };
        let long = "abcde";
        // 39 bytes raw, over three times the cap: refused before decoding (decoded, it would be
        // 13 bytes and refused all the same; the early refusal only saves the decoding).
        let encoded_long = "%61".repeat(13);
        let table: &[(String, &[(&str, &str)])] = &[
            // An oversized token is refused as such even when another source has one too.
            (format!("/?access_token={long}"), &[("x-token", "abcd")]),
            ("/".into(), &[("x-token", long), ("cookie", "at=abcd")]),
            (
                "/".into(),
                &[("authorization", "Bearer abcde"), ("cookie", "at=ab")],
            ),
            (format!("/?access_token={encoded_long}"), &[]),
            // Too long and repeated, in either order: too long, not "more than one".
            (format!("/?access_token={long}&access_token=ab"), &[]),
            (format!("/?access_token=ab&access_token={long}"), &[]),
            (
                format!("/?access_token={encoded_long}&access_token=ab"),
                &[],
            ),
            ("/".into(), &[("x-token", "ab"), ("x-token", long)]),
            ("/".into(), &[("cookie", "at=abcde; at=ab")]),
        ];
        for (uri, headers) in table {
            let mut builder = Request::builder().uri(uri.as_str());
            for (k, v) in *headers {
                builder = builder.header(*k, *v);
            }
            let req = builder.body(()).expect("request");
            assert_eq!(
                run(&source, &req),
                Err(ErrorKind::InvalidToken),
                "{uri} {headers:?}"
            );
        }
        // Percent-encoded within three times the cap: decoded, then measured.
        let req = Request::builder()
            .uri("/?access_token=%61%62%63%64")
            .body(())
            .expect("request");
        assert_eq!(run(&source, &req), Ok(Some("abcd".into())));
    }

    #[test]
    fn naming_authorization_as_the_token_header_changes_nothing() {
        let source = TokenSource {
            header: Some(header::AUTHORIZATION),
            ..TokenSource::default()
        };
        assert_eq!(
            run(&source, &with_auth("Bearer abc")),
            Ok(Some("abc".into()))
        );
    }
}
