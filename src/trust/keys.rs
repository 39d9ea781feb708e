//! Local identities: a minisign signing key (passphrase-protected unless the user opts out)
//! and an age X25519 identity per handle, stored under `$COHORT_HOME/keys/<handle>/` with
//! secret files created 0600.

use std::fs;
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::model::ids::{check_name, timestamp};
use crate::storage::{Home, write_atomic, write_atomic_mode};

use super::TrustError;

/// The raw 32-byte Ed25519 key (defined beside the records' key check, which needs it too).
pub use crate::model::raw_key;

const SECRET_KEY: &str = "minisign.key";
const AGE_KEY: &str = "age.key";
const IDENTITY: &str = "identity.toml";

/// The public half of a local identity, as stored in `identity.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicIdentity {
    pub handle: String,
    /// minisign public key, base64.
    pub minisign: String,
    /// minisign key id, 16 upper-case hex digits.
    pub key_id: String,
    /// age recipient.
    pub age: String,
    pub created: String,
    /// Whether the secrets are passphrase-protected.
    pub encrypted: bool,
}

/// An unlocked identity: can sign and decrypt, either with its secrets in this process or
/// through a key agent that holds them (the secrets never leave the agent).
pub struct Signer {
    pub handle: String,
    pub public: PublicIdentity,
    pub(crate) pk: minisign::PublicKey,
    pub(crate) secret: Secret,
}

/// Where an unlocked identity's secrets are.
pub(crate) enum Secret {
    Local {
        sk: minisign::SecretKey,
        age: age::x25519::Identity,
    },
    Agent(super::agent::AgentKey),
}

impl Signer {
    /// What opens age payloads sealed to this identity.
    /// The age identity as an owned handle, for work that outlives this borrow (a benchmark
    /// run unwrapping private model keys): a copy of a local key, or a reference to the agent's.
    pub fn shared_decryptor(&self) -> std::sync::Arc<dyn age::Identity + Send + Sync> {
        match &self.secret {
            Secret::Local { age, .. } => std::sync::Arc::new(age.clone()),
            Secret::Agent(k) => std::sync::Arc::new(k.clone()),
        }
    }

    pub fn decryptor(&self) -> &dyn age::Identity {
        match &self.secret {
            Secret::Local { age, .. } => age,
            Secret::Agent(k) => k,
        }
    }

    /// Whether a key agent signs and decrypts for this identity.
    pub fn via_agent(&self) -> bool {
        matches!(self.secret, Secret::Agent(_))
    }

    /// A minisign signature (the text of a `.minisig` file) over `bytes`.
    pub(crate) fn sign_detached(
        &self,
        bytes: &[u8],
        trusted: &str,
        untrusted: &str,
    ) -> Result<String, TrustError> {
        match &self.secret {
            Secret::Local { sk, .. } => minisign::sign(
                Some(&self.pk),
                sk,
                std::io::Cursor::new(bytes),
                Some(trusted),
                Some(untrusted),
            )
            .map(|b| b.into_string())
            .map_err(|e| TrustError::Key(e.to_string())),
            Secret::Agent(k) => k.sign(bytes, trusted, untrusted),
        }
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// The minisign key id of a public key, as minisign prints it.
pub fn key_id(pk: &minisign::PublicKey) -> String {
    let b = pk.keynum();
    let mut le = [0u8; 8];
    le.copy_from_slice(&b[..8]);
    format!("{:016X}", u64::from_le_bytes(le))
}

/// The raw key of a base64 public key.
pub fn raw_key_of(base64: &str) -> Option<[u8; 32]> {
    minisign::PublicKey::from_base64(base64)
        .ok()
        .map(|pk| raw_key(&pk))
}

/// The key id of a base64 public key.
pub fn key_id_of(base64: &str) -> Option<String> {
    minisign::PublicKey::from_base64(base64)
        .ok()
        .map(|pk| key_id(&pk))
}

fn key_dir(home: &Home, handle: &str) -> PathBuf {
    home.key_dir(handle)
}

/// Creates a new identity for `handle`. Refuses to overwrite an existing one.
pub fn generate(
    home: &Home,
    handle: &str,
    passphrase: Option<&str>,
    now: std::time::SystemTime,
) -> Result<PublicIdentity, TrustError> {
    check_name("handle", handle).map_err(|e| TrustError::Key(e.to_string()))?;
    let dir = key_dir(home, handle);
    if dir.join(IDENTITY).exists() {
        return Err(TrustError::KeyExists {
            handle: handle.to_string(),
            dir,
        });
    }
    if passphrase.is_some_and(str::is_empty) {
        return Err(TrustError::Key(
            "the passphrase is empty; choose one, or pass --no-passphrase".into(),
        ));
    }
    let kp = match passphrase {
        Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p.to_string())),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| TrustError::Key(format!("cannot generate a minisign key: {e}")))?;
    let sk_box = kp
        .sk
        .to_box(Some(&format!("cohort secret key for {handle}")))
        .map_err(|e| TrustError::Key(e.to_string()))?;
    let identity = age::x25519::Identity::generate();
    let age_secret = identity.to_string();
    let age_bytes = match passphrase {
        Some(p) => {
            let recipient = age::scrypt::Recipient::new(SecretString::from(p.to_string()));
            age::encrypt(&recipient, age_secret.expose_secret().as_bytes())
                .map_err(|e| TrustError::Key(format!("cannot protect the age identity: {e}")))?
        }
        None => format!("{}\n", age_secret.expose_secret()).into_bytes(),
    };
    let public = PublicIdentity {
        handle: handle.to_string(),
        minisign: kp.pk.to_base64(),
        key_id: key_id(&kp.pk),
        age: identity.to_public().to_string(),
        created: timestamp(now),
        encrypted: passphrase.is_some(),
    };
    let io = |e: std::io::Error| TrustError::Io {
        path: dir.clone(),
        source: e,
    };
    write_atomic_mode(
        &dir.join(SECRET_KEY),
        sk_box.to_string().as_bytes(),
        Some(0o600),
    )
    .map_err(io)?;
    write_atomic_mode(&dir.join(AGE_KEY), &age_bytes, Some(0o600)).map_err(io)?;
    let text = toml::to_string(&public).expect("identity serializes");
    // Written last: its presence marks a complete identity.
    write_atomic(&dir.join(IDENTITY), text.as_bytes()).map_err(io)?;
    Ok(public)
}

/// Every identity under `home`, sorted by handle.
pub fn list(home: &Home) -> Result<Vec<PublicIdentity>, TrustError> {
    let dir = home.keys_dir();
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(TrustError::Io {
                path: dir,
                source: e,
            });
        }
    };
    for entry in entries.flatten() {
        let p = entry.path().join(IDENTITY);
        if p.exists() {
            out.push(read_public(&p)?);
        }
    }
    out.sort_by(|a, b| a.handle.cmp(&b.handle));
    Ok(out)
}

fn read_public(path: &Path) -> Result<PublicIdentity, TrustError> {
    let text = fs::read_to_string(path).map_err(|e| TrustError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    toml::from_str(&text).map_err(|e| TrustError::Key(format!("{}: {e}", path.display())))
}

/// The public identity of `handle`.
pub fn public(home: &Home, handle: &str) -> Result<PublicIdentity, TrustError> {
    let p = key_dir(home, handle).join(IDENTITY);
    if !p.exists() {
        return Err(TrustError::NoKey {
            handle: handle.to_string(),
            dir: home.keys_dir(),
        });
    }
    read_public(&p)
}

/// Unlocks `handle`'s secrets. `passphrase` is asked for only if the key is encrypted:
/// the closure is called at most once.
pub fn unlock(
    home: &Home,
    handle: &str,
    passphrase: &mut dyn FnMut() -> Result<String, TrustError>,
) -> Result<Signer, TrustError> {
    let public = public(home, handle)?;
    let dir = key_dir(home, handle);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| TrustError::Io { path: p, source: e }
    };
    let sk_path = dir.join(SECRET_KEY);
    let sk_text = fs::read_to_string(&sk_path).map_err(io(&sk_path))?;
    let sk_box = minisign::SecretKeyBox::from_string(&sk_text)
        .map_err(|e| TrustError::Key(format!("{}: {e}", sk_path.display())))?;
    let age_path = dir.join(AGE_KEY);
    let age_bytes = fs::read(&age_path).map_err(io(&age_path))?;
    let (sk, age_secret) = if public.encrypted {
        let pass = passphrase()?;
        if pass.is_empty() {
            return Err(TrustError::EmptyPassphrase(handle.to_string()));
        }
        let sk = minisign::SecretKey::from_box(sk_box, Some(pass.clone())).map_err(|e| {
            if e.to_string().contains("Wrong password") {
                TrustError::WrongPassphrase(handle.to_string())
            } else {
                TrustError::Key(format!("{}: {e}", sk_path.display()))
            }
        })?;
        let mut id = age::scrypt::Identity::new(SecretString::from(pass));
        id.set_max_work_factor(22);
        let plain = age::decrypt(&id, &age_bytes)
            .map_err(|_| TrustError::WrongPassphrase(handle.to_string()))?;
        (
            sk,
            String::from_utf8(plain)
                .map_err(|_| TrustError::Key(format!("{}: not UTF-8", age_path.display())))?,
        )
    } else {
        let sk = minisign::SecretKey::from_unencrypted_box(sk_box)
            .map_err(|e| TrustError::Key(format!("{}: {e}", sk_path.display())))?;
        (
            sk,
            String::from_utf8(age_bytes)
                .map_err(|_| TrustError::Key(format!("{}: not UTF-8", age_path.display())))?,
        )
    };
    let age: age::x25519::Identity = age_secret
        .trim()
        .parse()
        .map_err(|e| TrustError::Key(format!("{}: {e}", age_path.display())))?;
    let pk = minisign::PublicKey::from_base64(&public.minisign)
        .map_err(|e| TrustError::Key(format!("{}: {e}", dir.join(IDENTITY).display())))?;
    if key_id(&pk) != public.key_id || age.to_public().to_string() != public.age {
        return Err(TrustError::Key(format!(
            "{}: the secret keys do not match identity.toml",
            dir.display()
        )));
    }
    Ok(Signer {
        handle: handle.to_string(),
        public,
        pk,
        secret: Secret::Local { sk, age },
    })
}

/// Makes the identity stored as `from` the key of `handle` (after a root rotation that lists
/// it was merged): `handle`'s current key moves to `keys/.retired/<handle>-<KEYID>` (kept, never
/// deleted), and `from`'s folder becomes `handle`'s. Returns where the old key went.
pub fn adopt(home: &Home, from: &str, handle: &str) -> Result<PathBuf, TrustError> {
    check_name("handle", handle).map_err(|e| TrustError::Key(e.to_string()))?;
    let new = public(home, from)?;
    let old = public(home, handle)?;
    let retired = home
        .keys_dir()
        .join(".retired")
        .join(format!("{handle}-{}", old.key_id));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| TrustError::Io { path: p, source: e }
    };
    if retired.exists() {
        return Err(TrustError::Key(format!(
            "{} already exists; move it away first",
            retired.display()
        )));
    }
    let parent = retired.parent().expect("retired has a parent");
    fs::create_dir_all(parent).map_err(io(parent))?;
    let from_dir = key_dir(home, from);
    let to_dir = key_dir(home, handle);
    // identity.toml names its handle: rewrite it before the folder moves, atomically.
    let renamed = PublicIdentity {
        handle: handle.to_string(),
        ..new
    };
    let text = toml::to_string(&renamed).expect("identity serializes");
    fs::rename(&to_dir, &retired).map_err(io(&to_dir))?;
    write_atomic(&from_dir.join(IDENTITY), text.as_bytes()).map_err(io(&from_dir))?;
    fs::rename(&from_dir, &to_dir).map_err(io(&from_dir))?;
    Ok(retired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_unlock_and_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let now = std::time::SystemTime::now();
        let p = generate(&home, "alice", Some("correct horse"), now).unwrap();
        assert!(p.encrypted);
        let s = unlock(&home, "alice", &mut || Ok("correct horse".into())).unwrap();
        assert_eq!(s.public, p);
        let e = unlock(&home, "alice", &mut || Ok("wrong".into())).unwrap_err();
        assert!(matches!(e, TrustError::WrongPassphrase(_)), "{e}");
        let e = unlock(&home, "alice", &mut || Ok(String::new())).unwrap_err();
        assert!(matches!(e, TrustError::EmptyPassphrase(_)), "{e}");
        let e = generate(&home, "alice", None, now).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [SECRET_KEY, AGE_KEY] {
                let m = fs::metadata(home.key_dir("alice").join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(m & 0o777, 0o600, "{f}");
            }
        }
    }

    #[test]
    fn adopt_moves_keys_and_refuses_without_changing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let now = std::time::SystemTime::now();
        let old = generate(&home, "admin", None, now).unwrap();
        // No such local identity: refused, admin's key untouched.
        let e = adopt(&home, "admin-next", "admin").unwrap_err();
        assert!(matches!(e, TrustError::NoKey { .. }), "{e}");
        assert_eq!(public(&home, "admin").unwrap(), old);
        let new = generate(&home, "admin-next", None, now).unwrap();
        let retired = adopt(&home, "admin-next", "admin").unwrap();
        let now_admin = unlock(&home, "admin", &mut || unreachable!()).unwrap();
        assert_eq!(now_admin.public.key_id, new.key_id);
        assert_eq!(now_admin.public.handle, "admin");
        assert!(!home.key_dir("admin-next").exists());
        assert_eq!(read_public(&retired.join(IDENTITY)).unwrap(), old);
        // The list shows one identity per handle, never the retired one.
        let all = list(&home).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
    }

    #[test]
    fn unencrypted_never_asks() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        generate(&home, "bot", None, std::time::SystemTime::now()).unwrap();
        unlock(&home, "bot", &mut || panic!("must not ask")).unwrap();
        assert_eq!(list(&home).unwrap().len(), 1);
        let e = unlock(&home, "nobody", &mut || panic!()).unwrap_err();
        assert!(matches!(e, TrustError::NoKey { .. }), "{e}");
    }
}
