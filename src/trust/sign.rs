//! Signatures over exact file bytes. The trusted comment binds the registry id, the format
//! version, the repository path, the file's sha256, its kind and the signer, so a signature
//! cannot be moved to another path, replayed into another registry or reused for other bytes.

use crate::model::{FORMAT_VERSION, Sha256};

use super::TrustError;
use super::keys::{Signer, key_id};

/// Prefix of every cohort trusted comment.
pub const COMMENT_TAG: &str = "cohort";

/// The fields of a trusted comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub registry: Sha256,
    pub format: u32,
    pub path: String,
    pub sha256: Sha256,
    pub kind: String,
    pub signer: String,
}

impl Comment {
    /// `cohort format=1 registry=<id> path=<path> sha256=<hex> kind=<kind> signer=<handle>`
    pub fn render(&self) -> String {
        format!(
            "{COMMENT_TAG} format={} registry={} path={} sha256={} kind={} signer={}",
            self.format, self.registry, self.path, self.sha256, self.kind, self.signer
        )
    }

    /// Parses a trusted comment; every field must be present exactly once, in order.
    pub fn parse(s: &str) -> Result<Comment, String> {
        let mut it = s.split(' ');
        if it.next() != Some(COMMENT_TAG) {
            return Err("the trusted comment is not a cohort comment".into());
        }
        let mut field = |name: &str| -> Result<String, String> {
            let part = it
                .next()
                .ok_or_else(|| format!("the trusted comment lacks `{name}`"))?;
            part.strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
                .ok_or_else(|| format!("the trusted comment has `{part}` where `{name}=` belongs"))
        };
        let format = field("format")?
            .parse()
            .map_err(|_| "the trusted comment's format is not a number".to_string())?;
        let registry = field("registry")?.parse()?;
        let path = field("path")?;
        let sha256 = field("sha256")?.parse()?;
        let kind = field("kind")?;
        let signer = field("signer")?;
        if it.next().is_some() {
            return Err("the trusted comment has extra fields".into());
        }
        Ok(Comment {
            registry,
            format,
            path,
            sha256,
            kind,
            signer,
        })
    }
}

/// Checks a rendered comment is one line without trailing whitespace (minisign trims on read,
/// so such a comment would sign but never verify).
fn check_comment_text(s: &str) -> Result<(), TrustError> {
    if s.contains(['\n', '\r']) || s.trim_end() != s || s.trim_start() != s {
        return Err(TrustError::Key(format!(
            "refusing to sign: the trusted comment must be one line without surrounding whitespace: {s:?}"
        )));
    }
    Ok(())
}

/// Signs `bytes`, which will live at `path` in the registry `registry`, as `kind`.
pub fn sign(
    signer: &Signer,
    registry: &Sha256,
    path: &str,
    kind: &str,
    bytes: &[u8],
) -> Result<Vec<u8>, TrustError> {
    sign_as(signer, &signer.handle, registry, path, kind, bytes)
}

/// Like [`sign`], naming `handle` as the signer: a key kept locally under another name (an
/// admin's next key, before the root that lists it is merged) signs for its registry handle.
pub fn sign_as(
    signer: &Signer,
    handle: &str,
    registry: &Sha256,
    path: &str,
    kind: &str,
    bytes: &[u8],
) -> Result<Vec<u8>, TrustError> {
    let comment = Comment {
        registry: registry.clone(),
        format: FORMAT_VERSION,
        path: path.to_string(),
        sha256: Sha256::of(bytes),
        kind: kind.to_string(),
        signer: handle.to_string(),
    }
    .render();
    check_comment_text(&comment)?;
    let untrusted = format!("signature from cohort key {}", key_id(&signer.pk));
    let sig = signer
        .sign_detached(bytes, &comment, &untrusted)
        .map_err(|e| TrustError::Key(format!("cannot sign {path}: {e}")))?;
    Ok(sig.into_bytes())
}

/// Why a signature does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigProblem {
    Malformed(String),
    WrongKey {
        signed_with: String,
        expected: String,
    },
    BadSignature,
    Comment(String),
}

impl std::fmt::Display for SigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigProblem::Malformed(s) => write!(f, "malformed signature file: {s}"),
            SigProblem::WrongKey {
                signed_with,
                expected,
            } => write!(
                f,
                "signed with key {signed_with}, but the signer's valid key is {expected}"
            ),
            SigProblem::BadSignature => f.write_str(
                "signature does not match the file's bytes (tampered file or signature)",
            ),
            SigProblem::Comment(s) => f.write_str(s),
        }
    }
}

/// Bytes of a minisign signature line: algorithm (2), key id (8), Ed25519 signature (64).
const SIG_LINE_BYTES: usize = 2 + 8 + 64;
/// Bytes of the global signature (over the signature and the trusted comment).
const GLOBAL_SIG_BYTES: usize = 64;
/// The prehashed (BLAKE2b) Ed25519 algorithm, the only one cohort signs with.
const ALG_PREHASHED: &[u8; 2] = b"ED";
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";

/// What a well-formed signature file holds, decoded. Checked by cohort before the minisign
/// crate sees the text: minisign slices the global signature without checking its length and
/// panics on a short one, which on an append-only registry would crash every verifier for
/// ever.
struct SigShape {
    key_id: [u8; 8],
}

/// Checks the four lines of a signature box: both comment prefixes, a strictly base64 signature
/// line of exactly 74 bytes with the prehashed algorithm, a strictly base64 global signature of
/// exactly 64 bytes, and nothing after them but one final newline.
/// The key id a signature file names, if it has a signature file's shape.
pub fn signature_key_id(sig_text: &[u8]) -> Option<[u8; 8]> {
    let text = std::str::from_utf8(sig_text).ok()?;
    check_shape(text).ok().map(|s| s.key_id)
}

fn check_shape(text: &str) -> Result<SigShape, String> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<&str> = body.split('\n').collect();
    if lines.len() != 4 {
        return Err(format!(
            "has {} lines; a signature file has exactly 4",
            lines.len()
        ));
    }
    if lines.iter().any(|l| l.contains('\r')) {
        return Err("contains a carriage return (check core.autocrlf)".into());
    }
    if !lines[0].starts_with(UNTRUSTED_PREFIX) {
        return Err(format!("line 1 does not start with `{UNTRUSTED_PREFIX}`"));
    }
    let sig = decode_base64(lines[1])
        .filter(|b| b.len() == SIG_LINE_BYTES)
        .ok_or_else(|| format!("line 2 is not the base64 of a {SIG_LINE_BYTES}-byte signature"))?;
    if &sig[..2] != ALG_PREHASHED {
        return Err("line 2 names an algorithm other than prehashed Ed25519 (legacy or unknown signatures are not accepted)".into());
    }
    if !lines[2].starts_with(TRUSTED_PREFIX) {
        return Err(format!("line 3 does not start with `{TRUSTED_PREFIX}`"));
    }
    decode_base64(lines[3])
        .filter(|b| b.len() == GLOBAL_SIG_BYTES)
        .ok_or_else(|| {
            format!("line 4 is not the base64 of a {GLOBAL_SIG_BYTES}-byte global signature")
        })?;
    let mut key_id = [0u8; 8];
    key_id.copy_from_slice(&sig[2..10]);
    Ok(SigShape { key_id })
}

/// Strict standard base64 with padding (what minisign writes): no whitespace, no missing or
/// extra padding, no stray bits in the last symbol.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let groups = b.len() / 4;
    for (i, g) in b.chunks_exact(4).enumerate() {
        let pad = g.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != groups) {
            return None;
        }
        let mut n = 0u32;
        for c in &g[..4 - pad] {
            n = (n << 6) | value(*c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        // Canonical: the bits the padding stands for must be zero.
        if bytes[keep..].iter().any(|x| *x != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Some(out)
}

fn format_key_id(id: &[u8; 8]) -> String {
    format!("{:016X}", u64::from_le_bytes(*id))
}

/// The key id a signature file claims, without verifying anything (for error messages).
pub fn claimed_key_id(sig_text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(sig_text).ok()?;
    check_shape(text).ok().map(|s| format_key_id(&s.key_id))
}

/// Verifies `sig_text` over `bytes` with `pk` and returns the parsed trusted comment. The caller
/// checks the comment's fields against where the file sits. Never panics: the text's shape is
/// checked first, and the minisign calls run under `catch_unwind` as a second line of defence.
pub fn verify(
    pk: &minisign::PublicKey,
    sig_text: &[u8],
    bytes: &[u8],
) -> Result<Comment, SigProblem> {
    let text =
        std::str::from_utf8(sig_text).map_err(|_| SigProblem::Malformed("not UTF-8".into()))?;
    let shape = check_shape(text).map_err(SigProblem::Malformed)?;
    if shape.key_id.as_slice() != pk.keynum() {
        return Err(SigProblem::WrongKey {
            signed_with: format_key_id(&shape.key_id),
            expected: key_id(pk),
        });
    }
    let checked = std::panic::catch_unwind(|| -> Result<String, SigProblem> {
        // `SignatureBox::from(String)` panics on bad input; `from_string` reports it.
        let sig = minisign::SignatureBox::from_string(text)
            .map_err(|e| SigProblem::Malformed(e.to_string()))?;
        if !sig.is_prehashed() {
            return Err(SigProblem::Malformed(
                "legacy (non-prehashed) signatures are not accepted".into(),
            ));
        }
        let good = match super::fastsig::verify(pk, &sig, bytes) {
            Some(good) => good,
            None => {
                minisign::verify(pk, &sig, std::io::Cursor::new(bytes), true, false, false).is_ok()
            }
        };
        if !good {
            return Err(SigProblem::BadSignature);
        }
        sig.trusted_comment()
            .map_err(|e| SigProblem::Malformed(e.to_string()))
    })
    .unwrap_or_else(|_| {
        Err(SigProblem::Malformed(
            "the signature library failed on this file (refused rather than trusted)".into(),
        ))
    })?;
    Comment::parse(&checked).map_err(SigProblem::Comment)
}

/// The trusted comment of a signature whose cryptography was checked before (see
/// [`super::SigCache`]), parsed without checking it again.
pub fn trusted_comment(sig_text: &[u8]) -> Result<Comment, SigProblem> {
    let text =
        std::str::from_utf8(sig_text).map_err(|_| SigProblem::Malformed("not UTF-8".into()))?;
    let sig = minisign::SignatureBox::from_string(text)
        .map_err(|e| SigProblem::Malformed(e.to_string()))?;
    let comment = sig
        .trusted_comment()
        .map_err(|e| SigProblem::Malformed(e.to_string()))?;
    Comment::parse(&comment).map_err(SigProblem::Comment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Home;
    use crate::trust::keys;

    fn signer(handle: &str) -> (tempfile::TempDir, Signer) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        keys::generate(&home, handle, None, std::time::SystemTime::now()).unwrap();
        let s = keys::unlock(&home, handle, &mut || unreachable!()).unwrap();
        (dir, s)
    }

    #[test]
    fn golden_vectors() {
        let (_d, alice) = signer("alice");
        let (_e, bob) = signer("bob");
        let reg = Sha256::of(b"registry");
        let bytes = b"format = 1\n";
        let sig = sign(&alice, &reg, "users/alice/v1.toml", "user", bytes).unwrap();
        // good
        let c = verify(&alice.pk, &sig, bytes).unwrap();
        assert_eq!(c.path, "users/alice/v1.toml");
        assert_eq!(c.signer, "alice");
        assert_eq!(c.sha256, Sha256::of(bytes));
        assert_eq!(c.registry, reg);
        // wrong key
        assert!(matches!(
            verify(&bob.pk, &sig, bytes),
            Err(SigProblem::WrongKey { .. })
        ));
        // tampered bytes
        assert_eq!(
            verify(&alice.pk, &sig, b"format = 2\n"),
            Err(SigProblem::BadSignature)
        );
        // tampered trusted comment
        let text = String::from_utf8(sig.clone())
            .unwrap()
            .replace("path=users/alice", "path=users/alicf");
        assert_eq!(
            verify(&alice.pk, text.as_bytes(), bytes),
            Err(SigProblem::BadSignature)
        );
        // garbage never panics
        assert!(matches!(
            verify(&alice.pk, b"garbage", bytes),
            Err(SigProblem::Malformed(_))
        ));
        assert!(matches!(
            verify(&alice.pk, b"", bytes),
            Err(SigProblem::Malformed(_))
        ));
    }

    /// Issue 14: a global signature that decodes to 3 bytes made minisign panic.
    #[test]
    fn malformed_boxes_are_problems_not_panics() {
        let (_d, alice) = signer("alice");
        let reg = Sha256::of(b"registry");
        let bytes = b"format = 1\n";
        let good = String::from_utf8(sign(&alice, &reg, "a.toml", "user", bytes).unwrap()).unwrap();
        let lines: Vec<&str> = good.lines().collect();
        let with = |i: usize, v: &str| {
            let mut l = lines.clone();
            l[i] = v;
            format!("{}\n", l.join("\n"))
        };
        let cases = [
            (with(3, "YWJj"), "line 4"),
            (with(3, ""), "line 4"),
            (with(3, &format!("{}AAAA", lines[3])), "line 4"),
            (with(3, &lines[3][..84]), "line 4"),
            (with(1, "YWJj"), "line 2"),
            (with(1, &lines[1][..96]), "line 2"),
            (with(1, &format!(" {}", lines[1])), "line 2"),
            (with(0, "comment"), "line 1"),
            (with(2, "comment"), "line 3"),
            (format!("{good}extra\n"), "5 lines"),
            (good.replace('\n', "\r\n"), "carriage return"),
            (lines[..3].join("\n"), "3 lines"),
        ];
        for (text, why) in cases {
            match verify(&alice.pk, text.as_bytes(), bytes) {
                Err(SigProblem::Malformed(m)) => assert!(m.contains(why), "{why}: {m}"),
                other => panic!("{why}: {other:?}"),
            }
            assert_eq!(claimed_key_id(text.as_bytes()), None, "{why}");
        }
        // A legacy (non-prehashed) algorithm is refused by shape.
        let mut raw = decode_base64(lines[1]).unwrap();
        raw[1] = b'd';
        let legacy = with(1, &encode(&raw));
        let e = verify(&alice.pk, legacy.as_bytes(), bytes).unwrap_err();
        assert!(e.to_string().contains("algorithm"), "{e}");
        assert_eq!(
            claimed_key_id(good.as_bytes()),
            Some(key_id(&alice.pk)),
            "the key id of a good file"
        );
    }

    fn encode(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    #[test]
    fn strict_base64() {
        assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
        assert_eq!(decode_base64("YWI=").unwrap(), b"ab");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        for bad in [
            "", "YWJ", "YQ=", "YR==", "Y===", "YQ==YWJj", "YW J", "YWJ\n",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn comment_round_trip_and_refusals() {
        let c = Comment {
            registry: Sha256::of(b"r"),
            format: 1,
            path: "a/b.toml".into(),
            sha256: Sha256::of(b"x"),
            kind: "user".into(),
            signer: "alice".into(),
        };
        assert_eq!(Comment::parse(&c.render()).unwrap(), c);
        assert!(Comment::parse("timestamp:123").is_err());
        assert!(Comment::parse(&format!("{} extra=1", c.render())).is_err());
        assert!(check_comment_text("a b ").is_err());
        assert!(check_comment_text("a\nb").is_err());
    }
}
