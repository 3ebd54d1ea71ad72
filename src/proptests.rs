//! Property-based tests over everything that reads untrusted input: bearer extraction, the
//! JOSE header, claims, scope policies, JWK Sets, challenge rendering, whole tokens,
//! introspection answers and gRPC method paths.
//!
//! Each property states what a request or an issuer cannot make the crate do: panic,
//! accept what the rules refuse, or disagree with an oracle written here from the RFCs and
//! the crate's documented rules (never from the code under test). Inputs are built from a
//! structure the oracle reads, then rendered to bytes; mutated variants go byte by byte.
//! Case counts are small enough for the whole module to stay within seconds.

use std::{
    borrow::Cow,
    fmt::Write as _,
    sync::{Arc, OnceLock},
};

use http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use proptest::{prelude::*, sample::Index, test_runner::Config};
use serde_json::Value;

use crate::{
    alg::{AlgSet, Algorithm},
    authorities::{AuthorityClaims, AuthoritySource},
    claims::{self, ScopeClaim},
    error::{AuthError, ErrorKind},
    jwks::keys::{self, MAX_KIDLESS_CANDIDATES},
    jwt::header::{self as jose, TypPolicy},
    principal::RegisteredClaims,
    rejection::HttpRejection,
    token::TokenSource,
};

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Shrinking stays bounded too: a failure is reported within seconds.
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// JSON text the tests write themselves: duplicate members, escaped names, numbers out of
// `f64` range and nesting deeper than serde_json's recursion limit, none of which
// `serde_json::Value` can hold.
// ---------------------------------------------------------------------------------------

/// How a string is written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Esc {
    /// Escaped only where JSON requires it.
    Plain,
    /// Every UTF-16 unit as `\uXXXX`.
    Unicode,
}

#[derive(Clone, Debug)]
struct Key {
    name: String,
    esc: Esc,
}

#[derive(Clone, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    /// A float with an exact short decimal form.
    Num(f64),
    /// A number written as is (out of `f64` range, or an unusual spelling).
    NumText(&'static str),
    Str(String, Esc),
    Arr(Vec<J>),
    Obj(Vec<(Key, J)>),
    /// `n` nested arrays.
    Deep(usize),
}

const NUMBER_TEXTS: &[&str] = &[
    "1e400",
    "-1e400",
    "123456789012345678901234567890",
    "-0",
    "1.0e2",
    "5E-1",
    "0.000000000000000000000000000001",
];

impl J {
    fn str(s: &str) -> Self {
        Self::Str(s.to_owned(), Esc::Plain)
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s, _) => Some(s),
            _ => None,
        }
    }

    /// The number a JSON reader finds, when it is a number within `f64` range.
    fn as_number(&self) -> Option<f64> {
        match self {
            #[allow(clippy::cast_precision_loss)]
            Self::Int(i) => Some(*i as f64),
            Self::Num(f) => Some(*f),
            Self::NumText(t) => t.parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    /// A string, or an array of strings.
    fn as_str_list(&self) -> Option<Vec<String>> {
        match self {
            Self::Str(s, _) => Some(vec![s.clone()]),
            Self::Arr(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        }
    }

    fn render(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Self::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Self::Num(f) => {
                out.push_str(&serde_json::to_string(f).expect("a finite float serializes"));
            }
            Self::NumText(t) => out.push_str(t),
            Self::Str(s, esc) => push_json_str(out, s, *esc),
            Self::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Self::Obj(members) => render_members(out, members),
            Self::Deep(n) => {
                out.push_str(&"[".repeat(*n));
                out.push_str(&"]".repeat(*n));
            }
        }
    }
}

fn push_json_str(out: &mut String, s: &str, esc: Esc) {
    match esc {
        Esc::Plain => out.push_str(&serde_json::to_string(s).expect("a string serializes")),
        Esc::Unicode => {
            out.push('"');
            for unit in s.encode_utf16() {
                let _ = write!(out, "\\u{unit:04x}");
            }
            out.push('"');
        }
    }
}

fn render_members(out: &mut String, members: &[(Key, J)]) {
    out.push('{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, &key.name, key.esc);
        out.push(':');
        value.render(out);
    }
    out.push('}');
}

fn object(members: &[(Key, J)]) -> String {
    let mut out = String::new();
    render_members(&mut out, members);
    out
}

/// The value of the only member named `name`; `Err` when it is repeated.
fn member<'m>(members: &'m [(Key, J)], name: &str) -> Result<Option<&'m J>, ()> {
    let mut found = members
        .iter()
        .filter(|(k, _)| k.name == name)
        .map(|(_, v)| v);
    match (found.next(), found.next()) {
        (first, None) => Ok(first),
        _ => Err(()),
    }
}

fn esc() -> impl Strategy<Value = Esc> {
    prop_oneof![4 => Just(Esc::Plain), 1 => Just(Esc::Unicode)]
}

fn key(names: &'static [&'static str]) -> impl Strategy<Value = Key> {
    (prop::sample::select(names), esc()).prop_map(|(n, esc)| Key {
        name: n.to_owned(),
        esc,
    })
}

fn named(name: &'static str) -> impl Strategy<Value = Key> {
    esc().prop_map(move |esc| Key {
        name: name.to_owned(),
        esc,
    })
}

/// Text of every kind: printable ASCII, any Unicode, JSON's special characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ -~]{0,12}",
        1 => "\\PC{0,6}",
        1 => "[\\x00-\\x1f\"\\\\/\u{7f}\u{2028}]{0,4}",
    ]
}

fn leaf() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::Int),
        (any::<i32>(), 0..8u32).prop_map(|(m, e)| J::Num(f64::from(m) / f64::from(1u32 << e))),
        prop::sample::select(NUMBER_TEXTS).prop_map(J::NumText),
        (text(), esc()).prop_map(|(s, e)| J::Str(s, e)),
    ]
}

/// Any JSON value, now and then nested deeper than serde_json's recursion limit (128).
fn value() -> BoxedStrategy<J> {
    let nested = leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(J::Arr),
            prop::collection::vec((key(&["a", "b", "alg", "kid", "iss"]), inner), 0..5)
                .prop_map(J::Obj),
        ]
    });
    prop_oneof![12 => nested, 1 => (100usize..300).prop_map(J::Deep)].boxed()
}

/// One change to a document's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    /// Copies a slice of the document to another place (duplicate members, nesting).
    Copy(Index, Index, Index),
    Truncate(Index),
    /// Puts a byte right after one of the document's quotes: inside a string, often.
    AfterQuote(Index, u8),
}

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"{}[]\",:\\ 0123456789eE.-+ntfu\xff\xc3\x80".to_vec()),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        1 => (any::<Index>(), byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        1 => (any::<Index>(), byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Delete),
        1 => any::<(Index, Index, Index)>().prop_map(|(a, b, c)| Mutation::Copy(a, b, c)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        // Bytes that are no UTF-8 on their own, inside strings: most JSON readers check
        // UTF-8 only in the strings they keep.
        2 => (any::<Index>(), prop_oneof![byte(), 0x80u8..=0xff])
            .prop_map(|(i, b)| Mutation::AfterQuote(i, b)),
    ];
    prop::collection::vec(one, 1..4)
}

fn mutate(mut doc: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if doc.is_empty() {
            doc.push(b'{');
        }
        let len = doc.len();
        match m {
            Mutation::Replace(i, b) => doc[i.index(len)] = *b,
            Mutation::Insert(i, b) => doc.insert(i.index(len + 1), *b),
            Mutation::Delete(i) => {
                doc.remove(i.index(len));
            }
            Mutation::Copy(from, n, to) => {
                let start = from.index(len);
                let end = start + n.index(len - start + 1);
                let slice = doc[start..end].to_vec();
                let at = to.index(len + 1);
                doc.splice(at..at, slice);
            }
            Mutation::Truncate(i) => doc.truncate(i.index(len + 1)),
            Mutation::AfterQuote(i, b) => {
                let quotes: Vec<_> = (0..len).filter(|at| doc[*at] == b'"').collect();
                if !quotes.is_empty() {
                    doc.insert(quotes[i.index(quotes.len())] + 1, *b);
                }
            }
        }
    }
    doc
}

/// `a` and `b` are the same number, give or take the last bits of a long decimal.
fn same_number(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

// ---------------------------------------------------------------------------------------
// Bearer extraction (RFC 6750 §2): the Authorization header, a named header, a cookie and
// the `access_token` query parameter.
// ---------------------------------------------------------------------------------------

/// An `Authorization` value: scheme, spaces, credentials, as bytes (not always ASCII).
#[derive(Clone, Debug)]
struct AuthValue {
    scheme: String,
    spaces: usize,
    token: Vec<u8>,
}

impl AuthValue {
    fn bytes(&self) -> Vec<u8> {
        let mut out = self.scheme.clone().into_bytes();
        out.extend(std::iter::repeat_n(b' ', self.spaces));
        out.extend_from_slice(&self.token);
        out
    }
}

#[derive(Clone, Debug)]
struct Cookie {
    name: &'static str,
    value: String,
    quoted: bool,
}

#[derive(Clone, Debug)]
struct QueryParam {
    key: &'static str,
    value: String,
}

#[derive(Clone, Debug)]
struct BearerCase {
    header: Option<&'static str>,
    cookie: bool,
    query: bool,
    max_len: usize,
    authorization: Vec<AuthValue>,
    named: Vec<Vec<u8>>,
    cookies: Vec<(Vec<Cookie>, bool)>,
    params: Vec<QueryParam>,
}

const COOKIE_NAME: &str = "at";

impl BearerCase {
    fn source(&self) -> TokenSource {
        TokenSource {
            header: self.header.map(HeaderName::from_static),
            cookie: self.cookie.then(|| COOKIE_NAME.into()),
            query: self.query,
            max_len: self.max_len,
        }
    }

    /// The request parts; `None` when `http` itself refuses a header value.
    fn render(&self) -> Option<(HeaderMap, Uri)> {
        let mut headers = HeaderMap::new();
        for value in &self.authorization {
            headers.append(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(&value.bytes()).ok()?,
            );
        }
        for value in &self.named {
            headers.append("x-token", HeaderValue::from_bytes(value).ok()?);
        }
        for (cookies, spaced) in &self.cookies {
            let sep = if *spaced { "; " } else { ";" };
            let line = cookies
                .iter()
                .map(|c| {
                    if c.quoted {
                        format!("{}=\"{}\"", c.name, c.value)
                    } else {
                        format!("{}={}", c.name, c.value)
                    }
                })
                .collect::<Vec<_>>()
                .join(sep);
            headers.append(header::COOKIE, HeaderValue::from_str(&line).ok()?);
        }
        let mut uri = String::from("/r");
        for (i, p) in self.params.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            let _ = write!(uri, "{}={}", p.key, p.value);
        }
        Some((headers, Uri::try_from(uri).ok()?))
    }
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let mut seen_body = false;
    let mut in_padding = false;
    for c in s.chars() {
        let body = c.is_ascii_alphanumeric() || "-._~+/".contains(c);
        if c == '=' {
            if !seen_body {
                return false;
            }
            in_padding = true;
        } else if body && !in_padding {
            seen_body = true;
        } else {
            return false;
        }
    }
    seen_body
}

/// `application/x-www-form-urlencoded` decoding (WHATWG URL §5.1): `+` is a space, `%XX`
/// a byte, anything else itself; the bytes are read as UTF-8, lossily.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && hex(bytes[i + 1]).is_some()
                && hex(bytes[i + 2]).is_some() =>
            {
                let hi = hex(bytes[i + 1]).unwrap_or(0);
                let lo = hex(bytes[i + 2]).unwrap_or(0);
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    bytes
        .iter()
        .all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
        .then(|| std::str::from_utf8(bytes).ok())
        .flatten()
}

/// What RFC 6750 §2 and the crate's documented rules make of the request: the token, or
/// the error kinds the rules allow (a request with several faults may be refused for any
/// of them, except that an oversized token is too long even when it is also a second one).
fn bearer_oracle(case: &BearerCase) -> Result<Option<String>, Vec<ErrorKind>> {
    let mut allowed = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    // Authorization (RFC 7235 §2.1: `credentials = auth-scheme [ 1*SP token68 ]`).
    match case.authorization.as_slice() {
        [] => {}
        [one] => match visible_ascii(&one.bytes()) {
            None => allowed.push(ErrorKind::InvalidRequest),
            Some(value) => {
                let (scheme, rest) = match value.find(' ') {
                    Some(at) => (&value[..at], &value[at..]),
                    None => (value, ""),
                };
                // `DPoP` (RFC 9449 §7.1) carries a token the same way.
                if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop") {
                    let token = rest.trim_start_matches(' ');
                    if token.is_empty() {
                        allowed.push(ErrorKind::InvalidRequest);
                    } else {
                        candidates.push(token.to_owned());
                    }
                }
            }
        },
        _ => allowed.push(ErrorKind::InvalidRequest),
    }
    // The named header, each value a token; naming `Authorization` adds nothing.
    if case.header == Some("x-token") {
        for value in &case.named {
            match visible_ascii(value) {
                Some(v) => candidates.push(v.to_owned()),
                None => allowed.push(ErrorKind::InvalidRequest),
            }
        }
    }
    // Cookies named `at` (RFC 6265 §4.2.1), their value unquoted.
    if case.cookie {
        for (cookies, _) in &case.cookies {
            for c in cookies.iter().filter(|c| c.name == COOKIE_NAME) {
                candidates.push(c.value.clone());
            }
        }
    }
    // `access_token` query parameters (RFC 6750 §2.3), form-decoded.
    if case.query {
        for p in &case.params {
            if form_decode(p.key) == "access_token" {
                candidates.push(form_decode(&p.value));
            }
        }
    }
    let too_long = candidates.iter().any(|t| t.len() > case.max_len);
    let within = candidates
        .iter()
        .filter(|t| t.len() <= case.max_len)
        .count();
    if too_long {
        allowed.push(ErrorKind::InvalidToken);
    }
    if within > 1 {
        allowed.push(ErrorKind::InvalidRequest);
    }
    if !allowed.is_empty() {
        return Err(allowed);
    }
    match candidates.pop() {
        None => Ok(None),
        Some(token) if is_b64token(&token) => Ok(Some(token)),
        Some(_) => Err(vec![ErrorKind::InvalidRequest]),
    }
}

/// Token bytes: mostly `b64token` characters, now and then anything a header can carry.
fn token_bytes() -> impl Strategy<Value = Vec<u8>> {
    let b = prop_oneof![
        12 => prop::sample::select(
            b"abcXYZ019-._~+/=".to_vec()
        ),
        1 => prop::sample::select(b" ,\"{}\t;%:".to_vec()),
        1 => 0x80u8..=0xff,
    ];
    prop::collection::vec(b, 0..20)
}

fn scheme() -> impl Strategy<Value = String> {
    let cased = |word: &'static str| {
        prop::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
            word.chars()
                .zip(upper)
                .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                .collect()
        })
    };
    prop_oneof![
        6 => cased("bearer"),
        1 => Just("Basic".to_owned()),
        1 => Just("DPoP".to_owned()),
        1 => cased("bearerx"),
        1 => Just(String::new()),
        1 => Just("Bearer\t".to_owned()),
    ]
}

fn cookie_value() -> impl Strategy<Value = String> {
    // RFC 6265 cookie-octets: no space, quote, comma, semicolon or backslash.
    prop_oneof![
        4 => "[A-Za-z0-9._~+/-]{0,12}={0,2}",
        1 => "[!#-+\\--:<-\\[\\]-~]{0,10}",
    ]
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9._~-]{0,16}",
        2 => "([A-Za-z0-9._~-]|%[0-9A-Fa-f]{2}|\\+|%|=){0,14}",
    ]
}

fn bearer_case() -> impl Strategy<Value = BearerCase> {
    let auth = (
        scheme(),
        prop_oneof![1 => Just(0usize), 6 => Just(1usize), 1 => 2..4usize],
        token_bytes(),
    )
        .prop_map(|(scheme, spaces, token)| AuthValue {
            scheme,
            spaces,
            token,
        });
    let cookie = (
        prop::sample::select(&["at", "at2", "a", "x"][..]),
        cookie_value(),
        any::<bool>(),
    )
        .prop_map(|(name, value, quoted)| Cookie {
            name,
            value,
            quoted,
        });
    let param = (
        prop::sample::select(
            &[
                "access_token",
                "access%5Ftoken",
                "access_tokenx",
                "Access_token",
                "x",
            ][..],
        ),
        query_value(),
    )
        .prop_map(|(key, value)| QueryParam { key, value });
    (
        prop::option::of(prop::sample::select(&["x-token", "authorization"][..])),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![3 => 1usize..24, 1 => Just(crate::token::DEFAULT_MAX_TOKEN_LEN)],
        prop::collection::vec(auth, 0..3),
        prop::collection::vec(token_bytes(), 0..3),
        prop::collection::vec((prop::collection::vec(cookie, 0..4), any::<bool>()), 0..3),
        prop::collection::vec(param, 0..4),
    )
        .prop_map(
            |(header, cookie, query, max_len, authorization, named, cookies, params)| BearerCase {
                header,
                cookie,
                query,
                max_len,
                authorization,
                named,
                cookies,
                params,
            },
        )
}

proptest! {
    #![proptest_config(config(512))]

    /// Extraction takes exactly what RFC 6750 and the documented rules take, refuses with a
    /// kind they allow, and never returns a token over the cap.
    #[test]
    fn bearer_extraction_agrees_with_the_rfc(case in bearer_case()) {
        // `http` refusing a header value or the URI would mean no such request exists;
        // the generators only make values it takes, and this keeps that honest.
        let rendered = case.render();
        prop_assume!(rendered.is_some(), "http refused the request");
        let Some((headers, uri)) = rendered else { return Ok(()) };
        let got = case
            .source()
            .credentials(&headers, &uri)
            .map(|t| t.map(|(token, _)| Cow::into_owned(token)))
            .map_err(|e| e.kind());
        let expected = bearer_oracle(&case);
        match (&got, &expected) {
            (Ok(token), Ok(want)) => {
                prop_assert_eq!(token, want);
                if let Some(token) = token {
                    prop_assert!(token.len() <= case.max_len);
                }
            }
            (Err(kind), Err(kinds)) => {
                prop_assert!(kinds.contains(kind), "{kind:?} not in {kinds:?}");
            }
            _ => prop_assert!(false, "got {got:?}, the rules say {expected:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The JOSE header (RFC 7515 §4, RFC 8725).
// ---------------------------------------------------------------------------------------

const ALG_NAMES: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];
const BAD_ALG_NAMES: &[&str] = &[
    "none", "None", "NONE", "HS256", "HS384", "HS512", "rs256", "RS256 ", " RS256", "ES512",
    "Ed25519", "RSA-OAEP", "dir", "",
];
const TYPS: &[&str] = &[
    "at+jwt",
    "AT+JWT",
    "application/at+jwt",
    "Application/At+Jwt",
    "JWT",
    "jwt",
    "application/jwt",
    "application/application/at+jwt",
    "at+jwt ",
    "dpop+jwt",
    "JOSE",
    "",
];
/// Members the header parser reads; any other is ignored.
const HEADER_READ: &[&str] = &["alg", "kid", "typ", "crit", "b64", "enc", "zip"];
const HEADER_OTHER: &[&str] = &["jku", "x5u", "jwk", "x5c", "x5t", "cty", "nonce", "x-extra"];

fn header_member() -> impl Strategy<Value = (Key, J)> {
    let alg = prop_oneof![
        3 => prop::sample::select(ALG_NAMES).prop_map(J::str),
        2 => prop::sample::select(BAD_ALG_NAMES).prop_map(J::str),
        1 => value(),
    ];
    let kid = prop_oneof![
        3 => "[A-Za-z0-9_-]{0,8}".prop_map(|s| J::str(&s)),
        1 => (250usize..262).prop_map(|n| J::str(&"k".repeat(n))),
        1 => (text(), esc()).prop_map(|(s, e)| J::Str(s, e)),
        1 => value(),
    ];
    let typ = prop_oneof![
        3 => prop::sample::select(TYPS).prop_map(J::str),
        1 => value(),
    ];
    prop_oneof![
        (named("alg"), alg),
        (named("kid"), kid),
        (named("typ"), typ),
        (key(&["crit", "b64", "enc", "zip"]), value()),
        (
            key(HEADER_OTHER),
            prop_oneof![(text(), esc()).prop_map(|(s, e)| J::Str(s, e)), value(),]
        ),
    ]
}

/// A valid header (an accepted `alg`, maybe a `kid` and an accepted `typ`) with 0–4 more
/// members anywhere.
fn header_doc() -> impl Strategy<Value = Vec<(Key, J)>> {
    (
        (
            named("alg"),
            prop::sample::select(ALG_NAMES).prop_map(J::str),
        ),
        prop::option::of((named("kid"), "[a-z0-9]{1,6}".prop_map(|s| J::str(&s)))),
        prop::option::of((
            named("typ"),
            prop::sample::select(&TYPS[..7]).prop_map(J::str),
        )),
        prop::collection::vec(header_member(), 0..5),
    )
        .prop_flat_map(|(alg, kid, typ, more)| {
            let mut members = vec![alg];
            members.extend(kid);
            members.extend(typ);
            members.extend(more);
            Just(members).prop_shuffle()
        })
}

fn typ_accepted(typ: &str, strict: bool) -> bool {
    let lower = typ.to_ascii_lowercase();
    let media = lower.strip_prefix("application/").unwrap_or(&lower);
    media == "at+jwt" || (!strict && media == "jwt")
}

/// The `alg` and `kid` RFC 7515 and the crate's rules take from a header: `None` when they
/// refuse it.
fn header_oracle(members: &[(Key, J)], strict: bool) -> Option<(&'static str, Option<String>)> {
    for name in HEADER_READ {
        member(members, name).ok()?;
    }
    // Extensions and JWE members are never understood, whatever their value.
    if ["crit", "b64", "enc", "zip"]
        .iter()
        .any(|n| matches!(member(members, n), Ok(Some(_))))
    {
        return None;
    }
    let alg = member(members, "alg").ok()??.as_str()?;
    let alg = ALG_NAMES.iter().copied().find(|a| *a == alg)?;
    let kid = match member(members, "kid").ok()? {
        None => None,
        Some(J::Str(kid, _)) if kid.len() <= 256 => Some(kid.clone()),
        Some(_) => return None,
    };
    match member(members, "typ").ok()? {
        None if strict => return None,
        None => {}
        Some(J::Str(typ, _)) if typ_accepted(typ, strict) => {}
        Some(_) => return None,
    }
    Some((alg, kid))
}

/// Checks an accepted header against `serde_json::Value`'s reading of the same bytes,
/// where it can read them (it refuses nesting past 128 and numbers out of range, which the
/// parser skips in members it ignores).
fn header_agrees_with_value(bytes: &[u8], alg: Algorithm, kid: Option<&str>, strict: bool) {
    assert!(
        std::str::from_utf8(bytes).is_ok(),
        "a header that is not UTF-8 was accepted (RFC 7515 §5.2)"
    );
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let object = value.as_object().expect("an accepted header is an object");
    assert_eq!(
        object.get("alg").and_then(Value::as_str),
        Some(alg.as_str())
    );
    assert_eq!(
        object
            .get("kid")
            .map(|k| k.as_str().expect("kid is a string")),
        kid
    );
    for name in ["crit", "b64", "enc", "zip"] {
        assert!(!object.contains_key(name), "{name} accepted");
    }
    match object.get("typ") {
        None => assert!(!strict),
        Some(typ) => assert!(typ.as_str().is_some_and(|t| typ_accepted(t, strict))),
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// Structured headers: the parser takes exactly what the oracle takes; `jku`, `x5u`,
    /// `jwk`, `x5c` and other members change nothing.
    #[test]
    fn jose_header_agrees_with_the_oracle(members in header_doc(), strict in any::<bool>()) {
        let doc = object(&members);
        let policy = if strict { TypPolicy::Strict } else { TypPolicy::Lenient };
        let got = jose::parse(doc.as_bytes(), policy);
        let expected = header_oracle(&members, strict);
        match (&got, &expected) {
            (Ok(h), Some((alg, kid))) => {
                prop_assert_eq!(h.alg.as_str(), *alg);
                prop_assert_eq!(h.kid.as_deref(), kid.as_deref());
            }
            (Err(e), None) => prop_assert_eq!(e.kind(), ErrorKind::InvalidToken),
            _ => prop_assert!(false, "{doc}: got {got:?}, the oracle says {expected:?}"),
        }
        // Without the members the parser ignores, the answer is the same.
        let stripped: Vec<_> = members
            .iter()
            .filter(|(k, _)| !HEADER_OTHER.contains(&k.name.as_str()))
            .cloned()
            .collect();
        let stripped = object(&stripped);
        let again = jose::parse(stripped.as_bytes(), policy);
        prop_assert_eq!(
            again.map(|h| (h.alg, h.kid.map(Cow::into_owned))).ok(),
            got.map(|h| (h.alg, h.kid.map(Cow::into_owned))).ok()
        );
    }

    /// Mutated bytes: never a panic; an accepted header is UTF-8 and agrees with
    /// `serde_json::Value`.
    #[test]
    fn mutated_jose_headers(members in header_doc(), muts in mutations(), strict in any::<bool>()) {
        let bytes = mutate(object(&members).into_bytes(), &muts);
        let policy = if strict { TypPolicy::Strict } else { TypPolicy::Lenient };
        if let Ok(h) = jose::parse(&bytes, policy) {
            header_agrees_with_value(&bytes, h.alg, h.kid.as_deref(), strict);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Claims (RFC 7519 §4.1, RFC 7662 §2.2, RFC 8693 §4.2 for `scp`).
// ---------------------------------------------------------------------------------------

/// Members the claims parser reads (with `scope`/`scp` or the named scope claim).
const CLAIMS_READ: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "active",
    "token_type",
    "cnf",
    "typ",
];
/// Members whose mere presence marks an ID token (OpenID Connect Core §2, §3.1.3.6).
const ID_TOKEN_MARKERS: &[&str] = &["nonce", "at_hash", "c_hash", "s_hash"];
const CLAIMS_OTHER: &[&str] = &["jti", "client_id", "x-extra", "username"];
/// Payload `typ` values (Keycloak names its token kinds so).
const PAYLOAD_TYPS: &[&str] = &[
    "Bearer", "bearer", "ID", "id", "Refresh", "REFRESH", "Offline", "Logout", "at+jwt", "",
];
/// The scope claim a case may name instead of `scope`.
const ROLES: &str = "roles";

fn scope_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z:]{0,6}( {1,2}[a-z:]{0,6}){0,3}",
        1 => "[a-z \"\\\\\u{7f}\u{e9}\t]{0,10}",
        1 => text(),
    ]
}

fn str_list() -> impl Strategy<Value = J> {
    prop_oneof![
        3 => scope_text().prop_map(|s| J::str(&s)),
        2 => prop::collection::vec(
            (scope_text(), esc()).prop_map(|(s, e)| J::Str(s, e)),
            0..4
        ).prop_map(J::Arr),
        1 => value(),
    ]
}

fn number() -> impl Strategy<Value = J> {
    prop_oneof![
        3 => (0i64..5_000_000_000).prop_map(J::Int),
        1 => leaf(),
        1 => value(),
    ]
}

fn claims_member() -> impl Strategy<Value = (Key, J)> {
    prop_oneof![
        (
            key(&["iss", "sub", "token_type"]),
            prop_oneof![
                3 => (text(), esc()).prop_map(|(s, e)| J::Str(s, e)),
                1 => value(),
            ]
        ),
        (key(&["aud", "scope", "scp", ROLES]), str_list()),
        (key(&["exp", "nbf", "iat"]), number()),
        (
            named("active"),
            prop_oneof![3 => any::<bool>().prop_map(J::Bool), 1 => value()]
        ),
        (named("cnf"), cnf_value().boxed()),
        (
            named("typ"),
            prop_oneof![
                3 => prop::sample::select(PAYLOAD_TYPS).prop_map(J::str),
                1 => value(),
            ]
        ),
        (key(ID_TOKEN_MARKERS), value()),
        (key(CLAIMS_OTHER), value()),
    ]
}

fn claims_doc() -> impl Strategy<Value = Vec<(Key, J)>> {
    prop::collection::vec(claims_member(), 0..8)
}

/// What the parser must extract, as the oracle reads the members.
#[derive(Debug, PartialEq)]
struct Extracted {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Vec<String>>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    active: Option<bool>,
    token_type: Option<String>,
    /// `cnf`: its `jkt` and `x5t#S256`.
    cnf: Option<Cnf>,
    typ: Option<String>,
    scopes: Vec<String>,
    /// Marked as an ID token or a refresh token, not an access token.
    not_access: bool,
}

/// The documented markers of a token that is no access token: `at_hash`, `c_hash` or
/// `s_hash`; a `typ` claim of `ID`, `Refresh` or `Offline`; `nonce` unless `typ` is `Bearer`
/// (all `typ` comparisons ASCII case-insensitive).
fn not_access(typ: Option<&str>, present: impl Fn(&str) -> bool) -> bool {
    let typ = typ.map(str::to_ascii_lowercase);
    let typ = typ.as_deref();
    ["at_hash", "c_hash", "s_hash"].into_iter().any(&present)
        || matches!(typ, Some("id" | "refresh" | "offline"))
        || (present("nonce") && typ != Some("bearer"))
}

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c))
}

/// The scopes of a `scope`-like claim: a string is split on spaces (RFC 6749 §3.3), an
/// array item is one scope; what is not a scope-token is dropped.
fn scopes_of(claim: &J) -> Option<Vec<String>> {
    let items = match claim {
        J::Str(s, _) => s.split(' ').map(str::to_owned).collect(),
        J::Arr(_) => claim.as_str_list()?,
        _ => return None,
    };
    Some(items.into_iter().filter(|s| is_scope_token(s)).collect())
}

type Cnf = (Option<String>, Option<String>);

/// A `cnf` the parser takes (RFC 7800, RFC 9449 §6, RFC 8705 §3): an object with `jkt`
/// and/or `x5t#S256` only, each a non-empty base64url string of at most 128 characters.
fn cnf_oracle(value: &J) -> Option<Cnf> {
    let J::Obj(members) = value else {
        return None;
    };
    let mut cnf: Cnf = (None, None);
    for (key, value) in members {
        let slot = match key.name.as_str() {
            "jkt" => &mut cnf.0,
            "x5t#S256" => &mut cnf.1,
            _ => return None,
        };
        let text = value.as_str()?;
        let base64url = !text.is_empty()
            && text.len() <= 128
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if slot.is_some() || !base64url {
            return None;
        }
        *slot = Some(text.to_owned());
    }
    (cnf.0.is_some() || cnf.1.is_some()).then_some(cnf)
}

/// `cnf` values: well-formed confirmations, near misses, and any JSON value.
fn cnf_value() -> impl Strategy<Value = J> {
    let member = (
        prop::sample::select(&["jkt", "x5t#S256", "jwk", "x5t"][..]),
        prop_oneof![
            4 => "[A-Za-z0-9_-]{1,43}".prop_map(|t| J::str(&t)),
            1 => "[A-Za-z0-9+/=]{1,8}".prop_map(|t| J::str(&t)),
            1 => value(),
        ],
    )
        .prop_map(|(name, value)| {
            let key = Key {
                name: name.to_owned(),
                esc: Esc::Plain,
            };
            (key, value)
        });
    prop_oneof![
        2 => prop::collection::vec(member, 0..3).prop_map(J::Obj),
        1 => value(),
    ]
}

fn claims_oracle(members: &[(Key, J)], scope_claim: Option<&str>) -> Option<Extracted> {
    let scope_names: &[&str] = match scope_claim {
        None => &["scope", "scp"],
        Some(ROLES) => &[ROLES],
        Some(_) => unreachable!("the cases name only `roles`"),
    };
    for name in CLAIMS_READ.iter().chain(scope_names) {
        member(members, name).ok()?;
    }
    let get = |name: &str| member(members, name).ok().flatten();
    let string = |name: &str| match get(name) {
        None => Some(None),
        Some(v) => v.as_str().map(|s| Some(s.to_owned())),
    };
    let date = |name: &str| match get(name) {
        None => Some(None),
        Some(v) => v.as_number().map(Some),
    };
    let list = |name: &str| match get(name) {
        None => Some(None),
        Some(v) => v.as_str_list().map(Some),
    };
    let scopes = {
        // The first scope claim present is the one read: `scope` before `scp`.
        let mut present = scope_names.iter().filter_map(|n| get(n));
        let first = present.next();
        // Every scope claim must still have the right shape.
        for name in scope_names {
            list(name)?;
        }
        match first {
            None => Vec::new(),
            Some(claim) => scopes_of(claim)?,
        }
    };
    Some(Extracted {
        iss: string("iss")?,
        sub: string("sub")?,
        aud: list("aud")?,
        exp: date("exp")?,
        nbf: date("nbf")?,
        iat: date("iat")?,
        active: match get("active") {
            None => None,
            Some(J::Bool(b)) => Some(*b),
            Some(_) => return None,
        },
        token_type: string("token_type")?,
        cnf: match get("cnf") {
            None => None,
            Some(cnf) => Some(cnf_oracle(cnf)?),
        },
        typ: string("typ")?,
        not_access: not_access(string("typ")?.as_deref(), |n| {
            members.iter().any(|(k, _)| k.name == n)
        }),
        scopes,
    })
}

fn extracted(view: &claims::ClaimsView<'_>, scope_claim: &ScopeClaim) -> Extracted {
    Extracted {
        iss: view.iss.as_deref().map(str::to_owned),
        sub: view.sub.as_deref().map(str::to_owned),
        aud: view
            .aud
            .as_ref()
            .map(|a| a.iter().map(str::to_owned).collect()),
        exp: view.exp,
        nbf: view.nbf,
        iat: view.iat,
        active: view.active,
        token_type: view.token_type.as_deref().map(str::to_owned),
        cnf: view.cnf.as_ref().map(|c| {
            (
                c.jwk_thumbprint().map(str::to_owned),
                c.certificate_thumbprint().map(str::to_owned),
            )
        }),
        typ: view.typ.as_deref().map(str::to_owned),
        not_access: view.not_an_access_token(),
        scopes: scope_claim.scopes(view).iter().map(str::to_owned).collect(),
    }
}

fn same_extraction(got: &Extracted, want: &Extracted) -> bool {
    let dates = [
        (got.exp, want.exp),
        (got.nbf, want.nbf),
        (got.iat, want.iat),
    ];
    dates.iter().all(|(a, b)| match (a, b) {
        (Some(a), Some(b)) => same_number(*a, *b),
        (a, b) => a == b,
    }) && got.iss == want.iss
        && got.sub == want.sub
        && got.aud == want.aud
        && got.active == want.active
        && got.token_type == want.token_type
        && got.cnf == want.cnf
        && got.typ == want.typ
        && got.not_access == want.not_access
        && got.scopes == want.scopes
}

/// The oracle read from `serde_json::Value` for mutated documents the parser accepted.
fn claims_agree_with_value(bytes: &[u8], got: &Extracted, scope_claim: Option<&str>) {
    assert!(
        std::str::from_utf8(bytes).is_ok(),
        "claims that are not UTF-8 were accepted (RFC 7519 §7.2)"
    );
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let object = value.as_object().expect("accepted claims are an object");
    let string = |n: &str| {
        object
            .get(n)
            .map(|v| v.as_str().expect("a string").to_owned())
    };
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().expect("a string item").to_owned())
                .collect(),
            other => panic!("{other} accepted as a string list"),
        }
    };
    let date = |n: &str| object.get(n).map(|v| v.as_f64().expect("a number"));
    let scope = match scope_claim {
        None => object.get("scope").or_else(|| object.get("scp")),
        Some(n) => object.get(n),
    };
    let scopes = scope.map_or_else(Vec::new, |s| match s {
        Value::String(s) => s
            .split(' ')
            .filter(|t| is_scope_token(t))
            .map(str::to_owned)
            .collect(),
        items => list(items)
            .into_iter()
            .filter(|t| is_scope_token(t))
            .collect(),
    });
    let want = Extracted {
        iss: string("iss"),
        sub: string("sub"),
        aud: object.get("aud").map(list),
        exp: date("exp"),
        nbf: date("nbf"),
        iat: date("iat"),
        active: object.get("active").map(|v| v.as_bool().expect("a bool")),
        token_type: string("token_type"),
        cnf: object.get("cnf").map(|cnf| {
            let member = |n: &str| cnf.get(n).and_then(Value::as_str).map(str::to_owned);
            (member("jkt"), member("x5t#S256"))
        }),
        typ: string("typ"),
        not_access: not_access(string("typ").as_deref(), |n| object.contains_key(n)),
        scopes,
    };
    assert!(
        same_extraction(got, &want),
        "got {got:?}, serde_json::Value reads {want:?}"
    );
}

fn scope_claim(named: bool) -> ScopeClaim {
    if named {
        ScopeClaim::Named(ROLES.into())
    } else {
        ScopeClaim::Default
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Structured claims: accepted exactly when the oracle accepts, with the same values.
    #[test]
    fn claims_agree_with_the_oracle(members in claims_doc(), named in any::<bool>()) {
        let doc = object(&members);
        let claim = scope_claim(named);
        let got = claims::parse(doc.as_bytes(), &claim).map(|v| extracted(&v, &claim));
        let want = claims_oracle(&members, named.then_some(ROLES));
        match (&got, &want) {
            (Ok(got), Some(want)) => prop_assert!(
                same_extraction(got, want),
                "{doc}: got {got:?}, the oracle says {want:?}"
            ),
            (Err(e), None) => prop_assert_eq!(e.kind(), ErrorKind::InvalidToken),
            _ => prop_assert!(false, "{doc}: got {got:?}, the oracle says {want:?}"),
        }
    }

    /// Mutated bytes: never a panic; accepted claims are UTF-8 and agree with
    /// `serde_json::Value`.
    #[test]
    fn mutated_claims(members in claims_doc(), muts in mutations(), named in any::<bool>()) {
        let bytes = mutate(object(&members).into_bytes(), &muts);
        let claim = scope_claim(named);
        if let Ok(view) = claims::parse(&bytes, &claim) {
            claims_agree_with_value(&bytes, &extracted(&view, &claim), named.then_some(ROLES));
        }
    }
}

/// `RegisteredClaims` as serde's derive reads it (the one-pass reading must agree).
#[derive(serde::Deserialize)]
struct DerivedRegistered {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default, deserialize_with = "derived_aud")]
    aud: Vec<String>,
    #[serde(default, deserialize_with = "derived_date")]
    exp: Option<i64>,
    #[serde(default, deserialize_with = "derived_date")]
    nbf: Option<i64>,
    #[serde(default, deserialize_with = "derived_date")]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(flatten)]
    extra: serde_json::Map<String, Value>,
}

fn derived_aud<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn derived_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let n: f64 = serde::Deserialize::deserialize(d)?;
    Ok(Some(n as i64))
}

fn from_derived(d: DerivedRegistered) -> RegisteredClaims {
    RegisteredClaims {
        iss: d.iss,
        sub: d.sub,
        aud: d.aud,
        exp: d.exp,
        nbf: d.nbf,
        iat: d.iat,
        jti: d.jti,
        client_id: d.client_id,
        extra: d.extra,
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// `RegisteredClaims`' one-pass reading gives what serde's derive gives, errors included.
    #[test]
    fn registered_claims_read_as_the_derive_reads(members in claims_doc()) {
        let doc = object(&members);
        let fast = serde_json::from_str::<RegisteredClaims>(&doc);
        let derived = serde_json::from_str::<DerivedRegistered>(&doc).map(from_derived);
        match (&fast, &derived) {
            (Ok(fast), Ok(derived)) => prop_assert_eq!(fast, derived, "{}", doc),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "{doc}: one pass {fast:?}, derive {derived:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Scope policies over the scopes a token's claims grant (RFC 6749 §3.3, RFC 6750 §3.1).
// ---------------------------------------------------------------------------------------

const SCOPE_WORDS: &[&str] = &["read", "write", "admin", "a:b", "READ"];

/// A scope claim's text or item: mostly words that policies name, joined by spaces now and
/// then (one array item with a space grants nothing), with characters no scope may have.
fn granted_item() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(SCOPE_WORDS).prop_map(str::to_owned),
        2 => prop::collection::vec(prop::sample::select(SCOPE_WORDS), 0..4)
            .prop_map(|w| w.join(" ")),
        1 => prop::sample::select(&["", " ", "read\"", "wr\\ite", "r\u{e9}ad", "read\t"][..])
            .prop_map(str::to_owned),
    ]
}

/// A policy entry: one or more scopes, space-separated, or one that must be refused.
fn policy_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(prop::sample::select(SCOPE_WORDS), 1..3)
            .prop_map(|w| w.join(" ")),
        1 => prop::sample::select(&["", "  ", "re\"ad", "r\u{e9}ad", " read "][..]).prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// A policy built from configuration is refused exactly when an entry names no scope
    /// or a character a scope cannot have; a built one grants exactly what the set of the
    /// token's scopes satisfies, and names its scopes in the 403.
    #[test]
    fn scope_policies_decide_as_sets(
        entries in prop::collection::vec(policy_entry(), 0..4),
        any_of in any::<bool>(),
        as_array in any::<bool>(),
        granted in prop::collection::vec(granted_item(), 0..4),
    ) {
        use crate::scope::ScopePolicy;
        let claim = if as_array {
            J::Arr(granted.iter().map(|g| J::str(g)).collect())
        } else {
            J::str(&granted.join(" "))
        };
        let name = Key { name: "scp".to_owned(), esc: Esc::Plain };
        let doc = object(&[(name, claim.clone())]);
        let view = claims::parse(doc.as_bytes(), &ScopeClaim::Default).expect("scope claims");
        let scopes = ScopeClaim::Default.scopes(&view);
        let want_granted = scopes_of(&claim).expect("a string or an array of strings");
        let got_granted: Vec<_> = scopes.iter().map(str::to_owned).collect();
        prop_assert_eq!(&got_granted, &want_granted);

        let words: Vec<Vec<&str>> = entries
            .iter()
            .map(|e| e.split(' ').filter(|w| !w.is_empty()).collect())
            .collect();
        let valid = !words.is_empty()
            && words.iter().all(|w| !w.is_empty() && w.iter().all(|s| is_scope_token(s)));
        let policy = if any_of {
            ScopePolicy::try_any(entries.clone())
        } else {
            ScopePolicy::try_all(entries.clone())
        };
        prop_assert_eq!(policy.is_ok(), valid, "{:?}", entries);
        let Ok(policy) = policy else { return Ok(()) };
        let required: Vec<&str> = words.into_iter().flatten().collect();
        let has = |s: &&str| want_granted.iter().any(|g| g == s);
        let satisfied = if any_of {
            required.iter().any(has)
        } else {
            required.iter().all(has)
        };
        match policy.check(&scopes) {
            Ok(()) => prop_assert!(satisfied),
            Err(e) => {
                prop_assert!(!satisfied);
                prop_assert_eq!(e.kind(), ErrorKind::InsufficientScope);
                let named = required.join(" ");
                prop_assert_eq!(e.required_scope(), Some(named.as_str()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// JWK Sets (RFC 7517, RFC 7518 §6, RFC 8037).
// ---------------------------------------------------------------------------------------

/// A 2048-bit RSA modulus (the public half of a test key).
const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
/// A P-256 public point (RFC 7517 appendix A.1).
const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
/// An Ed25519 public key (RFC 8037 appendix A.2).
const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
const RSA_ALGS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

#[derive(Clone, Copy, Debug, PartialEq)]
enum KeyType {
    Rsa,
    P256,
    /// A P-384 key whose coordinates are a P-256 point's: the right type, the wrong curve.
    P384,
    Ed25519,
    Oct,
    Other,
}

impl KeyType {
    /// The algorithms RFC 7518 / RFC 8037 allow for the key type.
    fn algorithms(self) -> &'static [&'static str] {
        match self {
            Self::Rsa => RSA_ALGS,
            Self::P256 => &["ES256"],
            Self::P384 => &["ES384"],
            Self::Ed25519 => &["EdDSA"],
            Self::Oct | Self::Other => &[],
        }
    }
}

#[derive(Clone, Debug)]
struct JwkSpec {
    kty: KeyType,
    /// RSA: the modulus is cut to this many bytes, after this many leading zero bytes
    /// (which do not count towards its length).
    rsa_cut: Option<usize>,
    rsa_zeros: usize,
    kid: Option<usize>,
    long_kid: bool,
    use_: Option<J>,
    key_ops: Option<J>,
    alg: Option<J>,
    private: Vec<(Key, J)>,
    extra: Vec<(Key, J)>,
}

impl JwkSpec {
    fn kid(&self, index: usize) -> Option<String> {
        self.kid.map(|_| {
            let kid = format!("k{index}");
            if self.long_kid {
                format!("{kid}{}", "x".repeat(256))
            } else {
                kid
            }
        })
    }

    fn modulus(&self) -> String {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let n = URL_SAFE_NO_PAD.decode(RSA_N).expect("test modulus");
        let cut = self.rsa_cut.map_or(n.len(), |c| c.min(n.len()));
        let mut bytes = vec![0; self.rsa_zeros];
        bytes.extend_from_slice(&n[..cut]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn members(&self, index: usize) -> Vec<(Key, J)> {
        let plain = |name: &str| Key {
            name: name.to_owned(),
            esc: Esc::Plain,
        };
        let s = |v: &str| J::str(v);
        let mut m = match self.kty {
            KeyType::Rsa => vec![
                (plain("kty"), s("RSA")),
                (plain("n"), s(&self.modulus())),
                (plain("e"), s("AQAB")),
            ],
            KeyType::P256 | KeyType::P384 => vec![
                (plain("kty"), s("EC")),
                (
                    plain("crv"),
                    s(if self.kty == KeyType::P256 {
                        "P-256"
                    } else {
                        "P-384"
                    }),
                ),
                (plain("x"), s(EC_X)),
                (plain("y"), s(EC_Y)),
            ],
            KeyType::Ed25519 => vec![
                (plain("kty"), s("OKP")),
                (plain("crv"), s("Ed25519")),
                (plain("x"), s(ED_X)),
            ],
            KeyType::Oct => vec![(plain("kty"), s("oct"))],
            KeyType::Other => vec![(plain("kty"), s("EC")), (plain("crv"), s("P-521"))],
        };
        if let Some(kid) = self.kid(index) {
            m.push((plain("kid"), s(&kid)));
        }
        for (name, v) in [
            ("use", &self.use_),
            ("key_ops", &self.key_ops),
            ("alg", &self.alg),
        ] {
            if let Some(v) = v {
                m.push((plain(name), v.clone()));
            }
        }
        m.extend(self.private.iter().cloned());
        m.extend(self.extra.iter().cloned());
        m
    }

    /// Nothing the rules refuse: no key material beyond the public one, `use` and
    /// `key_ops` allow verification, the modulus is long enough, the kid short enough.
    fn clean(&self) -> bool {
        let rsa_ok = self.kty != KeyType::Rsa || self.rsa_cut.is_none();
        self.private.is_empty()
            && !self.long_kid
            && rsa_ok
            && self.use_.as_ref().is_none_or(|u| u.as_str() == Some("sig"))
            && self.key_ops.as_ref().is_none_or(
                |o| matches!(o.as_str_list(), Some(ops) if ops.iter().any(|o| o == "verify")),
            )
            && self.alg.as_ref().is_none_or(|a| a.as_str().is_some())
            && matches!(self.kty, KeyType::Rsa | KeyType::P256 | KeyType::Ed25519)
    }

    /// The algorithms the key may verify, by RFC 7518 and the allowlist: its type's,
    /// narrowed by its `alg` member.
    fn algorithms(&self, allowed: &[Algorithm]) -> Vec<&'static str> {
        let by_alg = |a: &&str| match &self.alg {
            None => true,
            Some(J::Null) => true,
            Some(J::Str(alg, _)) => alg == *a || (alg == "Ed25519" && *a == "EdDSA"),
            Some(_) => false,
        };
        self.kty
            .algorithms()
            .iter()
            .copied()
            .filter(|a| allowed.iter().any(|x| x.as_str() == *a))
            .filter(by_alg)
            .collect()
    }
}

fn jwk_spec() -> impl Strategy<Value = JwkSpec> {
    let kty = prop_oneof![
        5 => Just(KeyType::Rsa),
        2 => Just(KeyType::P256),
        1 => Just(KeyType::P384),
        2 => Just(KeyType::Ed25519),
        1 => Just(KeyType::Oct),
        1 => Just(KeyType::Other),
    ];
    let use_ = prop_oneof![
        3 => Just(None),
        2 => Just(Some(J::str("sig"))),
        1 => prop::sample::select(&["enc", "SIG", "sig ", ""][..]).prop_map(|u| Some(J::str(u))),
        1 => value().prop_map(Some),
    ];
    let ops = prop::sample::select(&["verify", "sign", "encrypt", "wrapKey", "Verify"][..]);
    let key_ops = prop_oneof![
        3 => Just(None),
        2 => prop::collection::vec(ops, 0..3)
            .prop_map(|o| Some(J::Arr(o.into_iter().map(J::str).collect()))),
        1 => value().prop_map(Some),
    ];
    let alg = prop_oneof![
        3 => Just(None),
        3 => prop::sample::select(ALG_NAMES).prop_map(|a| Some(J::str(a))),
        1 => prop::sample::select(BAD_ALG_NAMES).prop_map(|a| Some(J::str(a))),
        1 => value().prop_map(Some),
    ];
    let private = prop_oneof![
        4 => Just(Vec::new()),
        1 => prop::collection::vec((key(PRIVATE_MEMBERS), leaf()), 1..3),
    ];
    let extra = prop::collection::vec((key(&["x5c", "x5t", "ext", "iat"]), value()), 0..2);
    (
        kty,
        prop_oneof![4 => Just(None), 1 => (1usize..256).prop_map(Some)],
        prop_oneof![4 => Just(0usize), 1 => 1usize..40],
        prop_oneof![6 => Just(Some(0usize)), 1 => Just(None)],
        prop::bool::weighted(0.1),
        use_,
        key_ops,
        alg,
        private,
        extra,
    )
        .prop_map(
            |(kty, rsa_cut, rsa_zeros, kid, long_kid, use_, key_ops, alg, private, extra)| {
                JwkSpec {
                    kty,
                    rsa_cut,
                    rsa_zeros,
                    kid,
                    long_kid,
                    use_,
                    key_ops,
                    alg,
                    private,
                    extra,
                }
            },
        )
}

fn allowlist() -> impl Strategy<Value = Vec<Algorithm>> {
    prop::array::uniform9(prop::bool::weighted(0.8)).prop_map(|pick| {
        Algorithm::ALL
            .into_iter()
            .zip(pick)
            .filter_map(|(a, p)| p.then_some(a))
            .collect()
    })
}

fn jwks_doc(specs: &[JwkSpec]) -> String {
    let mut out = String::from("{\"keys\":[");
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        render_members(&mut out, &spec.members(i));
    }
    out.push_str("]}");
    out
}

/// The documented bound on the keys tried for a token: one with a `kid`, at most
/// [`MAX_KIDLESS_CANDIDATES`] without, each accepting the token's `alg`.
fn check_candidates(set: &keys::KeySet) {
    for alg in Algorithm::ALL {
        let fitting = set.keys.iter().filter(|k| k.algs.contains(alg)).count();
        let kidless: Vec<_> = set.candidates(None, alg).collect();
        assert_eq!(kidless.len(), fitting.min(MAX_KIDLESS_CANDIDATES));
        assert!(kidless.iter().all(|k| k.algs.contains(alg)));
        for key in &set.keys {
            if let Some(kid) = key.kid.as_deref() {
                let by_kid: Vec<_> = set.candidates(Some(kid), alg).collect();
                assert!(by_kid.len() <= 1);
                assert!(
                    by_kid
                        .iter()
                        .all(|k| k.algs.contains(alg) && k.kid.as_deref() == Some(kid))
                );
            }
        }
    }
}

/// Fails with the message when `cond` does not hold.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// A key the parser admitted, checked against the `serde_json::Value` of its JWK.
fn admitted_key_is_safe(
    jwk: &serde_json::Map<String, Value>,
    algs: AlgSet,
    allowed: AlgSet,
) -> Result<(), String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    for m in PRIVATE_MEMBERS {
        ensure!(
            jwk.get(*m).is_none_or(Value::is_null),
            "a key with `{m}` was admitted"
        );
    }
    let str_of = |n: &str| jwk.get(n).and_then(Value::as_str);
    ensure!(
        jwk.get("use").is_none_or(|u| u.is_null() || u == "sig"),
        "a key not for signatures was admitted"
    );
    ensure!(
        jwk.get("key_ops").is_none_or(|o| o.is_null()
            || o.as_array()
                .is_some_and(|ops| ops.iter().any(|o| o == "verify"))),
        "a key whose key_ops exclude verify was admitted"
    );
    ensure!(
        str_of("kid").is_none_or(|k| k.len() <= 256),
        "a key with a long kid was admitted"
    );
    let family: &[&str] = match (str_of("kty"), str_of("crv")) {
        (Some("RSA"), _) => {
            let n = str_of("n")
                .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
                .unwrap_or_default();
            let significant = n.iter().skip_while(|b| **b == 0).count();
            ensure!(
                significant >= 256,
                "a {significant}-byte modulus was admitted"
            );
            RSA_ALGS
        }
        (Some("EC"), Some("P-256")) => &["ES256"],
        (Some("EC"), Some("P-384")) => &["ES384"],
        (Some("OKP"), Some("Ed25519")) => &["EdDSA"],
        other => return Err(format!("a key of type {other:?} was admitted")),
    };
    ensure!(!algs.is_empty(), "a key with no algorithm was admitted");
    for alg in Algorithm::ALL.into_iter().filter(|a| algs.contains(*a)) {
        ensure!(
            family.contains(&alg.as_str()),
            "{alg} on a key of another type"
        );
        ensure!(allowed.contains(alg), "{alg} is not allowed");
        if let Some(a) = jwk.get("alg").filter(|a| !a.is_null()) {
            let a = a.as_str().unwrap_or_default();
            ensure!(
                a == alg.as_str() || (a == "Ed25519" && alg == Algorithm::EdDSA),
                "{alg} on a key for {a}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    /// Structured sets: every admitted key is safe; every clean key is admitted with the
    /// algorithms of its type, its `alg` and the allowlist; candidate lists keep their bound.
    #[test]
    fn jwk_sets_admit_exactly_the_safe_keys(
        specs in prop::collection::vec(jwk_spec(), 0..10),
        allowed in allowlist(),
    ) {
        let doc = jwks_doc(&specs);
        let allow = AlgSet::of(allowed.iter().copied());
        let parsed = keys::parse(doc.as_bytes(), allow);
        let Ok(value) = serde_json::from_str::<Value>(&doc) else {
            // Nesting past 128 or a number out of range, anywhere: the whole document is
            // refused, as serde_json refuses it.
            prop_assert!(parsed.is_err());
            return Ok(());
        };
        let set = parsed.expect("a well-formed JWK Set");
        let jwks = value["keys"].as_array().expect("the test's keys");
        for key in &set.keys {
            // The JWKs this key may come from: the one with its kid, or the kid-less ones.
            let from = (0..specs.len()).filter(|i| specs[*i].kid(*i).as_deref() == key.kid.as_deref());
            let mut why = Vec::new();
            let fits = from.into_iter().any(|i| {
                let jwk = jwks[i].as_object().expect("a JWK object");
                let want = AlgSet::of(
                    Algorithm::ALL
                        .into_iter()
                        .filter(|a| specs[i].algorithms(&allowed).contains(&a.as_str())),
                );
                match admitted_key_is_safe(jwk, key.algs, allow) {
                    Ok(()) if key.algs == want => true,
                    Ok(()) => {
                        why.push(format!("key {i}: {:?}, expected {want:?}", key.algs));
                        false
                    }
                    Err(e) => {
                        why.push(format!("key {i}: {e}"));
                        false
                    }
                }
            });
            prop_assert!(fits, "admitted key {:?}: {why:?} in {doc}", key.kid);
        }
        for (index, spec) in specs.iter().enumerate() {
            let algorithms = spec.algorithms(&allowed);
            let known_alg = spec.alg.as_ref().is_none_or(|a| {
                a.as_str().is_some_and(|a| ALG_NAMES.contains(&a) || a == "Ed25519")
            });
            if spec.clean() && known_alg && !algorithms.is_empty() {
                let kid = spec.kid(index);
                let admitted = set.keys.iter().filter(|k| k.kid.as_deref() == kid.as_deref()).count();
                prop_assert!(admitted >= 1, "clean key {index} was skipped: {doc}");
            }
        }
        check_candidates(&set);
    }

    /// Mutated sets: never a panic; what is admitted is safe and bounded.
    #[test]
    fn mutated_jwk_sets(
        specs in prop::collection::vec(jwk_spec(), 1..6),
        muts in mutations(),
        allowed in allowlist(),
    ) {
        let bytes = mutate(jwks_doc(&specs).into_bytes(), &muts);
        let allow = AlgSet::of(allowed.iter().copied());
        let Ok(set) = keys::parse(&bytes, allow) else { return Ok(()) };
        check_candidates(&set);
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else { return Ok(()) };
        let listed = value.as_object().and_then(|o| o.get("keys")).and_then(Value::as_array);
        prop_assert!(listed.is_some(), "not an object with a keys array: {}", value);
        let jwks: Vec<_> = listed
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .collect();
        for key in &set.keys {
            // A key is the JWK with its kid (the first whose kid matches, as a mutation may
            // repeat a kid); a kid-less key is any kid-less JWK.
            let candidates: Vec<_> = jwks
                .iter()
                .filter(|j| j.get("kid").and_then(Value::as_str) == key.kid.as_deref())
                .collect();
            prop_assert!(!candidates.is_empty());
            let safe = candidates
                .iter()
                .any(|j| admitted_key_is_safe(j, key.algs, allow).is_ok());
            prop_assert!(safe, "admitted key {:?} matches no safe JWK in {}", key.kid, String::from_utf8_lossy(&bytes));
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// However many keys a set lists, only the first [`keys::MAX_KEYS`] usable ones are
    /// kept, in the set's order; refused keys do not count.
    #[test]
    fn a_jwk_set_keeps_at_most_max_keys(usable in prop::collection::vec(any::<bool>(), 0..260)) {
        let mut doc = String::from("{\"keys\":[");
        for (i, ok) in usable.iter().enumerate() {
            if i > 0 {
                doc.push(',');
            }
            if *ok {
                let _ = write!(doc, r#"{{"kty":"RSA","kid":"k{i}","n":"{RSA_N}","e":"AQAB"}}"#);
            } else {
                let _ = write!(doc, r#"{{"kty":"oct","kid":"k{i}","k":"c2VjcmV0"}}"#);
            }
        }
        doc.push_str("]}");
        let set = keys::parse(doc.as_bytes(), AlgSet::of(Algorithm::ALL)).expect("a JWK Set");
        let kept: Vec<_> = set.keys.iter().map(|k| k.kid.as_deref().unwrap_or_default().to_owned()).collect();
        let want: Vec<_> = usable
            .iter()
            .enumerate()
            .filter(|(_, ok)| **ok)
            .map(|(i, _)| format!("k{i}"))
            .take(keys::MAX_KEYS)
            .collect();
        prop_assert_eq!(kept, want);
        check_candidates(&set);
    }
}

// ---------------------------------------------------------------------------------------
// Challenge rendering (RFC 6750 §3, RFC 7235 §2.1 and §4.1).
// ---------------------------------------------------------------------------------------

/// The documented filter: characters that cannot stand in a quoted-string of a header
/// value (anything but printable ASCII) are dropped.
fn printable(s: &str) -> String {
    s.chars().filter(|c| (' '..='~').contains(c)).collect()
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Parses one RFC 7235 challenge: `auth-scheme [ 1*SP auth-param *( OWS "," OWS
/// auth-param ) ]`, `auth-param = token BWS "=" BWS ( token / quoted-string )`.
fn parse_challenge(value: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut chars = value.chars().peekable();
    let token = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        let mut t = String::new();
        while let Some(c) = chars.next_if(|c| is_tchar(*c)) {
            t.push(c);
        }
        t
    };
    let skip_ows = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
    };
    let scheme = token(&mut chars);
    if scheme.is_empty() {
        return Err("no auth-scheme".into());
    }
    let mut params = Vec::new();
    if chars.peek().is_none() {
        return Ok((scheme, params));
    }
    if chars.next() != Some(' ') {
        return Err("no space after the scheme".into());
    }
    skip_ows(&mut chars);
    loop {
        let name = token(&mut chars);
        if name.is_empty() {
            return Err(format!("no parameter name after {params:?}"));
        }
        skip_ows(&mut chars);
        if chars.next() != Some('=') {
            return Err(format!("no `=` after {name}"));
        }
        skip_ows(&mut chars);
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut v = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted-string in {name}")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) if c == '\t' || (' '..='~').contains(&c) => v.push(c),
                        other => return Err(format!("bad quoted-pair {other:?} in {name}")),
                    },
                    Some(c)
                        if c == '\t'
                            || c == ' '
                            || c == '!'
                            || ('#'..='[').contains(&c)
                            || (']'..='~').contains(&c) =>
                    {
                        v.push(c)
                    }
                    Some(c) => return Err(format!("{c:?} in the quoted-string of {name}")),
                }
            }
            v
        } else {
            token(&mut chars)
        };
        params.push((name, value));
        skip_ows(&mut chars);
        match chars.next() {
            None => return Ok((scheme, params)),
            Some(',') => skip_ows(&mut chars),
            Some(c) => return Err(format!("{c:?} after a parameter")),
        }
    }
}

fn error_kind() -> impl Strategy<Value = ErrorKind> {
    prop::sample::select(
        &[
            ErrorKind::MissingToken,
            ErrorKind::InvalidRequest,
            ErrorKind::InvalidToken,
            ErrorKind::InsufficientScope,
            ErrorKind::Unavailable,
        ][..],
    )
}

/// Text for realms, descriptions and scopes: quotes, backslashes, CR, LF, NUL, DEL,
/// commas, equals signs and non-ASCII among printable ASCII.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{0,16}",
        2 => "([a-z ,=]|\"|\\\\|\r|\n|\r\n|\u{0}|\u{7f}|\t|\u{e9}|\u{2028}){0,12}",
        1 => "\\PC{0,8}",
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// The challenge is printable ASCII (no CR, LF or other control), parses back as one
    /// RFC 7235 challenge, and carries the realm, description and scope after the
    /// documented filtering.
    #[test]
    fn challenges_parse_back(
        realm in header_text(),
        description in header_text(),
        scope in header_text(),
        kind in error_kind(),
    ) {
        let error = if kind == ErrorKind::InsufficientScope {
            AuthError::insufficient_scope(scope.as_str().into())
        } else {
            // Descriptions are `&'static str`: the few bytes of each case are leaked.
            AuthError::new(kind, Box::leak(description.clone().into_boxed_str()))
        };
        let value = HttpRejection::new().realm(&realm).challenge(&error);
        let bytes = value.as_bytes();
        prop_assert!(bytes.iter().all(|b| (0x20..0x7f).contains(b)), "{value:?}");
        let text = value.to_str().expect("printable ASCII");
        let (scheme, params) = parse_challenge(text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(scheme, "Bearer");
        let mut names: Vec<_> = params.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        prop_assert_eq!(names.len(), count, "a repeated parameter in {}", text);
        let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        prop_assert_eq!(param("realm"), Some(printable(&realm)));
        prop_assert_eq!(param("error"), kind.error_code().map(str::to_owned));
        // `invalid_token` tells every caller the same, whatever the reason (documented on
        // `AuthError::public_description`); the other kinds tell their description.
        let told = if kind == ErrorKind::InvalidToken {
            AuthError::new(kind, "another reason").public_description().to_owned()
        } else {
            error.description().to_owned()
        };
        let want_description = kind.error_code().map(|_| printable(&told));
        prop_assert_eq!(param("error_description"), want_description);
        let want_scope = (kind == ErrorKind::InsufficientScope).then(|| printable(&scope));
        prop_assert_eq!(param("scope"), want_scope);
    }
}

// ---------------------------------------------------------------------------------------
// Whole tokens: a validly signed token with one byte changed, through the layer.
// ---------------------------------------------------------------------------------------

fn doc_layer_status(authorization: &[u8]) -> Option<http::StatusCode> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::{Layer as _, ServiceExt as _};

    let header = HeaderValue::from_bytes(authorization).ok()?;
    // Built once: building the HTTP client dominates a case otherwise.
    static JWT: OnceLock<crate::Jwt> = OnceLock::new();
    let jwt = JWT
        .get_or_init(|| {
            crate::Jwt::builder()
                .issuer_with_jwks("https://issuer.example.com", crate::__doc_support::JWKS)
                .audience("https://api.example.com")
                .build()
                .expect("the documentation's authenticator")
        })
        .clone();
    let called = Arc::new(AtomicBool::new(false));
    let inner = {
        let called = Arc::clone(&called);
        tower::service_fn(move |_req: http::Request<()>| {
            called.store(true, Ordering::SeqCst);
            async { Ok::<_, std::convert::Infallible>(http::Response::new(())) }
        })
    };
    let service = crate::BearerAuthLayer::new(jwt).layer(inner);
    let mut request = http::Request::new(());
    request.headers_mut().insert(header::AUTHORIZATION, header);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let response = runtime
        .block_on(service.oneshot(request))
        .expect("the layer never fails");
    assert_eq!(
        called.load(Ordering::SeqCst),
        response.status() == http::StatusCode::OK,
        "the inner service runs exactly when the request is let through"
    );
    Some(response.status())
}

#[test]
fn the_documentation_token_is_accepted() {
    let value = format!("Bearer {}", crate::__doc_support::TOKEN);
    assert_eq!(
        doc_layer_status(value.as_bytes()),
        Some(http::StatusCode::OK)
    );
}

proptest! {
    #![proptest_config(config(256))]

    /// One byte changed anywhere in a validly signed token: never let through.
    #[test]
    fn a_token_with_one_byte_changed_is_refused(
        at in any::<Index>(),
        byte in prop_oneof![
            any::<u8>(),
            prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=".to_vec()),
        ],
    ) {
        let mut token = crate::__doc_support::TOKEN.as_bytes().to_vec();
        let at = at.index(token.len());
        prop_assume!(token[at] != byte, "not a change");
        token[at] = byte;
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(&token);
        // `None`: no header can carry the bytes, so no request does.
        let status = doc_layer_status(&value);
        prop_assert_ne!(status, Some(http::StatusCode::OK), "byte {} changed to {:?}", at, char::from(byte));
    }
}

/// How a forged token is signed.
#[derive(Clone, Copy, Debug)]
enum Signature {
    /// The original token's signature, over other bytes now.
    Original,
    /// None at all (`alg: none` style).
    Empty,
    /// HMAC-SHA256 keyed with the issuer's public key material (algorithm confusion):
    /// the JWK Set text, or the modulus as written in it.
    HmacWithJwks,
    HmacWithModulus,
}

/// Re-encodes `value` as a JWS part, with base64url padding now and then.
fn encode_part(value: &Value, pad: bool) -> String {
    use base64::{
        Engine,
        engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD},
    };
    let json = serde_json::to_vec(value).expect("a JSON value serializes");
    if pad {
        URL_SAFE.encode(json)
    } else {
        URL_SAFE_NO_PAD.encode(json)
    }
}

fn decode_part(part: &str) -> Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .expect("the documentation token");
    serde_json::from_slice(&bytes).expect("the documentation token")
}

/// Sets `name` to `value` in `object`, when serde_json can hold the value.
fn set_member(object: &mut Value, name: &str, value: &J) {
    let mut text = String::new();
    value.render(&mut text);
    if let (Some(map), Ok(v)) = (object.as_object_mut(), serde_json::from_str::<Value>(&text)) {
        map.insert(name.to_owned(), v);
    }
}

fn header_change() -> impl Strategy<Value = (Key, J)> {
    prop_oneof![
        3 => (named("alg"), prop_oneof![
            prop::sample::select(ALG_NAMES).prop_map(J::str),
            prop::sample::select(BAD_ALG_NAMES).prop_map(J::str),
        ]),
        1 => (named("kid"), prop_oneof![Just(J::str("doc")), Just(J::str("other")), Just(J::Null)]),
        1 => (named("typ"), prop::sample::select(TYPS).prop_map(J::str)),
        1 => (key(HEADER_OTHER), value()),
        1 => (key(&["crit", "b64", "enc", "zip"]), leaf()),
    ]
}

fn payload_change() -> impl Strategy<Value = (Key, J)> {
    prop_oneof![
        2 => (named("sub"), prop::sample::select(&["alice", "admin", "bob"][..]).prop_map(J::str)),
        2 => (named("scope"), prop::sample::select(&["read", "read admin", "admin"][..]).prop_map(J::str)),
        1 => (named("exp"), prop_oneof![Just(J::Int(4_102_444_800)), Just(J::Int(4_102_444_801)), leaf()]),
        1 => (key(&["aud", "iss"]), prop_oneof![
            Just(J::str("https://api.example.com")),
            Just(J::str("https://issuer.example.com")),
            Just(J::str("https://evil.example.com")),
        ]),
        1 => (key(CLAIMS_OTHER), value()),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    /// The token's header and claims changed and re-encoded (the same values included),
    /// signed with the old signature, none, or an HMAC keyed with the issuer's public key:
    /// never let through.
    #[test]
    fn re_encoded_and_forged_tokens_are_refused(
        header_changes in prop::collection::vec(header_change(), 0..3),
        payload_changes in prop::collection::vec(payload_change(), 0..3),
        pad in any::<bool>(),
        signature in prop_oneof![
            Just(Signature::Original),
            Just(Signature::Empty),
            Just(Signature::HmacWithJwks),
            Just(Signature::HmacWithModulus),
        ],
    ) {
        let original = crate::__doc_support::TOKEN;
        let mut parts = original.split('.');
        let (Some(h64), Some(p64), Some(s64)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("the documentation token has three parts");
        };
        let mut header = decode_part(h64);
        let mut payload = decode_part(p64);
        for (k, v) in &header_changes {
            set_member(&mut header, &k.name, v);
        }
        for (k, v) in &payload_changes {
            set_member(&mut payload, &k.name, v);
        }
        let message = format!("{}.{}", encode_part(&header, pad), encode_part(&payload, pad));
        let hmac = |secret: &[u8]| {
            crate::__doc_support::install_crypto_provider();
            jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &jsonwebtoken::EncodingKey::from_secret(secret),
                jsonwebtoken::Algorithm::HS256,
            )
            .expect("HMAC signs anything")
        };
        let signature = match signature {
            Signature::Original => s64.to_owned(),
            Signature::Empty => String::new(),
            Signature::HmacWithJwks => hmac(crate::__doc_support::JWKS.as_bytes()),
            Signature::HmacWithModulus => {
                let jwks: Value = serde_json::from_str(crate::__doc_support::JWKS).expect("JWKS");
                hmac(jwks["keys"][0]["n"].as_str().expect("n").as_bytes())
            }
        };
        let token = format!("{message}.{signature}");
        prop_assume!(token != original, "the original token");
        let status = doc_layer_status(format!("Bearer {token}").as_bytes());
        prop_assert_ne!(status, Some(http::StatusCode::OK), "{}", token);
    }
}

// ---------------------------------------------------------------------------------------
// Introspection answers (RFC 7662 §2.2), through the public `Introspection` authenticator
// against an endpoint on 127.0.0.1 that answers what each case chooses. (The decision
// rules are not yet a function of their own to call directly.)
// ---------------------------------------------------------------------------------------

#[cfg(feature = "introspection")]
mod introspection {
    use std::{
        sync::{Mutex, PoisonError},
        time::{Duration, SystemTime, UNIX_EPOCH},
    };

    use super::*;

    const ISSUER: &str = "https://login.example.com";
    const AUDIENCE: &str = "https://api.example.com";

    /// A runtime serving the introspection endpoint, and the answer it gives.
    struct Endpoint {
        runtime: tokio::runtime::Runtime,
        url: String,
        answer: Arc<Mutex<Vec<u8>>>,
    }

    fn endpoint() -> &'static Endpoint {
        static ENDPOINT: OnceLock<Endpoint> = OnceLock::new();
        ENDPOINT.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime");
            let answer = Arc::new(Mutex::new(Vec::new()));
            let served = Arc::clone(&answer);
            let app = axum::Router::new().route(
                "/introspect",
                axum::routing::post(move || {
                    let body = served
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    async move { ([(header::CONTENT_TYPE, "application/json")], body) }
                }),
            );
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("a loopback port");
            let addr = listener.local_addr().expect("its address");
            runtime.spawn(async move { axum::serve(listener, app).await });
            Endpoint {
                runtime,
                url: format!("http://{addr}/introspect"),
                answer,
            }
        })
    }

    fn now() -> i64 {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        i64::try_from(secs).expect("in range")
    }

    /// When a time claim lies, relative to now: just past (inside the 30 s leeway), long
    /// past or ahead; far enough from the leeway's edges that no case straddles one.
    #[derive(Clone, Copy, Debug)]
    enum When {
        Past,
        Soon,
        Future,
    }

    impl When {
        fn at(self, now: i64) -> i64 {
            match self {
                Self::Past => now - 3_600,
                Self::Soon => now - 5,
                Self::Future => now + 3_600,
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Member {
        Plain(&'static str, J),
        Time(&'static str, When),
    }

    fn answer_member() -> impl Strategy<Value = Member> {
        let s = |v: &'static [&'static str]| prop::sample::select(v).prop_map(J::str);
        prop_oneof![
            3 => prop_oneof![
                4 => Just(J::Bool(true)),
                1 => Just(J::Bool(false)),
                1 => Just(J::str("true")),
                1 => Just(J::Int(1)),
                1 => Just(J::Null),
            ].prop_map(|v| Member::Plain("active", v)),
            2 => prop_oneof![
                3 => Just(J::str(ISSUER)),
                1 => s(&["https://evil.example.com", "https://login.example.com/", ""]),
                1 => leaf(),
            ].prop_map(|v| Member::Plain("iss", v)),
            2 => prop_oneof![
                3 => Just(J::str(AUDIENCE)),
                2 => Just(J::Arr(vec![J::str("other"), J::str(AUDIENCE)])),
                1 => s(&["other", "https://API.example.com", ""]),
                1 => Just(J::Arr(Vec::new())),
                1 => leaf(),
            ].prop_map(|v| Member::Plain("aud", v)),
            2 => prop_oneof![
                s(&["Bearer", "bearer", "access_token", "refresh_token", "N_A", "DPoP", "mac"]),
                leaf(),
            ].prop_map(|v| Member::Plain("token_type", v)),
            1 => cnf_value().prop_map(|v| Member::Plain("cnf", v)),
            2 => str_list().prop_map(|v| Member::Plain("scope", v)),
            1 => prop_oneof![s(&["alice", "bob"]), leaf()].prop_map(|v| Member::Plain("sub", v)),
            2 => (
                prop::sample::select(&["exp", "nbf", "iat"][..]),
                prop_oneof![Just(When::Past), Just(When::Soon), Just(When::Future)],
            ).prop_map(|(n, w)| Member::Time(n, w)),
            1 => (
                prop::sample::select(&["exp", "nbf", "iat"][..]),
                leaf(),
            ).prop_map(|(n, v)| Member::Plain(n, v)),
            1 => (key(&["client_id", "username", "jti"]), value())
                .prop_map(|(k, v)| Member::Plain(if k.name == "jti" { "jti" } else { "client_id" }, v)),
        ]
    }

    /// A valid active answer with more members anywhere (repeats included).
    fn answer() -> impl Strategy<Value = Vec<Member>> {
        prop::collection::vec(answer_member(), 0..6).prop_flat_map(|more| {
            let mut members = vec![
                Member::Plain("active", J::Bool(true)),
                Member::Plain("iss", J::str(ISSUER)),
                Member::Plain("aud", J::str(AUDIENCE)),
                Member::Plain("sub", J::str("alice")),
                Member::Plain("scope", J::str("read write")),
                Member::Time("exp", When::Future),
            ];
            // A later member of the same name replaces the base one, half the time;
            // otherwise both stay (a repeated member).
            members.extend(more);
            (Just(members), prop::collection::vec(any::<bool>(), 12)).prop_map(|(mut m, drop)| {
                let names: Vec<_> = m.iter().skip(6).map(name).collect();
                for (i, d) in drop.iter().enumerate().take(6) {
                    if *d && names.contains(&name(&m[i])) {
                        m[i] = Member::Plain("x-dropped", J::Null);
                    }
                }
                m
            })
        })
    }

    fn name(m: &Member) -> &'static str {
        match m {
            Member::Plain(n, _) | Member::Time(n, _) => n,
        }
    }

    fn members(answer: &[Member], now: i64) -> Vec<(Key, J)> {
        answer
            .iter()
            .map(|m| {
                let (name, value) = match m {
                    Member::Plain(n, v) => (*n, v.clone()),
                    Member::Time(n, w) => (*n, J::Int(w.at(now))),
                };
                let key = Key {
                    name: name.to_owned(),
                    esc: Esc::Plain,
                };
                (key, value)
            })
            .collect()
    }

    /// Whether RFC 7662 and the crate's documented rules let the answer through.
    fn accepts(members: &[(Key, J)], now: i64) -> Option<Extracted> {
        let view = claims_oracle(members, None)?;
        #[allow(clippy::cast_precision_loss)]
        let now = now as f64;
        let leeway = 30.0;
        let ok = view.active == Some(true)
            // A `DPoP` token must name its key; any `cnf` travels with the principal and
            // the layer checks it against the request.
            && view.token_type.as_deref().is_none_or(|t| {
                t.eq_ignore_ascii_case("bearer")
                    || t.eq_ignore_ascii_case("access_token")
                    || t.eq_ignore_ascii_case("urn:ietf:params:oauth:token-type:access_token")
                    || (t.eq_ignore_ascii_case("dpop")
                        && view.cnf.as_ref().is_some_and(|c| c.0.is_some()))
            })
            && view.iss.as_deref().is_none_or(|i| i == ISSUER)
            && view
                .aud
                .as_ref()
                .is_some_and(|a| a.iter().any(|a| a == AUDIENCE))
            && view.exp.is_none_or(|exp| exp + leeway >= now)
            && view.nbf.is_none_or(|nbf| nbf <= now + leeway)
            && view.iat.is_none_or(|iat| iat <= now + leeway);
        ok.then_some(view)
    }

    proptest! {
        #![proptest_config(config(128))]

        /// An answer is let through exactly when the rules let it through, with the
        /// subject and scopes the oracle reads; a refused answer is `invalid_token`.
        #[test]
        fn introspection_answers_follow_the_rules(answer in answer()) {
            use crate::authenticate::{Authenticate as _, Authentication};
            let endpoint = endpoint();
            let now = now();
            let members = members(&answer, now);
            let body = object(&members);
            *endpoint.answer.lock().unwrap_or_else(PoisonError::into_inner) = body.clone().into_bytes();
            // One authenticator for every case (building its HTTP client dominates a case
            // otherwise); a new token per case misses its cache.
            static INTROSPECTION: OnceLock<crate::Introspection<serde::de::IgnoredAny>> =
                OnceLock::new();
            static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let introspection = INTROSPECTION.get_or_init(|| {
                crate::Introspection::builder()
                    .issuer(ISSUER)
                    .endpoint(&endpoint.url)
                    .client_credentials("api", "secret")
                    .audience(AUDIENCE)
                    .http_timeout(Duration::from_secs(5))
                    // The rules alone: the application's claims type accepts any object.
                    .claims::<serde::de::IgnoredAny>()
                    .build()
                    .expect("a valid configuration")
            });
            let token = format!(
                "opaque-{}",
                CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let outcome = match introspection.authenticate(&token) {
                Authentication::Ready(outcome) => outcome,
                Authentication::Pending(pending) => endpoint.runtime.block_on(pending),
            };
            let want = accepts(&members, now);
            match (&outcome, &want) {
                (Ok(principal), Some(want)) => {
                    prop_assert_eq!(principal.subject(), want.sub.as_deref());
                    let scopes: Vec<_> = principal.scopes().iter().map(str::to_owned).collect();
                    prop_assert_eq!(&scopes, &want.scopes);
                }
                (Err(e), None) => prop_assert_eq!(e.kind(), ErrorKind::InvalidToken, "{}", body),
                _ => prop_assert!(false, "{body}: got {outcome:?}, the rules say {want:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// gRPC per-method scopes: the request path picks the policy.
// ---------------------------------------------------------------------------------------

#[cfg(feature = "tonic")]
mod grpc_paths {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tower::{Layer as _, ServiceExt as _};

    use super::*;
    use crate::{grpc::MethodScopesLayer, principal::Scopes, scope::ScopePolicy};

    const SERVICE: &str = "pkg.Orders";
    const DELETE: &str = "/pkg.Orders/Delete";

    fn path() -> impl Strategy<Value = String> {
        let part = prop::sample::select(
            &[
                "/",
                "pkg.Orders",
                "pkg.Admin",
                "Get",
                "Delete",
                "/pkg.Orders/Delete",
                "pkg.Orders/Get",
                "//",
                "%2F",
                ".",
                "..",
                "PKG.orders",
                "x",
            ][..],
        );
        prop::collection::vec(part, 0..6).prop_map(|parts| format!("/{}", parts.concat()))
    }

    /// The documented choice: the exact method entry, else the entry of the service of a
    /// well-formed `/service/method` path, else (when allowed) any well-formed path.
    fn let_through(path: &str, granted: Option<&[&str]>, allow_unmapped: bool) -> bool {
        let Some(granted) = granted else {
            return false;
        };
        let well_formed = path.strip_prefix('/').and_then(|rest| {
            let (service, method) = rest.split_once('/')?;
            (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(service)
        });
        if path == DELETE {
            granted.contains(&"admin")
        } else if well_formed == Some(SERVICE) {
            granted.contains(&"read")
        } else {
            allow_unmapped && well_formed.is_some()
        }
    }

    proptest! {
        #![proptest_config(config(256))]

        /// No path reaches a method its policy does not grant: odd slashes, other cases and
        /// encodings never fall back to a weaker entry or count as an unmapped method.
        #[test]
        fn method_paths_pick_their_policy(
            path in path(),
            granted in prop::option::of(prop::sample::subsequence(vec!["read", "admin", "write"], 0..=3)),
            allow_unmapped in any::<bool>(),
        ) {
            let uri = Uri::builder().path_and_query(path.as_str()).build();
            prop_assume!(uri.is_ok(), "not a request path");
            let Ok(uri) = uri else { return Ok(()) };
            let called = Arc::new(AtomicBool::new(false));
            let inner = {
                let called = Arc::clone(&called);
                tower::service_fn(move |_req: http::Request<()>| {
                    called.store(true, Ordering::SeqCst);
                    async { Ok::<_, std::convert::Infallible>(http::Response::new(())) }
                })
            };
            let service = MethodScopesLayer::new()
                .service(SERVICE, ScopePolicy::all(["read"]))
                .method(DELETE, ScopePolicy::all(["admin"]))
                .allow_unmapped(allow_unmapped)
                .layer(inner);
            let mut request = http::Request::new(());
            *request.uri_mut() = uri;
            if let Some(granted) = &granted {
                request.extensions_mut().insert(granted.iter().copied().collect::<Scopes>());
            }
            let want = let_through(request.uri().path(), granted.as_deref(), allow_unmapped);
            let seen = request.uri().path().to_owned();
            let response = futures_util::FutureExt::now_or_never(service.oneshot(request))
                .expect("decided without waiting")
                .expect("infallible");
            prop_assert_eq!(called.load(Ordering::SeqCst), want, "{} {:?}", seen, granted);
            prop_assert_eq!(response.headers().contains_key("grpc-status"), !want);
        }
    }
}

/// Typed claims in the shapes users write: borrowed-or-owned strings, integers of a width,
/// an enum read from a string, optional members and the rest flattened.
#[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
struct UserClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    typ: Option<UserTyp>,
    #[serde(default)]
    aud: Option<Value>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

#[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
enum UserTyp {
    Bearer,
    #[serde(rename = "at+jwt")]
    AccessToken,
}

/// The one pass against each reading on its own: the same view (or the same refusal), the
/// same typed claims (or a shape error), the same authorities (or the same error). Returns
/// whether every reading succeeded and the one pass gave the answer.
fn one_pass_agrees<C>(
    bytes: &[u8],
    claim: &ScopeClaim,
    authorities: &AuthorityClaims,
) -> (bool, bool)
where
    C: serde::de::DeserializeOwned + serde::Serialize,
{
    let got = claims::read::<C>(bytes, claim, authorities);
    let view = claims::parse(bytes, claim);
    match (&got, &view) {
        (Ok(got), Ok(view)) => {
            assert_eq!(format!("{:?}", got.view), format!("{view:?}"));
            let alone = std::str::from_utf8(bytes)
                .ok()
                .and_then(|json| serde_json::from_str::<C>(json).ok())
                .map(|c| serde_json::to_value(c).expect("serializes"));
            let one = got
                .claims
                .as_ref()
                .ok()
                .map(|c| serde_json::to_value(c).expect("serializes"));
            assert_eq!(one, alone, "typed claims");
            let alone = authorities
                .extract(bytes)
                .map(|a| a.iter().map(str::to_owned).collect::<Vec<_>>());
            let one = got
                .authorities
                .as_ref()
                .map(|a| a.iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(
                one.as_ref().map_err(|e| e.description()),
                alone.as_ref().map_err(|e| e.description()),
                "authorities"
            );
            (got.claims.is_ok() && got.authorities.is_ok(), got.one_pass)
        }
        (Err(_), Err(_)) => (false, false),
        _ => panic!(
            "one pass {:?}, the view alone {:?}",
            got.is_ok(),
            view.is_ok()
        ),
    }
}

fn authority_claims() -> AuthorityClaims {
    AuthorityClaims::new(&[
        AuthoritySource::path(ROLES).prefix("role:"),
        AuthoritySource::path("realm_access.roles"),
        AuthoritySource::path("scope").prefix("scope:"),
    ])
    .expect("sources")
}

proptest! {
    #![proptest_config(config(512))]

    /// Claims read in one pass agree with each reading on its own, for typed claims read as
    /// a map (`RegisteredClaims`, `Value`, a derived struct) and, on mutated bytes, in
    /// every refusal; and a document every reading accepts is read in the one pass unless a
    /// value nests deep enough to need the separate readings.
    #[test]
    fn one_pass_agrees_with_separate_passes(
        mut members in claims_doc(),
        more in prop::collection::vec(
            (key(&["tid", "acr", "auth_time", "realm_access", "nonce"]), value()),
            0..3,
        ),
        muts in mutations(),
        named in any::<bool>(),
        with_authorities in any::<bool>(),
    ) {
        members.extend(more);
        let claim = scope_claim(named);
        let authorities = if with_authorities { authority_claims() } else { AuthorityClaims::default() };
        let doc = object(&members);
        for bytes in [doc.clone().into_bytes(), mutate(doc.into_bytes(), &muts)] {
            // Only a value nested about as deep as the raw-member bound may send an accepted
            // document to the separate readings.
            let deep = bytes.iter().filter(|b| matches!(b, b'[' | b'{')).count() > 90;
            for (ok, one_pass) in [
                one_pass_agrees::<RegisteredClaims>(&bytes, &claim, &authorities),
                one_pass_agrees::<Value>(&bytes, &claim, &authorities),
            ] {
                prop_assert!(!ok || one_pass || deep, "read apart: {}", String::from_utf8_lossy(&bytes));
            }
            one_pass_agrees::<UserClaims>(&bytes, &claim, &authorities);
        }
    }
}
