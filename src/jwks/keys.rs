//! A JWK Set (RFC 7517) turned into verification keys, once, when it loads.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

use super::verifier::{Material, Verifier};
use crate::alg::{AlgSet, Algorithm};

/// The longest `kid` looked up; longer ones are rejected before any lookup.
pub(crate) const MAX_KID_LEN: usize = 256;

/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_LEN: usize = 256;

/// A verification key with the algorithms it may verify.
pub(crate) struct Key {
    /// Shared with the principals this key verifies (for the tracing span).
    pub(crate) kid: Option<std::sync::Arc<str>>,
    pub(crate) algs: AlgSet,
    /// Parsed once, when the set loads.
    pub(crate) verifier: Verifier,
}

/// The most keys a token without a `kid` is tried against: enough for an issuer in the
/// middle of a rotation, few enough that a forged token costs a bounded number of checks.
pub(crate) const MAX_KIDLESS_CANDIDATES: usize = 4;

/// The usable keys of one JWK Set.
#[derive(Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Key>,
}

impl KeySet {
    /// The keys that may have signed a token with this `kid` and `alg`: the one key with
    /// that `kid` (exact match); without a `kid`, the first [`MAX_KIDLESS_CANDIDATES`] keys
    /// that accept `alg`, in the order of the set.
    pub(crate) fn candidates<'s>(
        &'s self,
        kid: Option<&'s str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'s Key> + 's {
        let limit = if kid.is_some() {
            1
        } else {
            MAX_KIDLESS_CANDIDATES
        };
        self.keys
            .iter()
            .filter(move |k| k.algs.contains(alg) && (kid.is_none() || k.kid.as_deref() == kid))
            .take(limit)
    }

    /// Whether a key with this identity ([`Verifier::id`]) is in the set.
    pub(crate) fn has_key(&self, id: u64) -> bool {
        self.keys.iter().any(|k| k.verifier.id() == id)
    }

    /// Whether a key with this `kid` exists, whatever its algorithms.
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// Why a JWK Set document as a whole was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct InvalidJwks(pub(crate) &'static str);

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// A JWK as read from a JWK Set or a DPoP proof's header.
#[derive(Deserialize)]
pub(crate) struct RawJwk {
    kty: String,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    // Private or symmetric key material, even `null`: such a key is never used.
    #[serde(default, deserialize_with = "present")]
    d: bool,
    #[serde(default, deserialize_with = "present")]
    p: bool,
    #[serde(default, deserialize_with = "present")]
    q: bool,
    #[serde(default, deserialize_with = "present")]
    dp: bool,
    #[serde(default, deserialize_with = "present")]
    dq: bool,
    #[serde(default, deserialize_with = "present")]
    qi: bool,
    #[serde(default, deserialize_with = "present")]
    oth: bool,
    #[serde(default, deserialize_with = "present")]
    k: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// Why [`material`] refuses a key that carries private or symmetric members.
pub(crate) const PRIVATE_MATERIAL: &str = "key carries private or symmetric material";

impl RawJwk {
    /// RFC 7638 §3.2: the required public members of the key, in lexicographic order,
    /// without whitespace; its SHA-256 is the key's thumbprint. `None` for a key type
    /// [`material`] refuses.
    pub(crate) fn thumbprint_input(&self) -> Option<String> {
        Some(match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => {
                let (n, e) = (self.n.as_deref()?, self.e.as_deref()?);
                format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#)
            }
            ("EC", Some(crv)) => {
                let (x, y) = (self.x.as_deref()?, self.y.as_deref()?);
                format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            ("OKP", Some(crv)) => {
                let x = self.x.as_deref()?;
                format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#)
            }
            _ => return None,
        })
    }
}

/// The most usable keys kept from one JWK Set; issuers publish a handful.
pub(crate) const MAX_KEYS: usize = 100;

/// Why keys of one document were skipped, counted per reason.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Skipped(Vec<(&'static str, usize)>);

impl Skipped {
    fn add(&mut self, reason: &'static str) {
        match self.0.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, count)) => *count += 1,
            None => self.0.push((reason, 1)),
        }
    }

    fn total(&self) -> usize {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (reason, count)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{count} × {reason}")?;
        }
        Ok(())
    }
}

/// Parses a JWK Set; keys that cannot be used are skipped, not fatal, and summarized in one
/// WARN line per document (feature `tracing`), however many there are.
pub(crate) fn parse(json: &[u8], allowed: AlgSet) -> Result<KeySet, InvalidJwks> {
    let (set, skipped) = parse_counting(json, allowed)?;
    if skipped.total() > 0 {
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "portcullis::jwks",
            kept = set.keys.len(),
            skipped = skipped.total(),
            reasons = %skipped,
            "skipped keys of a JWK Set"
        );
    }
    Ok(set)
}

fn parse_counting(json: &[u8], allowed: AlgSet) -> Result<(KeySet, Skipped), InvalidJwks> {
    // RFC 7517 §5: the set and each key are JSON objects; serde's derive would also take
    // arrays, their members by position.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(InvalidJwks("not a JWK Set document"));
    }
    let doc: Document =
        serde_json::from_slice(json).map_err(|_| InvalidJwks("not a JWK Set document"))?;
    let mut keys = Vec::with_capacity(doc.keys.len().min(MAX_KEYS));
    let mut skipped = Skipped::default();
    for value in doc.keys {
        if keys.len() == MAX_KEYS {
            skipped.add("more usable keys than the limit");
            continue;
        }
        match Some(value)
            .filter(serde_json::Value::is_object)
            .ok_or("malformed key")
            .and_then(|v| serde_json::from_value::<RawJwk>(v).map_err(|_| "malformed key"))
            .and_then(|raw| key(raw, allowed))
        {
            Ok(k) => keys.push(k),
            Err(why) => skipped.add(why),
        }
    }
    Ok((KeySet { keys }, skipped))
}

fn decode(b64: &str) -> Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| "key member is not base64url")
}

fn significant_len(bytes: &[u8]) -> usize {
    bytes.iter().skip_while(|b| **b == 0).count()
}

/// The public key a JWK carries, decoded and checked (RSA of at least 2048 bits, P-256,
/// P-384, Ed25519), with the algorithms its type allows; a key with private or symmetric
/// members is refused ([`PRIVATE_MATERIAL`]).
pub(crate) fn material(raw: &RawJwk) -> Result<(AlgSet, Material), &'static str> {
    if raw.d || raw.p || raw.q || raw.dp || raw.dq || raw.qi || raw.oth || raw.k {
        return Err(PRIVATE_MATERIAL);
    }
    Ok(match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => {
            let (Some(n), Some(e)) = (&raw.n, &raw.e) else {
                return Err("RSA key without n or e");
            };
            let (n, e) = (decode(n)?, decode(e)?);
            if significant_len(&n) < MIN_RSA_MODULUS_LEN {
                return Err("RSA modulus shorter than 2048 bits");
            }
            let e_len = significant_len(&e);
            if e_len == 0 || e_len > 8 {
                return Err("RSA exponent out of range");
            }
            // Some issuers pad the modulus with a zero byte; aws-lc-rs refuses that form.
            let unpadded = |v: Vec<u8>| v.into_iter().skip_while(|b| *b == 0).collect::<Vec<u8>>();
            let (n, e) = (unpadded(n), unpadded(e));
            (AlgSet::RSA, Material::Rsa { n, e })
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (Some(x), Some(y)) = (&raw.x, &raw.y) else {
                return Err("EC key without x or y");
            };
            let (alg, len) = if crv == "P-256" {
                (Algorithm::ES256, 32)
            } else {
                (Algorithm::ES384, 48)
            };
            let (x, y) = (decode(x)?, decode(y)?);
            if significant_len(&x) > len || significant_len(&y) > len {
                return Err("EC coordinate longer than the curve");
            }
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (AlgSet::one(alg), Material::Ec { alg, point })
        }
        ("OKP", Some("Ed25519")) => {
            let Some(x) = &raw.x else {
                return Err("OKP key without x");
            };
            let x = decode(x)?;
            if x.len() != 32 {
                return Err("Ed25519 key of the wrong length");
            }
            (AlgSet::one(Algorithm::EdDSA), Material::Ed25519 { x })
        }
        _ => return Err("unsupported key type or curve"),
    })
}

fn key(raw: RawJwk, allowed: AlgSet) -> Result<Key, &'static str> {
    let (family, material) = material(&raw)?;
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("key is not for signatures");
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err("key_ops does not allow verify");
    }
    if raw.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_LEN) {
        return Err("kid is too long");
    }
    let mut algs = family.intersect(allowed);
    if let Some(alg) = raw.alg.as_deref() {
        // RFC 9864 names EdDSA on Ed25519 "Ed25519".
        let alg = if alg == "Ed25519" { "EdDSA" } else { alg };
        let alg = Algorithm::from_name(alg).ok_or("key alg is not supported")?;
        algs = algs.intersect(AlgSet::one(alg));
    }
    if algs.is_empty() {
        return Err("no allowed algorithm fits the key");
    }
    let verifier = Verifier::new(&material, raw.kid.as_deref(), algs)?;
    Ok(Key {
        kid: raw.kid.map(std::sync::Arc::from),
        algs,
        verifier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    fn one(jwk: &str) -> Result<Key, &'static str> {
        key(
            serde_json::from_str(jwk).expect("jwk json"),
            AlgSet::of(Algorithm::ALL),
        )
    }

    #[test]
    fn key_admission_table() {
        let rsa = |extra: &str| format!(r#"{{"kty":"RSA","n":"{N}","e":"AQAB"{extra}}}"#);
        let ec = r#""crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0""#;
        let ok: &[(String, AlgSet)] = &[
            (rsa(""), AlgSet::RSA),
            (rsa(r#","use":"sig""#), AlgSet::RSA),
            (rsa(r#","alg":"PS256""#), AlgSet::one(Algorithm::PS256)),
            (rsa(r#","key_ops":["verify"]"#), AlgSet::RSA),
            (format!(r#"{{"kty":"EC",{ec}}}"#), AlgSet::one(Algorithm::ES256)),
            (format!(r#"{{"kty":"EC","alg":"ES256",{ec}}}"#), AlgSet::one(Algorithm::ES256)),
            (
                r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#.into(),
                AlgSet::one(Algorithm::EdDSA),
            ),
        ];
        for (jwk, algs) in ok {
            let k = one(jwk).unwrap_or_else(|e| panic!("{jwk}: {e}"));
            assert_eq!(k.algs, *algs, "{jwk}");
        }
        let bad = [
            rsa(r#","use":"enc""#),
            rsa(r#","key_ops":["encrypt"]"#),
            rsa(r#","d":"AQAB""#),
            rsa(r#","alg":"ES256""#),
            rsa(r#","alg":"HS256""#),
            rsa(r#","alg":"none""#),
            format!(r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#, &N[..170]),
            r#"{"kty":"RSA","e":"AQAB"}"#.into(),
            format!(r#"{{"kty":"EC","alg":"ES384",{ec}}}"#),
            format!(r#"{{"kty":"EC","alg":"RS256",{ec}}}"#),
            r#"{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}"#.into(),
            r#"{"kty":"oct","k":"c2VjcmV0"}"#.into(),
            r#"{"kty":"oct"}"#.into(),
            r#"{"kty":"OKP","crv":"Ed448","x":"AA"}"#.into(),
            r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#.into(),
            r#"{"kty":"OKP","crv":"Ed25519","x":"!!!"}"#.into(),
            format!(
                r#"{{"kty":"RSA","n":"{N}","e":"AQAB","kid":"{}"}}"#,
                "k".repeat(300)
            ),
        ];
        for jwk in bad {
            assert!(one(&jwk).is_err(), "{jwk} should be skipped");
        }
    }

    #[test]
    fn allowlist_narrows_key_algorithms() {
        let jwk = format!(r#"{{"kty":"RSA","n":"{N}","e":"AQAB"}}"#);
        let raw = serde_json::from_str(&jwk).expect("jwk");
        let k = key(raw, AlgSet::one(Algorithm::PS384)).expect("key");
        assert_eq!(k.algs, AlgSet::one(Algorithm::PS384));
        let raw = serde_json::from_str(&jwk).expect("jwk");
        assert!(key(raw, AlgSet::one(Algorithm::ES256)).is_err());
    }

    #[test]
    fn bad_keys_are_skipped_not_fatal() {
        let doc = format!(
            r#"{{"keys":[{{"kty":"oct","k":"AA"}},{{"kty":"RSA","kid":"good","n":"{N}","e":"AQAB"}},7,{{"kty":"RSA"}}]}}"#
        );
        let set = parse(doc.as_bytes(), AlgSet::of(Algorithm::ALL)).expect("set");
        assert_eq!(set.keys.len(), 1);
        let count = |kid, alg| set.candidates(kid, alg).count();
        assert_eq!(count(Some("good"), Algorithm::RS256), 1);
        assert_eq!(count(Some("good"), Algorithm::ES256), 0);
        assert_eq!(count(Some("GOOD"), Algorithm::RS256), 0);
        assert_eq!(count(None, Algorithm::RS256), 1, "the only RSA key");
        // Arrays in place of objects (found by `proptests`): a set and a key are objects.
        let array_key = format!(r#"{{"keys":[["RSA",null,null,null,"k0",null,"{N}","AQAB"]]}}"#);
        let set = parse(array_key.as_bytes(), AlgSet::of(Algorithm::ALL)).expect("set");
        assert_eq!(set.keys.len(), 0, "a key written as an array");
        let array_set = format!(r#"[[{{"kty":"RSA","n":"{N}","e":"AQAB"}}]]"#);
        for doc in [
            "[]",
            "[[]]",
            &array_set,
            "{}",
            r#"{"keys":{}}"#,
            "null",
            "{",
        ] {
            assert!(parse(doc.as_bytes(), AlgSet::RSA).is_err(), "{doc}");
        }
    }

    #[test]
    fn skipped_keys_are_counted_per_reason_and_usable_keys_are_capped() {
        let rsa = |kid: usize| format!(r#"{{"kty":"RSA","kid":"k{kid}","n":"{N}","e":"AQAB"}}"#);
        let mut members: Vec<String> = (0..MAX_KEYS + 5).map(rsa).collect();
        members.extend((0..1000).map(|_| r#"{"kty":"oct","k":"AA"}"#.to_owned()));
        members.extend((0..7).map(|_| "42".to_owned()));
        let doc = format!(r#"{{"keys":[{}]}}"#, members.join(","));
        let (set, skipped) =
            parse_counting(doc.as_bytes(), AlgSet::of(Algorithm::ALL)).expect("set");
        assert_eq!(set.keys.len(), MAX_KEYS);
        assert_eq!(skipped.total(), 5 + 1000 + 7);
        assert_eq!(
            skipped.to_string(),
            "1012 × more usable keys than the limit"
        );
        let doc = r#"{"keys":[{"kty":"oct","k":"AA"},42,{"kty":"oct","k":"AA"}]}"#;
        let (_, skipped) = parse_counting(doc.as_bytes(), AlgSet::RSA).expect("set");
        assert_eq!(
            skipped.to_string(),
            "2 × key carries private or symmetric material, 1 × malformed key"
        );
    }

    #[test]
    fn kidless_tokens_get_a_bounded_list_of_candidates() {
        let rsa = |kid: &str| format!(r#"{{"kty":"RSA","kid":"{kid}","n":"{N}","e":"AQAB"}}"#);
        let keys: Vec<String> = (0..6).map(|i| rsa(&format!("k{i}"))).collect();
        let doc = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
        let set = parse(doc.as_bytes(), AlgSet::of(Algorithm::ALL)).expect("set");
        let kids: Vec<_> = set
            .candidates(None, Algorithm::RS256)
            .map(|k| k.kid.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(kids, ["k0", "k1", "k2", "k3"]);
        assert_eq!(set.candidates(None, Algorithm::ES256).count(), 0);
        let kids: Vec<_> = set
            .candidates(Some("k5"), Algorithm::RS256)
            .map(|k| k.kid.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(
            kids,
            ["k5"],
            "a kid selects one key, however many there are"
        );
    }
}
