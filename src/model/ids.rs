//! Identifier rules shared by every record: named ids (handles, cube and benchmark names),
//! content-derived hex ids and sha256 digests. Strict so that paths stay portable and ids
//! cannot collide by case or Unicode tricks.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ModelError;

/// Longest named id.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a named id: ASCII `[a-z0-9_-]`, a letter first, at most 64 characters.
pub fn check_name(what: &str, s: &str) -> Result<(), ModelError> {
    let bad = |why: &str| ModelError::BadId {
        what: what.to_string(),
        id: s.to_string(),
        why: why.to_string(),
    };
    if s.is_empty() {
        return Err(bad("is empty"));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(bad("is longer than 64 characters"));
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad(
            "has upper-case letters (ids are lower-case; use the lower-case form)",
        ));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(bad("may only contain a-z, 0-9, '_' and '-'"));
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Err(bad("must start with a letter"));
    }
    Ok(())
}

/// Checks a content-derived id (datasets): 64 lower-case hex digits.
pub fn check_hex_id(what: &str, s: &str) -> Result<(), ModelError> {
    if is_sha256_hex(s) {
        Ok(())
    } else {
        Err(ModelError::BadId {
            what: what.to_string(),
            id: s.to_string(),
            why: "must be 64 lower-case hex digits".into(),
        })
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A sha256 digest written as 64 lower-case hex digits. Parsing refuses anything else, so a
/// record with a malformed digest never deserializes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256(String);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256 {
        use sha2::Digest;
        Sha256::from_digest(&sha2::Sha256::digest(bytes))
    }
    /// The 32 bytes the digits spell (zeros when they are not 64 hex digits, which no checked
    /// digest is).
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if hex::decode_to_slice(&self.0, &mut out).is_err() {
            return [0; 32];
        }
        out
    }

    pub fn from_digest(d: &[u8]) -> Sha256 {
        // Into a buffer at once: `hex::encode` goes a char at a time, which a check of
        // 100,000 cached digests notices.
        let mut hex = vec![0u8; d.len() * 2];
        hex::encode_to_slice(d, &mut hex).expect("twice as many digits as bytes");
        Sha256(String::from_utf8(hex).expect("hex digits are ASCII"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The first 12 hex digits, for display.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl TryFrom<String> for Sha256 {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if is_sha256_hex(&s) {
            Ok(Sha256(s))
        } else {
            Err(format!(
                "`{s}` is not a sha256 digest (64 lower-case hex digits)"
            ))
        }
    }
}

impl std::str::FromStr for Sha256 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sha256::try_from(s.to_string())
    }
}

impl From<Sha256> for String {
    fn from(s: Sha256) -> String {
        s.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.short())
    }
}

/// Checks an RFC 3339 UTC timestamp as cohort writes them (`2026-11-27T21:00:00Z`).
pub fn check_timestamp(what: &str, s: &str) -> Result<(), ModelError> {
    humantime::parse_rfc3339(s)
        .map(|_| ())
        .map_err(|e| ModelError::Invalid {
            what: what.to_string(),
            why: format!("`{s}` is not an RFC 3339 UTC timestamp ({e})"),
        })
}

/// Formats a time as cohort's timestamp form.
pub fn timestamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The id of a dataset: binds the owner, the preparator version and the content hash, so two
/// sites preparing the same public data never collide (docs/format.md "Dataset ids").
pub fn dataset_id(owner: &str, preparator: &Sha256, content: &Sha256) -> String {
    Sha256::of(format!("cohort-dataset/1\n{owner}\n{preparator}\n{content}\n").as_bytes()).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "alice", "chest-xray_2", &"a".repeat(64)] {
            check_name("handle", ok).unwrap();
        }
        for bad in [
            "",
            "Alice",
            "1abc",
            "-a",
            "a.b",
            "a/b",
            "é",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(check_name("handle", bad).is_err(), "{bad}");
        }
        let e = check_name("handle", "Alice").unwrap_err().to_string();
        assert!(e.contains("upper-case"), "{e}");
    }

    #[test]
    fn digests() {
        let d = Sha256::of(b"abc");
        assert_eq!(
            d.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Sha256::try_from("BA7816".to_string()).is_err());
        assert!(Sha256::try_from(d.as_str().to_uppercase()).is_err());
        check_hex_id("dataset id", d.as_str()).unwrap();
    }

    #[test]
    fn timestamps() {
        check_timestamp("created", "2026-11-27T21:00:00Z").unwrap();
        assert!(check_timestamp("created", "yesterday").is_err());
        let now = timestamp(std::time::SystemTime::UNIX_EPOCH);
        assert_eq!(now, "1970-01-01T00:00:00Z");
    }
}
