//! Signatures over exact file bytes. The trusted comment binds the registry id, the format
//! version, the repository path, the file's sha256, its kind and the signer, so a signature
//! cannot be moved to another path, replayed into another registry or reused for other bytes.

use std::io::Cursor;

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
    let sig = minisign::sign(
        Some(&signer.pk),
        &signer.sk,
        Cursor::new(bytes),
        Some(&comment),
        Some(&format!("signature from cohort key {}", key_id(&signer.pk))),
    )
    .map_err(|e| TrustError::Key(format!("cannot sign {path}: {e}")))?;
    Ok(sig.into_string().into_bytes())
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

/// The key id a signature file claims, without verifying anything (for error messages).
pub fn claimed_key_id(sig_text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(sig_text).ok()?;
    let b = minisign::SignatureBox::from_string(text).ok()?;
    let mut le = [0u8; 8];
    le.copy_from_slice(&b.keynum()[..8]);
    Some(format!("{:016X}", u64::from_le_bytes(le)))
}

/// Verifies `sig_text` over `bytes` with `pk` and returns the parsed trusted comment. The caller
/// checks the comment's fields against where the file sits.
pub fn verify(
    pk: &minisign::PublicKey,
    sig_text: &[u8],
    bytes: &[u8],
) -> Result<Comment, SigProblem> {
    let text =
        std::str::from_utf8(sig_text).map_err(|_| SigProblem::Malformed("not UTF-8".into()))?;
    // `SignatureBox::from(String)` panics on bad input; `from_string` reports it.
    let sig = minisign::SignatureBox::from_string(text)
        .map_err(|e| SigProblem::Malformed(e.to_string()))?;
    if !sig.is_prehashed() {
        return Err(SigProblem::Malformed(
            "legacy (non-prehashed) signatures are not accepted".into(),
        ));
    }
    if sig.keynum() != pk.keynum() {
        return Err(SigProblem::WrongKey {
            signed_with: claimed_key_id(sig_text).unwrap_or_default(),
            expected: key_id(pk),
        });
    }
    minisign::verify(pk, &sig, Cursor::new(bytes), true, false, false)
        .map_err(|_| SigProblem::BadSignature)?;
    let comment = sig
        .trusted_comment()
        .map_err(|e| SigProblem::Malformed(e.to_string()))?;
    Comment::parse(&comment).map_err(SigProblem::Comment)
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
