//! The claims read once: the typed claims `C`, the [`ClaimsView`] validation needs and the
//! authorities, in one pass over the JSON object.
//!
//! `C` deserializes from a deserializer that walks the claims object for it. A member
//! validation reads is parsed once into a [`Captured`] value, which fills the view and is
//! then replayed to `C` exactly as `serde_json` would have handed it over (a string,
//! borrowed when it has no escapes, an unsigned, signed or floating-point number, a
//! boolean, `null`, an array of those), for every type hint `C` may give; a member
//! validation ignores goes straight to `C`. The few members whose value may be an object
//! (`cnf`, `tid`, the authority claims) are read as raw JSON and parsed for each reader
//! from that slice. Member names reach `C` as serde_json hands them over.
//!
//! Whatever this pass cannot hand over exactly as serde_json does (a number asked for as
//! `f32`, `i128` or `u128`, a member name asked for as a number, a boolean or bytes, a raw
//! value, a raw member nested deeper than [`MAX_RAW_DEPTH`]), and any error at all, ends the
//! pass: the view, `C` and the authorities are then each read on their own, as before. The
//! same happens when `C` does not read the claims as a map (a newtype, a raw value, ...):
//! the object was not walked for the view. So the outcome is always what the separate
//! readings give, errors included, and the one pass is only a faster way to it.
//!
//! `C` is read before the signature is checked, like the view: a token whose signature
//! does not verify is refused and its claims dropped, but `C`'s `Deserialize` has run on
//! them. A JWT's payload is at most the token's length (`max_token_len`, 8 KiB by default);
//! an introspection answer is at most `max_response_bytes`, and is read once it arrived.

use std::{borrow::Cow, fmt, marker::PhantomData};

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor,
    value::{BorrowedStrDeserializer, SeqDeserializer, StrDeserializer},
};
use serde_json::value::RawValue;

use super::{ClaimsView, Member, ScopeClaim, Str};
use crate::{
    authorities::{Authorities, AuthorityClaims, Members},
    error::AuthError,
};

/// What one reading of the claims gives. The errors of the typed claims and of the
/// authorities are kept for validation to return where it reads them, after its other
/// checks, so that a token is refused for the same reason as when each was read on its own.
pub(crate) struct Read<'de, C> {
    pub(crate) view: ClaimsView<'de>,
    pub(crate) claims: Result<C, AuthError>,
    pub(crate) authorities: Result<Authorities, AuthError>,
    /// Whether the one pass gave it (rather than the separate readings).
    #[cfg(test)]
    pub(crate) one_pass: bool,
}

/// The claims object is malformed: not a JSON object, or a claim validation reads has a
/// wrong type or appears twice.
#[derive(Debug)]
pub(crate) struct Malformed;

/// Reads `json` (a claims object) into the view, `C` and the authorities at once.
pub(crate) fn read<'de, C: Deserialize<'de>>(
    json: &'de [u8],
    scope_claim: &ScopeClaim,
    authorities: &AuthorityClaims,
) -> Result<Read<'de, C>, Malformed> {
    // JSON is UTF-8 (RFC 8259 §8.1, RFC 7519 §7.2); serde_json checks it only in the strings
    // it reads, not in the members it skips.
    let json = std::str::from_utf8(json).map_err(|_| Malformed)?;
    let mut reader = Reader {
        view: ClaimsView::default(),
        scope_claim,
        authorities: authorities.members(),
        walked: false,
        failed: false,
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let claims = C::deserialize(Tee {
        de: &mut de,
        reader: &mut reader,
    })
    .and_then(|claims| de.end().map(|()| claims));
    match claims {
        Ok(claims) if reader.walked && !reader.failed => Ok(Read {
            view: reader.view,
            claims: Ok(claims),
            authorities: reader.authorities.finish(),
            #[cfg(test)]
            one_pass: true,
        }),
        // `C` did not walk the object, or something failed: each reading on its own, in
        // the order validation reports them.
        claims => Ok(Read {
            view: super::parse(json.as_bytes(), scope_claim).map_err(|_| Malformed)?,
            claims: claims.or_else(|_| serde_json::from_str(json)).map_err(|_| {
                AuthError::invalid_token("the token's claims do not have the expected shape")
            }),
            authorities: authorities.extract(json.as_bytes()),
            #[cfg(test)]
            one_pass: false,
        }),
    }
}

/// The state of one pass: the view, the authorities found, and whether the object was
/// walked to its end (only then are the view and the authorities complete).
struct Reader<'a, 'de> {
    view: ClaimsView<'de>,
    scope_claim: &'a ScopeClaim,
    authorities: Members<'a>,
    /// The object was walked to its end.
    walked: bool,
    /// Something was refused or could not be handed over exactly on the way (even if `C`
    /// went on): the separate readings decide.
    failed: bool,
}

/// Raw members (`cnf`, `tid`, authority claims) are parsed again from their own slice,
/// where serde_json's nesting budget starts afresh; one nested deeper than this ends the
/// one pass, so that the separate readings apply the budget as they always did.
const MAX_RAW_DEPTH: usize = 100;

/// Whether `json` (one JSON value) nests arrays and objects deeper than `limit`.
fn deeper_than(json: &str, limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Ends the one pass: `why` is never shown, the separate readings give the answer.
fn not_mirrored<E: de::Error>(why: &str) -> E {
    E::custom(why)
}

/// serde_json's raw value asks for itself by a private newtype name; only serde_json can
/// hand one over.
fn refuse_raw_value<E: de::Error>(newtype: &str) -> Result<(), E> {
    if newtype.starts_with("$serde_json") {
        return Err(not_mirrored("a raw value"));
    }
    Ok(())
}

/// The unit variant a string names, as serde_json reads an enum from a string.
fn unit_variant<'de, E: de::Error, V: Visitor<'de>>(
    s: &Cow<'de, str>,
    name: &'static str,
    variants: &'static [&'static str],
    visitor: V,
) -> Result<V::Value, E> {
    match s {
        Cow::Borrowed(s) => {
            BorrowedStrDeserializer::<E>::new(s).deserialize_enum(name, variants, visitor)
        }
        Cow::Owned(s) => StrDeserializer::<E>::new(s).deserialize_enum(name, variants, visitor),
    }
}

/// What the pass does with the value of the member just named.
#[derive(Clone, Copy)]
enum Pending {
    /// Nothing: it goes to `C` alone.
    Pass,
    /// Its presence counts; the value goes to `C`.
    Mark(Member),
    /// Captured, read into the view and replayed to `C`.
    Capture(Member),
    /// Read as raw JSON, parsed for the view, the authorities (the top-level index) and `C`.
    Raw(Option<Member>, Option<usize>),
}

impl Reader<'_, '_> {
    fn pending(&self, name: &str) -> Pending {
        let member = Member::of(name, self.scope_claim);
        let authority = self.authorities.find(name);
        match (member, authority) {
            (None, None) => Pending::Pass,
            (Some(m), None) if m.is_marker() => Pending::Mark(m),
            (Some(m), None) if !m.takes_objects() => Pending::Capture(m),
            (m, a) => Pending::Raw(m, a),
        }
    }
}

/// The deserializer `C` reads from: serde_json's, with the claims object walked by
/// [`TeeMap`]. Anything but a map or a struct goes to serde_json as it is (the view is then
/// read on its own).
struct Tee<'a, 'r, 'de> {
    de: &'a mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
    reader: &'a mut Reader<'r, 'de>,
}

macro_rules! forward {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.de.$method(visitor)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Tee<'_, '_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.de.deserialize_map(TeeVisitor {
            visitor,
            reader: self.reader,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    forward! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_option
        deserialize_unit deserialize_seq deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_enum(name, variants, visitor)
    }
}

/// `C`'s visitor, handed the walked object instead of serde_json's.
struct TeeVisitor<'a, 'r, 'de, V> {
    visitor: V,
    reader: &'a mut Reader<'r, 'de>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for TeeVisitor<'_, '_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(TeeMap {
            map,
            reader: self.reader,
            pending: Pending::Pass,
        })
    }
}

/// The claims object as `C` sees it: every member in order, the ones validation reads
/// read for the view on the way.
struct TeeMap<'a, 'r, 'de, A> {
    map: A,
    reader: &'a mut Reader<'r, 'de>,
    pending: Pending,
}

impl<'de, A: MapAccess<'de>> TeeMap<'_, '_, 'de, A> {
    /// The value of the member just named, read as `pending` says.
    fn value<S: DeserializeSeed<'de>>(
        &mut self,
        pending: Pending,
        seed: S,
    ) -> Result<S::Value, A::Error> {
        let reader = &mut *self.reader;
        match pending {
            Pending::Pass => self.map.next_value_seed(seed),
            Pending::Mark(member) => {
                reader
                    .view
                    .read(member, de::value::UnitDeserializer::<A::Error>::new())?;
                self.map.next_value_seed(seed)
            }
            Pending::Capture(member) => {
                let value: Captured<'de> = self.map.next_value()?;
                reader.view.read(member, Replay::<A::Error>::new(&value))?;
                seed.deserialize(Replay::<A::Error>::new(&value))
            }
            Pending::Raw(member, authority) => {
                let raw: &'de RawValue = self.map.next_value()?;
                let json = raw.get();
                if deeper_than(json, MAX_RAW_DEPTH) {
                    return Err(not_mirrored("a raw member nests too deep"));
                }
                let from_raw = || serde_json::Deserializer::from_str(json);
                if let Some(member) = member {
                    reader
                        .view
                        .read(member, &mut from_raw())
                        .map_err(de::Error::custom)?;
                }
                if let Some(at) = authority {
                    reader
                        .authorities
                        .read(at, json)
                        .map_err(de::Error::custom)?;
                }
                seed.deserialize(&mut from_raw()).map_err(de::Error::custom)
            }
        }
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TeeMap<'_, '_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(Str(name)) = self.map.next_key::<Str<'de>>().inspect_err(|_| {
            self.reader.failed = true;
        })?
        else {
            self.reader.walked = true;
            return Ok(None);
        };
        self.pending = self.reader.pending(&name);
        let key = seed.deserialize(Name::<A::Error>::new(name));
        if key.is_err() {
            self.reader.failed = true;
        }
        key.map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let pending = std::mem::replace(&mut self.pending, Pending::Pass);
        let value = self.value(pending, seed);
        if value.is_err() {
            self.reader.failed = true;
        }
        value
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// Type hints served only when the captured value is of the kind serde_json serves them
/// from; any other is refused, so that the separate readings answer.
macro_rules! strict {
    ($($kind:ident: $($method:ident)*;)*) => {
        $($(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
                let fits = self.value.kind() == Kind::$kind;
                self.expecting(fits, visitor)
            }
        )*)*
    };
}

/// Hints a member name is not handed over for here.
macro_rules! refuse {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, E> {
                Err(not_mirrored("a member name read as another type"))
            }
        )*
    };
}

/// A member's value as serde_json handed it over, for replaying.
enum Captured<'de> {
    Str(Cow<'de, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Null,
    Seq(Vec<Captured<'de>>),
}

impl<'de> Deserialize<'de> for Captured<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Captured<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value other than an object")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Captured::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Captured::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Captured::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Captured::I64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Captured::F64(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Captured::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Captured::Null)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Captured::Seq(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// The JSON kind of a captured value, which decides the type hints it serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    String,
    Boolean,
    Null,
    Array,
}

impl Captured<'_> {
    fn kind(&self) -> Kind {
        match self {
            Self::U64(_) | Self::I64(_) | Self::F64(_) => Kind::Number,
            Self::Str(_) => Kind::String,
            Self::Bool(_) => Kind::Boolean,
            Self::Null => Kind::Null,
            Self::Seq(_) => Kind::Array,
        }
    }
}

/// Hands a [`Captured`] value to a visitor as serde_json handed it over.
struct Replay<'c, 'de, E> {
    value: &'c Captured<'de>,
    error: PhantomData<E>,
}

impl<'c, 'de, E> Replay<'c, 'de, E> {
    fn new(value: &'c Captured<'de>) -> Self {
        Self {
            value,
            error: PhantomData,
        }
    }
}

impl<'de, E: de::Error> IntoDeserializer<'de, E> for Replay<'_, 'de, E> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de, E: de::Error> Deserializer<'de> for Replay<'_, 'de, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Captured::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Captured::Str(Cow::Owned(s)) => visitor.visit_str(s),
            Captured::U64(n) => visitor.visit_u64(*n),
            Captured::I64(n) => visitor.visit_i64(*n),
            Captured::F64(n) => visitor.visit_f64(*n),
            Captured::Bool(b) => visitor.visit_bool(*b),
            Captured::Null => visitor.visit_unit(),
            Captured::Seq(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(Replay::new));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Captured::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Captured::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_bytes(s.as_bytes()),
            Captured::Str(Cow::Owned(s)) => visitor.visit_bytes(s.as_bytes()),
            Captured::Seq(_) => self.deserialize_any(visitor),
            _ => Err(not_mirrored("bytes")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        refuse_raw_value(name)?;
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            Captured::Str(s) => unit_variant(s, name, variants, visitor),
            _ => Err(not_mirrored("an enum")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        // serde_json reads a struct from an array too; never an object here.
        self.deserialize_seq(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, E> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, E> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, E> {
        // A captured value is never an object.
        Err(not_mirrored("a map"))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_unit()
    }

    fn deserialize_f32<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, E> {
        // serde_json may read an `f32` from the digits (`float_roundtrip`).
        Err(not_mirrored("f32"))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, E> {
        Err(not_mirrored("i128"))
    }

    fn deserialize_u128<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, E> {
        Err(not_mirrored("u128"))
    }

    strict! {
        Number: deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_u8
            deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f64;
        String: deserialize_str deserialize_string deserialize_char deserialize_identifier;
        Boolean: deserialize_bool;
        Null: deserialize_unit;
        Array: deserialize_seq;
    }
}

impl<'de, E: de::Error> Replay<'_, 'de, E> {
    /// The value as it is when `fits`, refused otherwise.
    fn expecting<V: Visitor<'de>>(self, fits: bool, visitor: V) -> Result<V::Value, E> {
        if fits {
            self.deserialize_any(visitor)
        } else {
            Err(not_mirrored("a type hint of another kind"))
        }
    }
}

/// A member name as serde_json's map-key deserializer hands it over: a string for every
/// hint a string serves, `Some` for an option, the name of a unit variant. Names asked for
/// as numbers, booleans or bytes (which serde_json parses out of the string) are refused,
/// so that the separate readings answer.
struct Name<'de, E> {
    name: Cow<'de, str>,
    error: PhantomData<E>,
}

impl<'de, E> Name<'de, E> {
    fn new(name: Cow<'de, str>) -> Self {
        Self {
            name,
            error: PhantomData,
        }
    }
}

impl<'de, E: de::Error> Deserializer<'de> for Name<'de, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.name {
            Cow::Borrowed(name) => visitor.visit_borrowed_str(name),
            Cow::Owned(name) => visitor.visit_str(&name),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        refuse_raw_value(name)?;
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        unit_variant(&self.name, name, variants, visitor)
    }

    refuse! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_bytes
        deserialize_byte_buf
    }

    serde::forward_to_deserialize_any! {
        char str string unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::Cell, collections::HashMap};

    use serde::Deserialize;
    use serde_json::Value;

    use super::*;
    use crate::{authorities::AuthoritySource, principal::RegisteredClaims};

    const CLAIMS: &str = r#"{"iss":"https://issuer.example","sub":"alice","aud":["api","other"],"exp":1900000000,"iat":1700000000.5,"scope":"read write","roles":["admin"],"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},"tid":{"nested":true},"nonce":"n","typ":"Bearer","x":{"y":[1,-2,3.5,null,true]}}"#;

    fn authorities() -> AuthorityClaims {
        AuthorityClaims::new(&[AuthoritySource::path("roles").prefix("role:")]).expect("sources")
    }

    thread_local! {
        static READS: Cell<usize> = const { Cell::new(0) };
    }

    /// Claims that count how often they are read from the payload.
    #[derive(Debug)]
    struct Counted(HashMap<String, Value>);

    impl<'de> Deserialize<'de> for Counted {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            READS.with(|r| r.set(r.get() + 1));
            HashMap::deserialize(d).map(Counted)
        }
    }

    #[test]
    fn claims_read_as_a_map_are_read_once() {
        READS.with(|r| r.set(0));
        let got = super::read::<Counted>(CLAIMS.as_bytes(), &ScopeClaim::Default, &authorities())
            .expect("well-formed");
        assert_eq!(READS.with(Cell::get), 1, "one pass");
        assert!(got.one_pass);
        let claims = got.claims.expect("claims");
        let all: Value = serde_json::from_str(CLAIMS).expect("JSON");
        // Every member reached the typed claims, the ones validation read included.
        assert_eq!(Value::Object(claims.0.into_iter().collect()), all);
        let view = got.view;
        assert_eq!(view.iss.as_deref(), Some("https://issuer.example"));
        assert_eq!(view.aud.as_ref().map(|a| a.iter().count()), Some(2));
        assert_eq!(view.iat, Some(1_700_000_000.5));
        assert!(view.cnf.is_some() && view.nonce && view.tid.is_none() && view.tid_seen);
        let authorities = got.authorities.expect("authorities");
        assert_eq!(authorities.iter().collect::<Vec<_>>(), ["role:admin"]);
    }

    #[test]
    fn claims_not_read_as_a_map_still_get_the_view() {
        #[derive(Deserialize)]
        struct Newtype(Value);
        let claim = ScopeClaim::Default;
        let auth = authorities();
        let whole: Value = serde_json::from_str(CLAIMS).expect("JSON");

        let got = super::read::<Newtype>(CLAIMS.as_bytes(), &claim, &auth).expect("newtype");
        assert!(
            !got.one_pass,
            "a newtype is not walked: the separate readings answer"
        );
        assert_eq!(got.claims.expect("claims").0, whole);
        assert_eq!(got.view.sub.as_deref(), Some("alice"));
        assert_eq!(got.authorities.expect("authorities").len(), 1);

        let got = super::read::<Box<RawValue>>(CLAIMS.as_bytes(), &claim, &auth).expect("raw");
        assert_eq!(got.claims.expect("claims").get(), CLAIMS);
        assert_eq!(got.view.exp, Some(1_900_000_000.0));

        let got = super::read::<Option<RegisteredClaims>>(CLAIMS.as_bytes(), &claim, &auth)
            .expect("option");
        let claims = got.claims.expect("claims").expect("some");
        assert_eq!(claims.aud, ["api", "other"]);
        assert!(got.view.scope.is_some());
    }

    #[test]
    fn errors_are_reported_where_each_reading_reports_them() {
        let claim = ScopeClaim::Default;
        let auth = authorities();
        // The view refuses: the whole reading is malformed.
        for bad in [
            r#"{"exp":"soon"}"#,
            r#"{"iss":"a","iss":"b"}"#,
            r#"[1]"#,
            r#"{"sub":"a"} x"#,
        ] {
            assert!(
                read::<Value>(bad.as_bytes(), &claim, &auth).is_err(),
                "{bad}"
            );
        }
        // The typed claims refuse: the view is whole, the claims carry the shape error.
        #[derive(Debug, Deserialize)]
        struct NeedsTenant {
            #[allow(dead_code)]
            tenant: String,
        }
        let got =
            super::read::<NeedsTenant>(br#"{"iss":"i","exp":5}"#, &claim, &auth).expect("view");
        assert_eq!(got.view.iss.as_deref(), Some("i"));
        let e = got.claims.expect_err("shape");
        assert_eq!(
            e.description(),
            "the token's claims do not have the expected shape"
        );
        // A repeated authority claim: the claims are fine, the authorities refuse.
        let got =
            super::read::<Value>(br#"{"roles":["a"],"roles":["b"]}"#, &claim, &auth).expect("view");
        assert!(got.claims.is_ok());
        assert!(got.authorities.is_err());
        // A member validation reads with escapes in its name and its value.
        let got = super::read::<RegisteredClaims>(
            br#"{"\u0069ss":"a\/b","sub":"\u00e9"}"#,
            &claim,
            &auth,
        )
        .expect("escaped");
        assert_eq!(got.view.iss.as_deref(), Some("a/b"));
        assert!(
            got.one_pass,
            "escaped names and values are handed over in the one pass"
        );
        let claims = got.claims.expect("claims");
        assert_eq!(claims.iss.as_deref(), Some("a/b"));
        assert_eq!(claims.sub.as_deref(), Some("\u{e9}"));
    }

    /// Claims that keep what deserializes and skip the rest, errors ignored: legal serde.
    #[derive(Debug)]
    struct Forgiving(Vec<(String, Value)>);

    impl<'de> Deserialize<'de> for Forgiving {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Forgiving;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("claims")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Forgiving, A::Error> {
                    let mut kept = Vec::new();
                    while let Some(name) = map.next_key::<String>()? {
                        if let Ok(value) = map.next_value::<Value>() {
                            kept.push((name, value));
                        }
                    }
                    Ok(Forgiving(kept))
                }
            }
            d.deserialize_map(V)
        }
    }

    #[test]
    fn a_refusal_the_claims_type_ignores_still_refuses() {
        let auth = authorities();
        for bad in [
            r#"{"iss":"https://good","iss":"https://evil","exp":5}"#,
            r#"{"active":true,"exp":"soon"}"#,
            r#"{"roles":["a"],"roles":["b"],"exp":5}"#,
        ] {
            let got = super::read::<Forgiving>(bad.as_bytes(), &ScopeClaim::Default, &auth);
            let refused = match &got {
                Err(Malformed) => true,
                Ok(read) => read.authorities.is_err(),
            };
            assert!(refused, "{bad}");
        }
        let kept = super::read::<Forgiving>(br#"{"iss":"i","x":[1]}"#, &ScopeClaim::Default, &auth)
            .expect("view");
        assert!(kept.one_pass);
        assert_eq!(kept.claims.expect("claims").0.len(), 2);
    }

    /// A value whose `Deserialize` asks for a number but takes a string too.
    #[derive(Debug, PartialEq)]
    struct Lenient(String);

    impl<'de> Deserialize<'de> for Lenient {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Lenient;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a number")
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lenient, E> {
                    Ok(Lenient(v.to_string()))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
                    Ok(Lenient(v.to_owned()))
                }
            }
            d.deserialize_u64(V)
        }
    }

    #[test]
    fn type_hints_are_kept_as_serde_json_keeps_them() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Hinted {
            sub: Lenient,
        }
        let auth = AuthorityClaims::default();
        let claim = ScopeClaim::Default;
        // serde_json refuses a string where a number is asked for, whatever the visitor.
        let got = super::read::<Hinted>(br#"{"sub":"42"}"#, &claim, &auth).expect("view");
        assert!(serde_json::from_str::<Hinted>(r#"{"sub":"42"}"#).is_err());
        assert!(got.claims.is_err(), "a string handed to a number hint");
        assert!(
            super::read::<Hinted>(br#"{"sub":42}"#, &claim, &auth).is_err(),
            "the view refuses a numeric sub"
        );
        // A number asked for as f32, and member names asked for as numbers, go to the
        // separate readings, which give serde_json's answer.
        #[derive(Debug, Deserialize, PartialEq)]
        struct Float {
            exp: f32,
        }
        let got = super::read::<Float>(br#"{"exp":1.5}"#, &claim, &auth).expect("view");
        assert!(!got.one_pass);
        assert_eq!(got.claims.expect("claims"), Float { exp: 1.5 });
        let got = super::read::<HashMap<u32, Value>>(br#"{"7":1}"#, &claim, &auth).expect("view");
        assert!(!got.one_pass);
        assert_eq!(got.claims.expect("claims").get(&7), Some(&Value::from(1)));
    }

    #[test]
    fn raw_members_keep_serde_json_nesting_budget() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Tenant {
            tid: Value,
        }
        let claim = ScopeClaim::Default;
        let auth = AuthorityClaims::default();
        for depth in [10, 99, 100, 101, 126, 127, 128, 140] {
            let json = format!(r#"{{"tid":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
            let got = super::read::<Tenant>(json.as_bytes(), &claim, &auth);
            let alone = serde_json::from_str::<Tenant>(&json).is_ok();
            let view = super::super::parse(json.as_bytes(), &claim).is_ok();
            match got {
                Ok(read) => {
                    assert!(view, "depth {depth}");
                    assert_eq!(read.claims.is_ok(), alone, "depth {depth}");
                    assert_eq!(read.one_pass, depth <= MAX_RAW_DEPTH, "depth {depth}");
                }
                Err(Malformed) => assert!(!view, "depth {depth}"),
            }
        }
    }
}
