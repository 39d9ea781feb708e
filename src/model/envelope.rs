//! The sealed envelope: numbers computed on a site's private data travel as an age file
//! encrypted to several X25519 recipients, described by a manifest (inside the signed record)
//! that binds the ciphertext and plaintext digests, the recipient list and the payload schema.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::ids::Sha256;

/// Largest sealed payload (ciphertext) a registry accepts.
pub const MAX_SEALED_BYTES: usize = 1 << 20;

/// One recipient of a sealed payload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedFor {
    pub handle: String,
    /// The age recipient (`age1...`) the payload was encrypted to.
    pub age: String,
}

/// The manifest of a sealed payload, embedded in the record that owns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// File name of the `.age` payload, in the same folder as the record.
    pub file: String,
    /// Payload schema; `metrics/1` is a flat TOML table of name -> number.
    pub schema: String,
    pub ciphertext_sha256: Sha256,
    pub plaintext_sha256: Sha256,
    /// Everyone who can decrypt it, sorted by handle.
    pub recipients: Vec<SealedFor>,
}

/// Metrics, statistics and compatibility reports: a flat TOML table of name -> number.
pub const SCHEMA_METRICS: &str = "metrics/1";
/// A release's pseudonym mapping (`model::pseudonyms`).
pub const SCHEMA_PSEUDONYMS: &str = "pseudonyms/1";

/// Encrypts `plaintext` to every recipient. Returns the manifest and the ciphertext.
pub fn seal(
    plaintext: &[u8],
    recipients: &[SealedFor],
    file: &str,
    schema: &str,
) -> Result<(Sealed, Vec<u8>), ModelError> {
    if recipients.is_empty() {
        return Err(ModelError::Seal(format!(
            "{file}: no recipients to seal to"
        )));
    }
    let mut sorted = recipients.to_vec();
    sorted.sort();
    sorted.dedup();
    let parsed: Vec<age::x25519::Recipient> = sorted
        .iter()
        .map(|r| {
            r.age.parse::<age::x25519::Recipient>().map_err(|e| {
                ModelError::Seal(format!(
                    "{file}: recipient {} has a bad age key: {e}",
                    r.handle
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let encryptor =
        age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| ModelError::Seal(format!("{file}: {e}")))?;
    let mut ciphertext = Vec::new();
    let mut w = encryptor
        .wrap_output(&mut ciphertext)
        .map_err(|e| ModelError::Seal(format!("{file}: {e}")))?;
    w.write_all(plaintext)
        .and_then(|_| w.finish().map(|_| ()))
        .map_err(|e| ModelError::Seal(format!("{file}: {e}")))?;
    let sealed = Sealed {
        file: file.to_string(),
        schema: schema.to_string(),
        ciphertext_sha256: Sha256::of(&ciphertext),
        plaintext_sha256: Sha256::of(plaintext),
        recipients: sorted,
    };
    Ok((sealed, ciphertext))
}

/// Why a sealed payload could not be opened, as a typed code: releases record it
/// ([`Unreadable`]) and merges refuse with it, so no decision depends on message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The `.age` file's digest is not the one the manifest signs.
    BadCiphertextHash,
    /// Not an age file.
    NotAgeFile(String),
    /// None of the stanzas opens with this identity (sealed to someone else).
    NotARecipient,
    /// The header opened but the payload stream did not decrypt (truncated or tampered).
    Corrupt(String),
    /// Decrypted, but the plaintext's digest is not the one the manifest signs.
    BadPlaintextHash,
}

impl OpenError {
    /// The reason code this failure is recorded under.
    pub fn code(&self) -> Unreadable {
        match self {
            OpenError::BadCiphertextHash => Unreadable::BadCiphertextHash,
            OpenError::NotAgeFile(_) | OpenError::NotARecipient | OpenError::Corrupt(_) => {
                Unreadable::Undecryptable
            }
            OpenError::BadPlaintextHash => Unreadable::BadPlaintextHash,
        }
    }

    fn into_model(self, f: &str) -> ModelError {
        match self {
            OpenError::BadCiphertextHash => ModelError::Seal(format!(
                "{f}: ciphertext does not match the sha256 in its manifest"
            )),
            OpenError::NotAgeFile(e) => ModelError::Seal(format!("{f}: not an age file: {e}")),
            OpenError::NotARecipient => ModelError::NotARecipient(f.to_string()),
            OpenError::Corrupt(e) => ModelError::Seal(format!("{f}: decryption failed: {e}")),
            OpenError::BadPlaintextHash => ModelError::Seal(format!(
                "{f}: plaintext does not match the sha256 in its manifest"
            )),
        }
    }
}

/// The closed set of reasons a sealed payload is unreadable (docs/format.md, "Exclusions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unreadable {
    /// The `.age` file the manifest names is not in the registry.
    MissingPayload,
    /// The `.age` file is not the one the manifest's `ciphertext_sha256` names.
    BadCiphertextHash,
    /// The reader's key opens none of its stanzas (sealed to others), or it is not age.
    Undecryptable,
    /// It decrypts, to bytes whose sha256 is not the manifest's `plaintext_sha256`.
    BadPlaintextHash,
    /// It decrypts to the signed bytes, but they break the payload schema.
    MalformedPayload,
}

impl Unreadable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unreadable::MissingPayload => "missing-payload",
            Unreadable::BadCiphertextHash => "bad-ciphertext-hash",
            Unreadable::Undecryptable => "undecryptable",
            Unreadable::BadPlaintextHash => "bad-plaintext-hash",
            Unreadable::MalformedPayload => "malformed-payload",
        }
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decrypts a payload with one identity, checking both digests against the manifest.
pub fn open(
    sealed: &Sealed,
    ciphertext: &[u8],
    identity: &dyn age::Identity,
) -> Result<Vec<u8>, ModelError> {
    try_open(sealed, ciphertext, identity).map_err(|e| e.into_model(&sealed.file))
}

/// [`open`], with the failure as a typed code.
pub fn try_open(
    sealed: &Sealed,
    ciphertext: &[u8],
    identity: &dyn age::Identity,
) -> Result<Vec<u8>, OpenError> {
    if Sha256::of(ciphertext) != sealed.ciphertext_sha256 {
        return Err(OpenError::BadCiphertextHash);
    }
    check_header(ciphertext).map_err(OpenError::NotAgeFile)?;
    let decryptor =
        age::Decryptor::new(ciphertext).map_err(|e| OpenError::NotAgeFile(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity))
        .map_err(|_| OpenError::NotARecipient)?;
    let mut plain = Vec::new();
    reader
        .read_to_end(&mut plain)
        .map_err(|e| OpenError::Corrupt(e.to_string()))?;
    if Sha256::of(&plain) != sealed.plaintext_sha256 {
        return Err(OpenError::BadPlaintextHash);
    }
    Ok(plain)
}

/// Largest age header accepted, and most stanzas in it: a sealed payload has one X25519 stanza
/// per recipient (the committee and the data owner) plus age's grease stanza. age's header
/// parsing grows faster than linearly with the stanza count (1,700 repeated stanzas took 11 s).
const MAX_HEADER_BYTES: usize = 32 * 1024;
const MAX_STANZAS: usize = 128;
/// Longest stanza line (`-> type args`) and body line (age wraps bodies at 64 columns).
const MAX_STANZA_LINE: usize = 256;
const MAX_BODY_LINE: usize = 64;

/// Checks the shape of an age header before the age crate parses it: its parser slows down
/// sharply on very long lines (a single 49 KB stanza line took 1.7 s, and a sealed file may be
/// 1 MiB), so a data owner could stall the committee member who decrypts their result.
fn check_header(ciphertext: &[u8]) -> Result<(), String> {
    const INTRO: &[u8] = b"age-encryption.org/v1\n";
    let rest = ciphertext
        .strip_prefix(INTRO)
        .ok_or("not a binary age v1 file")?;
    let mut seen = INTRO.len();
    let mut stanzas = 0;
    // age's grammar: stanzas of a `-> type args` line and a body wrapped at 64 columns whose
    // last line is shorter (maybe empty), then the `--- mac` line.
    let mut in_body = false;
    for line in rest.split(|b| *b == b'\n') {
        let stanza = line.starts_with(b"-> ");
        let max = if stanza {
            MAX_STANZA_LINE
        } else {
            MAX_BODY_LINE
        };
        if line.len() > max {
            return Err(format!("the age header has a line longer than {max} bytes"));
        }
        seen += line.len() + 1;
        if seen > MAX_HEADER_BYTES {
            return Err(format!(
                "the age header is longer than {MAX_HEADER_BYTES} bytes"
            ));
        }
        match (in_body, stanza) {
            (false, _) if line.starts_with(b"--- ") => return Ok(()),
            (false, true) => {
                stanzas += 1;
                if stanzas > MAX_STANZAS {
                    return Err(format!(
                        "the age header has more than {MAX_STANZAS} stanzas"
                    ));
                }
                in_body = true;
            }
            (false, false) => return Err("the age header has a line outside any stanza".into()),
            (true, true) => return Err("an age stanza lacks its final short body line".into()),
            (true, false) => in_body = line.len() == MAX_BODY_LINE,
        }
    }
    Err("age header is not terminated".into())
}

/// Counts the X25519 recipient stanzas in an age header. age does not name recipients, so
/// verification compares this count with the signed recipient list. (age also writes random
/// "grease" stanzas of other types, which are not recipients.)
pub fn stanza_count(ciphertext: &[u8]) -> Result<usize, ModelError> {
    const INTRO: &[u8] = b"age-encryption.org/v1\n";
    if !ciphertext.starts_with(INTRO) {
        return Err(ModelError::Seal("not a binary age v1 file".into()));
    }
    let mut count = 0;
    for line in ciphertext[INTRO.len()..].split(|b| *b == b'\n') {
        if line.starts_with(b"---") {
            return Ok(count);
        }
        if line.starts_with(b"-> X25519 ") {
            count += 1;
        }
    }
    Err(ModelError::Seal("age header is not terminated".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn who(handle: &str) -> (SealedFor, age::x25519::Identity) {
        let id = age::x25519::Identity::generate();
        (
            SealedFor {
                handle: handle.into(),
                age: id.to_public().to_string(),
            },
            id,
        )
    }

    #[test]
    fn seal_to_several_and_open_by_each() {
        let (a, ida) = who("alice");
        let (b, idb) = who("bob");
        let (_, outsider) = who("eve");
        let (m, ct) = seal(
            b"auc = 0.9\n",
            &[b.clone(), a.clone()],
            "1.result.age",
            SCHEMA_METRICS,
        )
        .unwrap();
        assert_eq!(m.recipients, vec![a, b], "sorted");
        assert_eq!(stanza_count(&ct).unwrap(), 2);
        assert_eq!(open(&m, &ct, &ida).unwrap(), b"auc = 0.9\n");
        assert_eq!(open(&m, &ct, &idb).unwrap(), b"auc = 0.9\n");
        let e = open(&m, &ct, &outsider).unwrap_err();
        assert!(matches!(e, ModelError::NotARecipient(_)), "{e}");
        let _ = ida.to_string().expose_secret().len();
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let (a, ida) = who("alice");
        let (m, mut ct) = seal(b"x = 1\n", &[a], "f.age", SCHEMA_METRICS).unwrap();
        let last = ct.len() - 1;
        ct[last] ^= 1;
        let e = open(&m, &ct, &ida).unwrap_err().to_string();
        assert!(e.contains("does not match the sha256"), "{e}");
    }

    /// A stanza line tens of kilobytes long made age's parser take seconds (fuzzing found it).
    #[test]
    fn overlong_header_lines_are_refused_before_age_parses_them() {
        let (a, ida) = who("alice");
        let (mut m, ct) = seal(b"x = 1\n", &[a], "f.age", SCHEMA_METRICS).unwrap();
        let text = String::from_utf8_lossy(&ct).into_owned();
        let (head, _) = text.split_once("\n-> ").unwrap();
        let long = format!("{head}\n-> X25519 {}\n", "A".repeat(50_000));
        let mut bad = long.into_bytes();
        bad.extend_from_slice(&ct[head.len() + 1..]);
        m.ciphertext_sha256 = Sha256::of(&bad);
        let e = open(&m, &bad, &ida).unwrap_err().to_string();
        assert!(e.contains("line longer than 256 bytes"), "{e}");
        let many = format!("{head}\n{}", "-> X25519 AAAA\nAAAA\n".repeat(200));
        let mut bad = many.into_bytes();
        bad.extend_from_slice(&ct[head.len() + 1..]);
        m.ciphertext_sha256 = Sha256::of(&bad);
        let e = open(&m, &bad, &ida).unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
    }
}
