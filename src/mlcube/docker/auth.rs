//! Registry credentials from the Docker client configuration the user already has
//! (`config.json`: `auths` entries, `credHelpers` per host and the `credsStore` default), as
//! the docker CLI reads them. The caller passes the file's path in (the CLI resolves
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): the core reads no environment.
//! Credentials never come from the command line or the registry.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use bollard::auth::DockerCredentials;
use serde::Deserialize;

use super::super::error::Error;

/// The key Docker Hub's credentials are stored under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The registry host an image reference names (`docker.io` when it names none), as the docker
/// CLI decides: the first component is a host when it has a `.` or `:` or is `localhost`.
pub fn registry_host(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

/// Credentials for `host` from the config file at `config` (None: no credentials). A missing
/// file means none; an unreadable or malformed one is an error naming it.
pub fn credentials_for(
    config: Option<&Path>,
    host: &str,
) -> Result<Option<DockerCredentials>, Error> {
    let Some(path) = config else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let cfg: ConfigFile = serde_json::from_str(&text).map_err(|e| Error::Docker {
        action: format!("reading the Docker client configuration {}", path.display()),
        message: e.to_string(),
    })?;
    let keys = host_keys(host);
    // A helper named for this host wins, then the default store, then inline `auths`, the
    // docker CLI's order.
    if let Some(helper) = keys.iter().find_map(|k| cfg.cred_helpers.get(k)) {
        return helper_get(helper, host);
    }
    if let Some(store) = &cfg.creds_store
        && let Some(c) = helper_get(store, host)?
    {
        return Ok(Some(c));
    }
    // The docker CLI then takes any key that names the host once its scheme and path are
    // dropped (`http://127.0.0.1:5000/v2/`, as older `docker login`s wrote them).
    let Some(entry) = keys.iter().find_map(|k| cfg.auths.get(k)).or_else(|| {
        cfg.auths
            .iter()
            .find(|(k, _)| key_host(k) == host)
            .map(|(_, e)| e)
    }) else {
        return Ok(None);
    };
    let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
    if let Some(auth) = &entry.auth {
        let decoded = decode_base64(auth)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| Error::Docker {
                action: format!("reading the Docker client configuration {}", path.display()),
                message: format!("the `auth` of {host} is not base64 of user:password"),
            })?;
        let (u, p) = decoded.split_once(':').ok_or_else(|| Error::Docker {
            action: format!("reading the Docker client configuration {}", path.display()),
            message: format!("the `auth` of {host} is not base64 of user:password"),
        })?;
        username = Some(u.to_string());
        password = Some(p.to_string());
    }
    Ok(Some(DockerCredentials {
        username,
        password,
        identitytoken: entry.identitytoken.clone(),
        serveraddress: Some(host.to_string()),
        ..Default::default()
    }))
}

/// The keys a host's entry may be stored under in `auths` (bare, or as a URL).
fn host_keys(host: &str) -> Vec<String> {
    if host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io" {
        return vec![
            DOCKER_HUB_KEY.into(),
            "docker.io".into(),
            "index.docker.io".into(),
        ];
    }
    vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
        format!("https://{host}/v1/"),
        format!("https://{host}/v2/"),
    ]
}

/// The host an `auths` key names: without `http(s)://` and anything after the first `/`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Asks `docker-credential-<helper>` for `host`'s credentials (the docker credential-helper
/// protocol: the server URL on stdin, JSON on stdout). "Not found" means none.
fn helper_get(helper: &str, host: &str) -> Result<Option<DockerCredentials>, Error> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| Error::Docker {
        action: format!("asking {program} for the credentials of {host}"),
        message,
    };
    let server = if host == "docker.io" {
        DOCKER_HUB_KEY
    } else {
        host
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start it: {e}")))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(server.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        // The protocol's answer for "no credentials for this server".
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let reply: HelperReply =
        serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("unreadable reply: {e}")))?;
    // `<token>` as the user name means the secret is an identity token (docker's convention).
    Ok(Some(if reply.username == "<token>" {
        DockerCredentials {
            identitytoken: Some(reply.secret),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        }
    } else {
        DockerCredentials {
            username: Some(reply.username),
            password: Some(reply.secret),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        }
    }))
}

/// Standard base64 (with or without padding), as `config.json` stores `user:password`.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_as_the_docker_cli_reads_them() {
        assert_eq!(registry_host("127.0.0.1:5000/mo/model"), "127.0.0.1:5000");
        assert_eq!(
            registry_host("registry.example.org/team/m@sha256:ab"),
            "registry.example.org"
        );
        assert_eq!(registry_host("localhost/x"), "localhost");
        assert_eq!(registry_host("library/busybox"), "docker.io");
        assert_eq!(registry_host("busybox"), "docker.io");
    }

    #[test]
    fn base64_of_user_password() {
        assert_eq!(decode_base64("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YWI=").unwrap(), b"ab");
        assert!(decode_base64("not base64!").is_none());
    }

    #[test]
    fn auths_entries_by_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"127.0.0.1:5000": {"auth": "dXNlcjpwYXNz"},
                          "https://registry.example.org": {"identitytoken": "tok"}}}"#,
        )
        .unwrap();
        let c = credentials_for(Some(&path), "127.0.0.1:5000")
            .unwrap()
            .unwrap();
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some("pass"));
        assert_eq!(c.serveraddress.as_deref(), Some("127.0.0.1:5000"));
        let t = credentials_for(Some(&path), "registry.example.org")
            .unwrap()
            .unwrap();
        assert_eq!(t.identitytoken.as_deref(), Some("tok"));
        assert!(credentials_for(Some(&path), "other:1").unwrap().is_none());
        std::fs::write(
            &path,
            r#"{"auths": {"http://10.0.0.5:5000/v2/": {"auth": "dXNlcjpwYXNz"}}}"#,
        )
        .unwrap();
        let c = credentials_for(Some(&path), "10.0.0.5:5000")
            .unwrap()
            .unwrap();
        assert_eq!(c.username.as_deref(), Some("user"));
        assert!(credentials_for(Some(&path), "10.0.0.5").unwrap().is_none());
        assert!(credentials_for(None, "127.0.0.1:5000").unwrap().is_none());
        assert!(
            credentials_for(Some(&dir.path().join("absent.json")), "x")
                .unwrap()
                .is_none()
        );
        std::fs::write(&path, "{").unwrap();
        assert!(credentials_for(Some(&path), "x").is_err());
    }

    #[test]
    fn helper_that_is_missing_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers": {"h:1": "cohort-test-absent"}}"#).unwrap();
        let err = credentials_for(Some(&path), "h:1").unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-cohort-test-absent"),
            "{err}"
        );
    }
}
