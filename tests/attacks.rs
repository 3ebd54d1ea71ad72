//! Hostile tokens and requests, table-driven: each case names the status (and the RFC 6750
//! `error` code) it must get. Good tokens for every algorithm sit in the same table, so it
//! fails both ways. No response may echo the token or a claim value.

mod support;

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    http::{HeaderName, HeaderValue, Request, StatusCode, header},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use jsonwebtoken::{Algorithm as JwtAlg, EncodingKey};
use portcullis::{Algorithm, BearerAuthLayer, ErrorKind, Jwt};
use serde_json::{Value, json};
use support::issuer::{
    AUDIENCE, ISSUER, IssuerServer, Logs, Raw, TestKey, b64, default_claims, header_for, jwks,
    mint, mint_with_header, now, routes, rsa_public_key, send,
};

/// A value placed in the claims of every token: it must never come back in a response.
const MARKER: &str = "marker-7f3a9c21";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    /// All test keys, default settings.
    Default,
    /// `.algorithms([RS256])`.
    Rs256Only,
    /// `.strict_rfc9068(true)`.
    Strict,
    /// Default settings, `max_token_len(256 KiB)`.
    LargeTokens,
}

struct Case {
    name: String,
    which: Which,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The token, for the leak check.
    token: String,
    status: StatusCode,
    error: Option<&'static str>,
}

/// The status and the RFC 6750 `error` code a case must get.
type Expect = (StatusCode, Option<&'static str>);

const OK: Expect = (StatusCode::OK, None);
const INVALID_TOKEN: Expect = (StatusCode::UNAUTHORIZED, Some("invalid_token"));
const INVALID_REQUEST: Expect = (StatusCode::BAD_REQUEST, Some("invalid_request"));

/// A change to the claims of a good token.
enum Edit {
    Set(&'static str, Value),
    Remove(&'static str),
}
use Edit::{Remove, Set};

struct Table {
    cases: Vec<Case>,
}

impl Table {
    fn bearer(&mut self, name: impl Into<String>, which: Which, token: String, expect: Expect) {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header value");
        self.raw(
            name,
            which,
            vec![(header::AUTHORIZATION, value)],
            token,
            expect,
        );
    }

    fn raw(
        &mut self,
        name: impl Into<String>,
        which: Which,
        headers: Vec<(HeaderName, HeaderValue)>,
        token: String,
        (status, error): Expect,
    ) {
        self.cases.push(Case {
            name: name.into(),
            which,
            headers,
            token,
            status,
            error,
        });
    }
}

fn claims() -> Value {
    let mut claims = default_claims(ISSUER, AUDIENCE);
    claims["jti"] = json!(MARKER);
    claims
}

fn claims_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = claims();
    edit(claims.as_object_mut().expect("object"));
    claims
}

fn with_header(key: &TestKey, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut header = header_for(key);
    edit(header.as_object_mut().expect("object"));
    header
}

/// Replaces the first character of segment `index` of `token` with `c`.
fn corrupt_segment(token: &str, index: usize, c: char) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[index].replace_range(0..1, &c.to_string());
    parts.join(".")
}

/// The same signature with non-zero unused bits in its last base64url character.
fn non_canonical_signature(token: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut token = token.as_bytes().to_vec();
    let last = token.pop().expect("non-empty");
    let index = ALPHABET
        .iter()
        .position(|c| *c == last)
        .expect("base64url character");
    // 256 signature bytes = 341 full characters + 2 data bits: the low 4 bits are unused.
    token.push(ALPHABET[index | 1]);
    String::from_utf8(token).expect("ASCII")
}

fn ecdsa_der_signature(file: &str, message: &[u8]) -> Vec<u8> {
    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair},
    };
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &support::issuer::pem_to_der(&support::issuer::key_file(file)),
    )
    .expect("P-256 PKCS#8 key");
    pair.sign(&SystemRandom::new(), message)
        .expect("signature")
        .as_ref()
        .to_vec()
}

fn build_cases(attacker_base: &str) -> Vec<Case> {
    let rsa = TestKey::rsa_a();
    let ps = TestKey::rsa_a_ps256();
    let p256 = TestKey::ec_p256();
    let p384 = TestKey::ec_p384();
    let ed = TestKey::ed25519();
    let attacker = TestKey::rsa_b().with_kid("attacker");
    let good = |key: &TestKey| mint(key, claims());
    let mut t = Table { cases: Vec::new() };
    use Which::*;

    // --- Positive controls -----------------------------------------------------------------
    for key in [&rsa, &ps, &p256, &p384, &ed] {
        t.bearer(format!("good {:?}", key.alg), Default, good(key), OK);
    }
    t.raw(
        "lower-case scheme",
        Default,
        vec![(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("bearer {}", good(&rsa))).expect("value"),
        )],
        good(&rsa),
        OK,
    );

    // --- alg none --------------------------------------------------------------------------
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "at+jwt"});
        t.bearer(
            format!("alg {alg}, no signature"),
            Default,
            Raw::json(&header, &claims()).build(),
            INVALID_TOKEN,
        );
        let unsigned = Raw::json(&header, &claims());
        t.bearer(
            format!("alg {alg}, two segments"),
            Default,
            unsigned.signing_input(),
            INVALID_TOKEN,
        );
        let header = json!({"alg": alg, "kid": rsa.kid, "typ": "at+jwt"});
        t.bearer(
            format!("alg {alg}, with an RS256 signature"),
            Default,
            Raw::json(&header, &claims()).sign(&rsa).build(),
            INVALID_TOKEN,
        );
    }
    t.bearer(
        "alg none then RS256 (duplicate member)",
        Default,
        Raw::bytes(
            format!(r#"{{"alg":"none","alg":"RS256","kid":"{}"}}"#, rsa.kid),
            claims().to_string(),
        )
        .sign(&rsa)
        .build(),
        INVALID_TOKEN,
    );

    // --- HMAC with the public key as the secret (algorithm confusion) ------------------------
    let (spki_der, pkcs1_der, spki_pem) = rsa_public_key("rsa-a.pem");
    let pkcs1_pem = format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        STANDARD.encode(&pkcs1_der)
    );
    let jwk_json = rsa.jwk.to_string();
    let secrets: [(&str, &[u8]); 6] = [
        ("SPKI PEM", spki_pem.as_bytes()),
        ("SPKI PEM without newline", spki_pem.trim_end().as_bytes()),
        ("PKCS#1 PEM", pkcs1_pem.as_bytes()),
        ("SPKI DER", &spki_der),
        ("PKCS#1 DER", &pkcs1_der),
        ("JWK JSON", jwk_json.as_bytes()),
    ];
    for (what, secret) in secrets {
        for alg in [JwtAlg::HS256, JwtAlg::HS384, JwtAlg::HS512] {
            let header =
                json!({"alg": support::issuer::alg_name(alg), "kid": rsa.kid, "typ": "at+jwt"});
            let token = Raw::json(&header, &claims())
                .sign_as(&EncodingKey::from_secret(secret), alg)
                .build();
            t.bearer(
                format!("{alg:?} keyed with the {what}"),
                Default,
                token,
                INVALID_TOKEN,
            );
        }
    }

    // --- Algorithm allowlist ---------------------------------------------------------------
    t.bearer(
        "RS256 under an RS256-only allowlist",
        Rs256Only,
        good(&rsa),
        OK,
    );
    t.bearer(
        "ES256 under an RS256-only allowlist",
        Rs256Only,
        good(&p256),
        INVALID_TOKEN,
    );
    t.bearer(
        "PS256 under an RS256-only allowlist",
        Rs256Only,
        good(&ps),
        INVALID_TOKEN,
    );
    t.bearer(
        "EdDSA under an RS256-only allowlist",
        Rs256Only,
        good(&ed),
        INVALID_TOKEN,
    );
    // The RS256 key cannot be talked into PS256 (its JWK says RS256), nor the reverse.
    let rs_as_ps = Raw::json(
        &with_header(&rsa, |h| {
            h.insert("alg".into(), json!("PS256"));
        }),
        &claims(),
    )
    .sign_as(&rsa.encoding, JwtAlg::PS256)
    .build();
    t.bearer(
        "PS256 under the kid of an RS256-only JWK",
        Default,
        rs_as_ps,
        INVALID_TOKEN,
    );
    let rs512 = Raw::json(
        &with_header(&rsa, |h| {
            h.insert("alg".into(), json!("RS512"));
        }),
        &claims(),
    )
    .sign_as(&rsa.encoding, JwtAlg::RS512)
    .build();
    t.bearer(
        "RS512 under the kid of an RS256-only JWK",
        Default,
        rs512,
        INVALID_TOKEN,
    );

    // --- Curve and key-type confusion ------------------------------------------------------
    let es256_by_p384 = Raw::json(
        &json!({"alg": "ES256", "kid": p384.kid, "typ": "at+jwt"}),
        &claims(),
    )
    .sign_as(&p384.encoding, JwtAlg::ES384)
    .build();
    t.bearer(
        "ES256 header, P-384 key and kid",
        Default,
        es256_by_p384,
        INVALID_TOKEN,
    );
    let es256_no_kid_by_p384 = Raw::json(&json!({"alg": "ES256", "typ": "at+jwt"}), &claims())
        .sign_as(&p384.encoding, JwtAlg::ES384)
        .build();
    t.bearer(
        "ES256 header without kid, P-384 signature",
        Default,
        es256_no_kid_by_p384,
        INVALID_TOKEN,
    );
    let es384_by_p256 = Raw::json(
        &json!({"alg": "ES384", "kid": p256.kid, "typ": "at+jwt"}),
        &claims(),
    )
    .sign_as(&p256.encoding, JwtAlg::ES256)
    .build();
    t.bearer(
        "ES384 header, P-256 key and kid",
        Default,
        es384_by_p256,
        INVALID_TOKEN,
    );
    let ed_under_rsa_kid = Raw::json(
        &json!({"alg": "EdDSA", "kid": rsa.kid, "typ": "at+jwt"}),
        &claims(),
    )
    .sign(&ed)
    .build();
    t.bearer(
        "EdDSA signature under an RSA kid",
        Default,
        ed_under_rsa_kid,
        INVALID_TOKEN,
    );
    t.bearer(
        "valid signature by a key not in the JWKS",
        Default,
        good(&TestKey::rsa_b()),
        INVALID_TOKEN,
    );

    // --- Broken signatures -----------------------------------------------------------------
    let zero = |key: &TestKey, len: usize| {
        Raw::json(&header_for(key), &claims())
            .signature_bytes(vec![0u8; len])
            .build()
    };
    t.bearer(
        "ES256 all-zero signature (r = s = 0)",
        Default,
        zero(&p256, 64),
        INVALID_TOKEN,
    );
    t.bearer(
        "ES384 all-zero signature",
        Default,
        zero(&p384, 96),
        INVALID_TOKEN,
    );
    t.bearer(
        "EdDSA all-zero signature",
        Default,
        zero(&ed, 64),
        INVALID_TOKEN,
    );
    t.bearer(
        "RS256 all-zero signature",
        Default,
        zero(&rsa, 256),
        INVALID_TOKEN,
    );
    let der = {
        let raw = Raw::json(&header_for(&p256), &claims());
        let sig = ecdsa_der_signature("ec-p256.pem", raw.signing_input().as_bytes());
        raw.signature_bytes(sig).build()
    };
    t.bearer(
        "ES256 signature in ASN.1 DER form",
        Default,
        der,
        INVALID_TOKEN,
    );
    let good_rsa = good(&rsa);
    let (input, sig) = good_rsa.rsplit_once('.').expect("three parts");
    t.bearer(
        "empty signature",
        Default,
        format!("{input}."),
        INVALID_TOKEN,
    );
    t.bearer(
        "truncated signature (by 4)",
        Default,
        good_rsa[..good_rsa.len() - 4].to_owned(),
        INVALID_TOKEN,
    );
    t.bearer(
        "half a signature",
        Default,
        format!("{input}.{}", &sig[..sig.len() / 2]),
        INVALID_TOKEN,
    );
    t.bearer(
        "signature with padding",
        Default,
        format!("{good_rsa}=="),
        INVALID_TOKEN,
    );
    t.bearer(
        "non-canonical base64 signature",
        Default,
        non_canonical_signature(&good_rsa),
        INVALID_TOKEN,
    );
    t.bearer(
        "a fourth segment",
        Default,
        format!("{good_rsa}.{sig}"),
        INVALID_TOKEN,
    );
    let other = mint(
        &rsa,
        claims_with(|c| {
            c.insert("scope".into(), json!("admin"));
        }),
    );
    let other_payload = other.split('.').nth(1).expect("payload");
    let (h, _) = input.split_once('.').expect("two parts");
    t.bearer(
        "payload swapped after signing",
        Default,
        format!("{h}.{other_payload}.{sig}"),
        INVALID_TOKEN,
    );

    // --- Keys offered by the token itself ----------------------------------------------------
    let inject = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut header = header_for(&attacker);
        edit(header.as_object_mut().expect("object"));
        mint_with_header(&attacker, header, claims())
    };
    let attacker_jwk = attacker.jwk.clone();
    let x5c = STANDARD.encode(rsa_public_key("rsa-b.pem").0);
    let jku = format!("{attacker_base}/jwks");
    t.bearer(
        "embedded jwk, unknown kid",
        Default,
        inject(&|h| {
            h.insert("jwk".into(), attacker_jwk.clone());
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "embedded jwk, no kid",
        Default,
        inject(&|h| {
            h.remove("kid");
            h.insert("jwk".into(), attacker_jwk.clone());
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "embedded jwk under a trusted kid",
        Default,
        inject(&|h| {
            h.insert("kid".into(), json!("rsa-a"));
            h.insert("jwk".into(), attacker_jwk.clone());
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "jku to the attacker's JWKS",
        Default,
        inject(&|h| {
            h.insert("jku".into(), json!(jku));
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "jku under a trusted kid",
        Default,
        inject(&|h| {
            h.insert("kid".into(), json!("rsa-a"));
            h.insert("jku".into(), json!(jku));
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "x5u to the attacker",
        Default,
        inject(&|h| {
            h.insert("x5u".into(), json!(format!("{attacker_base}/cert.pem")));
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "x5c with the attacker's key",
        Default,
        inject(&|h| {
            h.insert("x5c".into(), json!([x5c]));
        }),
        INVALID_TOKEN,
    );

    // --- kid abuse -------------------------------------------------------------------------
    for kid in [
        "../../etc/passwd",
        "rsa-a/../rsa-a",
        "RSA-A",
        " rsa-a",
        "rsa-a\u{0}",
        "*",
        "",
    ] {
        let token = mint(&rsa.with_kid(kid), claims());
        t.bearer(format!("kid {kid:?}"), Default, token, INVALID_TOKEN);
    }
    t.bearer(
        "kid is a number",
        Default,
        mint_with_header(
            &rsa,
            with_header(&rsa, |h| {
                h.insert("kid".into(), json!(5));
            }),
            claims(),
        ),
        INVALID_TOKEN,
    );
    let huge_kid = mint(&rsa.with_kid(&"k".repeat(100_000)), claims());
    t.bearer(
        "100 KB kid under the default length cap",
        Default,
        huge_kid.clone(),
        INVALID_TOKEN,
    );
    t.bearer(
        "100 KB kid under a 256 KiB length cap",
        LargeTokens,
        huge_kid,
        INVALID_TOKEN,
    );
    // Control: a 100 KB token with an ordinary kid passes the raised cap.
    let padded = mint(
        &rsa,
        claims_with(|c| {
            c.insert("pad".into(), json!("p".repeat(100_000)));
        }),
    );
    t.bearer(
        "100 KB token with a normal kid under a 256 KiB cap",
        LargeTokens,
        padded,
        OK,
    );

    // --- Header members we do not implement --------------------------------------------------
    let crit = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        mint_with_header(&rsa, with_header(&rsa, edit), claims())
    };
    t.bearer(
        "crit [exp]",
        Default,
        crit(&|h| {
            h.insert("crit".into(), json!(["exp"]));
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "crit with an unknown extension",
        Default,
        crit(&|h| {
            h.insert("crit".into(), json!(["urn:example:ext"]));
            h.insert("urn:example:ext".into(), json!(true));
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "crit []",
        Default,
        crit(&|h| {
            h.insert("crit".into(), json!([]));
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "b64 false (unencoded payload)",
        Default,
        crit(&|h| {
            h.insert("crit".into(), json!(["b64"]));
            h.insert("b64".into(), json!(false));
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "enc in a signed token",
        Default,
        crit(&|h| {
            h.insert("enc".into(), json!("A128GCM"));
        }),
        INVALID_TOKEN,
    );
    t.bearer(
        "zip in a signed token",
        Default,
        crit(&|h| {
            h.insert("zip".into(), json!("DEF"));
        }),
        INVALID_TOKEN,
    );
    let jwe = [
        b64(json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "rsa-a"}).to_string()),
        b64([7u8; 256]),
        b64([1u8; 12]),
        b64(claims().to_string()),
        b64([2u8; 16]),
    ]
    .join(".");
    t.bearer("JWE (five segments)", Default, jwe, INVALID_TOKEN);

    // --- typ -------------------------------------------------------------------------------
    let typ = |which_typ: Option<&str>| {
        let mut header = header_for(&rsa);
        match which_typ {
            Some(v) => header["typ"] = json!(v),
            None => {
                header.as_object_mut().expect("object").remove("typ");
            }
        }
        mint_with_header(&rsa, header, claims())
    };
    for v in [
        "dpop+jwt",
        "logout+jwt",
        "secevent+jwt",
        "id_token+jwt",
        "JOSE",
        "",
    ] {
        t.bearer(format!("typ {v:?}"), Default, typ(Some(v)), INVALID_TOKEN);
    }
    t.bearer("typ JWT (lenient)", Default, typ(Some("JWT")), OK);
    t.bearer("no typ (lenient)", Default, typ(None), OK);
    t.bearer("typ JWT (strict)", Strict, typ(Some("JWT")), INVALID_TOKEN);
    t.bearer("no typ (strict)", Strict, typ(None), INVALID_TOKEN);
    t.bearer("typ at+jwt (strict)", Strict, typ(Some("at+jwt")), OK);
    t.bearer(
        "typ application/at+jwt (strict)",
        Strict,
        typ(Some("application/at+jwt")),
        OK,
    );

    // --- Claims ----------------------------------------------------------------------------
    let now = now();
    let claim_cases = [
        (
            "iss of another issuer",
            Set("iss", json!("https://evil.example.com")),
            INVALID_TOKEN,
        ),
        (
            "iss with a trailing slash",
            Set("iss", json!(format!("{ISSUER}/"))),
            INVALID_TOKEN,
        ),
        (
            "iss upper-case",
            Set("iss", json!(ISSUER.to_uppercase())),
            INVALID_TOKEN,
        ),
        (
            "iss as an array",
            Set("iss", json!([ISSUER])),
            INVALID_TOKEN,
        ),
        ("iss missing", Remove("iss"), INVALID_TOKEN),
        (
            "aud of another API",
            Set("aud", json!("https://other.example.com")),
            INVALID_TOKEN,
        ),
        (
            "aud with a trailing slash",
            Set("aud", json!(format!("{AUDIENCE}/"))),
            INVALID_TOKEN,
        ),
        ("aud empty array", Set("aud", json!([])), INVALID_TOKEN),
        ("aud missing", Remove("aud"), INVALID_TOKEN),
        (
            "aud array containing ours",
            Set("aud", json!(["x", AUDIENCE])),
            OK,
        ),
        (
            "expired an hour ago",
            Set("exp", json!(now - 3600)),
            INVALID_TOKEN,
        ),
        ("expired within the leeway", Set("exp", json!(now - 5)), OK),
        (
            "nbf in an hour",
            Set("nbf", json!(now + 3600)),
            INVALID_TOKEN,
        ),
        ("nbf within the leeway", Set("nbf", json!(now + 5)), OK),
        (
            "iat in an hour",
            Set("iat", json!(now + 3600)),
            INVALID_TOKEN,
        ),
        ("exp missing", Remove("exp"), INVALID_TOKEN),
        (
            "exp as a string",
            Set("exp", json!((now + 300).to_string())),
            INVALID_TOKEN,
        ),
        ("exp null", Set("exp", Value::Null), INVALID_TOKEN),
        ("exp true", Set("exp", json!(true)), INVALID_TOKEN),
        (
            "nbf as a string",
            Set("nbf", json!(now.to_string())),
            INVALID_TOKEN,
        ),
        ("sub as a number", Set("sub", json!(1)), INVALID_TOKEN),
        ("scope as a number", Set("scope", json!(1)), INVALID_TOKEN),
    ];
    for (name, edit, expect) in claim_cases {
        let token = mint(
            &rsa,
            claims_with(|c| match edit {
                Set(claim, value) => {
                    c.insert(claim.into(), value);
                }
                Remove(claim) => {
                    c.remove(claim);
                }
            }),
        );
        t.bearer(name, Default, token, expect);
    }
    let raw_payload = |payload: String| {
        Raw::bytes(header_for(&rsa).to_string(), payload)
            .sign(&rsa)
            .build()
    };
    t.bearer(
        "duplicate iss (evil first)",
        Default,
        raw_payload(format!(
            r#"{{"iss":"https://evil.example.com","iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{}}}"#,
            now + 300
        )),
        INVALID_TOKEN,
    );
    t.bearer(
        "duplicate exp (expired second)",
        Default,
        raw_payload(format!(
            r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{},"exp":1}}"#,
            now + 300
        )),
        INVALID_TOKEN,
    );
    for payload in [
        "[]",
        r#""x""#,
        "123",
        "null",
        "true",
        "not json",
        "{",
        "",
        "{\"iss\":1} trailing",
    ] {
        t.bearer(
            format!("payload {payload:?}"),
            Default,
            raw_payload(payload.to_owned()),
            INVALID_TOKEN,
        );
    }
    t.bearer(
        "header not JSON",
        Default,
        Raw::bytes("RS256", claims().to_string()).sign(&rsa).build(),
        INVALID_TOKEN,
    );
    // A header that is a JSON array: see `a_jose_header_must_be_a_json_object`.

    // --- Shapes and sizes ------------------------------------------------------------------
    let big = mint(
        &rsa,
        claims_with(|c| {
            c.insert("pad".into(), json!("p".repeat(9 * 1024)));
        }),
    );
    t.bearer("token over 8 KiB", Default, big, INVALID_TOKEN);
    t.bearer("5000 dots", Default, ".".repeat(5000), INVALID_TOKEN);
    t.bearer("two segments", Default, input.to_owned(), INVALID_TOKEN);
    t.bearer("one segment", Default, h.to_owned(), INVALID_TOKEN);
    for (index, part) in ["header", "payload", "signature"].into_iter().enumerate() {
        for c in ['+', '/', '~'] {
            t.bearer(
                format!("{c:?} in the {part} segment"),
                Default,
                corrupt_segment(&good_rsa, index, c),
                INVALID_TOKEN,
            );
        }
    }
    t.bearer(
        "padding inside the token",
        Default,
        format!("{h}==.{}", &good_rsa[h.len() + 1..]),
        INVALID_REQUEST,
    );

    // --- Malformed requests ----------------------------------------------------------------
    let bearer = |token: &str| HeaderValue::from_str(&format!("Bearer {token}")).expect("value");
    t.raw(
        "two Authorization headers",
        Default,
        vec![
            (header::AUTHORIZATION, bearer(&good_rsa)),
            (header::AUTHORIZATION, bearer(&good(&p256))),
        ],
        good_rsa.clone(),
        INVALID_REQUEST,
    );
    t.raw(
        "two Authorization headers, second not Bearer",
        Default,
        vec![
            (header::AUTHORIZATION, bearer(&good_rsa)),
            (
                header::AUTHORIZATION,
                HeaderValue::from_static("Basic dXNlcjpwYXNz"),
            ),
        ],
        good_rsa.clone(),
        INVALID_REQUEST,
    );
    let parts: Vec<&str> = good_rsa.split('.').collect();
    let json_jws = json!({
        "payload": parts[1],
        "signatures": [{"protected": parts[0], "signature": parts[2]}],
    })
    .to_string();
    t.bearer("JSON-serialized JWS", Default, json_jws, INVALID_REQUEST);
    let flattened =
        json!({"payload": parts[1], "protected": parts[0], "signature": parts[2]}).to_string();
    t.bearer("flattened JSON JWS", Default, flattened, INVALID_REQUEST);
    t.raw(
        "Bearer without a token",
        Default,
        vec![(header::AUTHORIZATION, HeaderValue::from_static("Bearer"))],
        String::new(),
        INVALID_REQUEST,
    );
    t.raw(
        "token and a second word",
        Default,
        vec![(
            header::AUTHORIZATION,
            bearer(&format!("{good_rsa} {good_rsa}")),
        )],
        good_rsa.clone(),
        INVALID_REQUEST,
    );
    t.raw(
        "non-ASCII Authorization",
        Default,
        vec![(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(format!("Bearer {good_rsa}\u{e9}").as_bytes())
                .expect("obs-text"),
        )],
        good_rsa.clone(),
        INVALID_REQUEST,
    );

    t.cases
}

/// Every test key the issuer under attack publishes.
fn trusted_keys() -> [TestKey; 5] {
    [
        TestKey::rsa_a(),
        TestKey::rsa_a_ps256(),
        TestKey::ec_p256(),
        TestKey::ec_p384(),
        TestKey::ed25519(),
    ]
}

async fn apps() -> [(Which, Router); 4] {
    let keys = trusted_keys();
    let set = jwks(&keys.iter().collect::<Vec<_>>());
    let builder = || {
        Jwt::builder()
            .issuer_with_jwks(ISSUER, set.clone())
            .audience(AUDIENCE)
    };
    let default = builder().build().expect("config");
    [
        (
            Which::Default,
            routes().layer(BearerAuthLayer::new(default.clone())),
        ),
        (
            Which::Rs256Only,
            routes().layer(BearerAuthLayer::new(
                builder()
                    .algorithms([Algorithm::RS256])
                    .build()
                    .expect("config"),
            )),
        ),
        (
            Which::Strict,
            routes().layer(BearerAuthLayer::new(
                builder().strict_rfc9068(true).build().expect("config"),
            )),
        ),
        (
            Which::LargeTokens,
            routes().layer(BearerAuthLayer::new(default).max_token_len(256 * 1024)),
        ),
    ]
}

/// Pieces of `token` long enough that finding one in a response means it leaked.
fn leak_needles(token: &str) -> Vec<&str> {
    let mut needles: Vec<&str> = token.split('.').filter(|s| s.len() >= 16).collect();
    if token.len() >= 16 {
        needles.push(token);
    }
    needles.push(MARKER);
    needles
}

/// Sends every case to the app of its kind (cases without one are skipped) and lists what
/// went wrong: status, error code, a rejection body, the `AuthError`, leaks.
async fn run_cases(apps: &[(Which, Router)], cases: &[Case], logs: &Logs) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let Some((_, app)) = apps.iter().find(|(w, _)| *w == case.which) else {
            continue;
        };
        let mut request = Request::builder().uri("/me");
        for (name, value) in &case.headers {
            request = request.header(name, value);
        }
        let answer = send(app, request.body(Body::empty()).expect("request")).await;

        let mut problems = Vec::new();
        if answer.status != case.status {
            problems.push(format!(
                "status {} (expected {})",
                answer.status, case.status
            ));
        }
        if answer.error_code() != case.error {
            problems.push(format!(
                "error {:?} (expected {:?}), challenge {:?}",
                answer.error_code(),
                case.error,
                answer.challenge()
            ));
        }
        if case.status == StatusCode::OK {
            if answer.status == StatusCode::OK && answer.json()["sub"] != "user-1" {
                problems.push(format!("unexpected body {}", answer.text()));
            }
        } else {
            if !answer.body.is_empty() {
                problems.push(format!("non-empty rejection body {:?}", answer.text()));
            }
            match (&answer.error, case.error) {
                (Some(e), Some("invalid_token")) if e.kind() != ErrorKind::InvalidToken => {
                    problems.push(format!("kind {:?}", e.kind()))
                }
                (Some(e), Some("invalid_request")) if e.kind() != ErrorKind::InvalidRequest => {
                    problems.push(format!("kind {:?}", e.kind()))
                }
                (None, _) => problems.push("no AuthError in the extensions".into()),
                _ => {}
            }
        }
        for needle in leak_needles(&case.token) {
            for (name, value) in &answer.headers {
                if String::from_utf8_lossy(value.as_bytes()).contains(needle) {
                    problems.push(format!("header {name} leaks {}", needle.len()));
                }
            }
            if answer.text().contains(needle) {
                problems.push(format!("body leaks {}", needle.len()));
            }
        }
        let logged = logs.text();
        for needle in leak_needles(&case.token) {
            if logged.contains(needle) {
                problems.push(format!("the logs leak {}", needle.len()));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} [{:?}]: {}",
                case.name,
                case.which,
                problems.join("; ")
            ));
        }
    }
    failures
}

#[tokio::test]
async fn hostile_tokens_and_requests_table() {
    // An attacker-controlled key server: nothing may ever fetch from it.
    let attacker = TestKey::rsa_b().with_kid("attacker");
    let attacker_server = IssuerServer::start(jwks(&[&attacker])).await;
    let apps = apps().await;
    let cases = build_cases(attacker_server.issuer());
    let logs = support::issuer::logs();
    assert!(cases.len() > 100, "{} cases", cases.len());

    let failures = run_cases(&apps, &cases, &logs).await;
    assert!(
        logs.text().contains("portcullis::rejection"),
        "the log capture saw no rejection: {:?}",
        logs.text()
    );
    assert_eq!(
        attacker_server.total_hits(),
        0,
        "a token made us fetch from the attacker"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The same table against keys fetched from a JWKS endpoint: hostile `kid`s, `jku`s and
/// kid-less tokens may make at most one refetch per cooldown, never one per request, and
/// never a fetch from anywhere else.
#[tokio::test]
async fn hostile_tokens_against_a_fetched_key_set() {
    let attacker = TestKey::rsa_b().with_kid("attacker");
    let attacker_server = IssuerServer::start(jwks(&[&attacker])).await;
    let keys = trusted_keys();
    let issuer = IssuerServer::start(jwks(&keys.iter().collect::<Vec<_>>())).await;
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(ISSUER, issuer.jwks_uri())
        .audience(AUDIENCE)
        .jwks_refresh_cooldown(Duration::from_secs(600))
        .build()
        .expect("config");
    let apps = [(Which::Default, routes().layer(BearerAuthLayer::new(jwt)))];
    let cases = build_cases(attacker_server.issuer());
    let fetched = cases.iter().filter(|c| c.which == Which::Default).count();
    assert!(fetched > 50, "{fetched} cases");
    let logs = support::issuer::logs();

    let failures = run_cases(&apps, &cases, &logs).await;
    assert!(
        failures.is_empty(),
        "{} of {fetched} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        issuer.jwks_hits() <= 2,
        "{} fetches: the first, then at most one refetch per cooldown",
        issuer.jwks_hits()
    );
    assert_eq!(
        attacker_server.total_hits(),
        0,
        "a token made us fetch from the attacker"
    );
}

/// RFC 7515 §4: the JOSE header is a JSON object. serde's derived `Deserialize` also accepts
/// a struct as a JSON array of its fields in declaration order, so `["RS256","rsa-a"]` reads
/// as `{"alg":"RS256","kid":"rsa-a"}` unless the parser insists on a map.
#[tokio::test]
async fn a_jose_header_must_be_a_json_object() {
    let apps = apps().await;
    let app = &apps[0].1;
    let rsa = TestKey::rsa_a();
    for header in [r#"["RS256"]"#, r#"["RS256","rsa-a","at+jwt"]"#] {
        let token = Raw::bytes(header, claims().to_string()).sign(&rsa).build();
        let answer = support::issuer::call(app, "/me", Some(&token)).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token")),
            "header {header}"
        );
    }
    // Control: the same token with an object header passes.
    let token = Raw::bytes(r#"{"alg":"RS256","kid":"rsa-a"}"#, claims().to_string())
        .sign(&rsa)
        .build();
    assert_eq!(
        support::issuer::call(app, "/me", Some(&token)).await.status,
        StatusCode::OK
    );
}
