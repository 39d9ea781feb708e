//! The agent's side: a private socket folder, one connection at a time, the peer's uid checked
//! before anything is read, and the keys dropped (the age identity zeroized) on stop or expiry.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;

use super::{
    AgentStatus, HeldKey, Request, Response, TrustError, agent_err, read_frame, write_frame,
};
use crate::trust::Signer;

/// How long one client may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound agent socket, not yet serving.
pub struct Listening {
    listener: UnixListener,
    path: PathBuf,
}

impl Listening {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Refuses a peer whose uid is unknown or not the agent's own: the socket folder is private,
/// and this holds even if its permissions were loosened.
pub fn check_peer(peer_uid: Option<u32>, own_uid: u32) -> Result<(), String> {
    match peer_uid {
        None => Err("cannot read the peer's credentials; refusing".into()),
        Some(uid) if uid != own_uid => Err(format!(
            "uid {uid} is not the agent's user (uid {own_uid}); refusing"
        )),
        Some(_) => Ok(()),
    }
}

/// Makes `dir` a folder only its owner may enter: created 0700 when missing, refused when it
/// exists with access for others or belongs to someone else.
pub fn check_private_dir(dir: &Path) -> Result<(), TrustError> {
    if !dir.exists() {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| agent_err(dir, e))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| agent_err(dir, e))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| agent_err(dir, e))?;
    let own = rustix::process::getuid().as_raw();
    if meta.uid() != own {
        return Err(agent_err(
            dir,
            format!(
                "the socket folder belongs to uid {}, not to you",
                meta.uid()
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(agent_err(
            dir,
            format!("the socket folder is open to others (mode {mode:o}); it must be 0700"),
        ));
    }
    Ok(())
}

/// Binds the agent socket at `path` in a private folder. A socket left by an agent that is gone
/// is replaced; a live agent is never displaced.
pub fn bind(path: &Path) -> Result<Listening, TrustError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| agent_err(path, "the socket path has no folder"))?;
    check_private_dir(dir)?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(agent_err(path, "exists and is not a socket"));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(agent_err(path, "an agent is already running there"));
        }
        std::fs::remove_file(path).map_err(|e| agent_err(path, e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| agent_err(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| agent_err(path, e))?;
    Ok(Listening {
        listener,
        path: path.to_path_buf(),
    })
}

/// Serves `keys` until a client asks the agent to stop or `ttl` has passed, then removes the
/// socket and drops the keys.
pub fn serve(listening: Listening, keys: Vec<Signer>, ttl: Option<Duration>) {
    let Listening { listener, path } = listening;
    let deadline = ttl.map(|t| Instant::now() + t);
    let expired = Arc::new(AtomicBool::new(false));
    if let Some(t) = ttl {
        let (flag, wake) = (expired.clone(), path.clone());
        std::thread::spawn(move || {
            std::thread::sleep(t);
            flag.store(true, Ordering::SeqCst);
            // accept() blocks: a connection of our own wakes it to see the flag.
            let _ = UnixStream::connect(&wake);
        });
    }
    let own = rustix::process::getuid().as_raw();
    for stream in listener.incoming() {
        if expired.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        let peer = rustix::net::sockopt::socket_peercred(&stream)
            .ok()
            .map(|c| c.uid.as_raw());
        if let Err(why) = check_peer(peer, own) {
            let _ = write_frame(&mut stream, &Response::Error { message: why });
            continue;
        }
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let Ok(request) = read_frame::<Request>(&mut stream) else {
            continue;
        };
        let stop = matches!(request, Request::Stop);
        let response = answer(request, &keys, deadline);
        let _ = write_frame(&mut stream, &response);
        if stop {
            break;
        }
    }
    let _ = std::fs::remove_file(&path);
    drop(keys);
}

fn answer(request: Request, keys: &[Signer], deadline: Option<Instant>) -> Response {
    let find = |handle: &str| {
        keys.iter()
            .find(|k| k.handle == handle)
            .ok_or_else(|| format!("the agent holds no key for `{handle}`"))
    };
    let result = match request {
        Request::Status => Ok(Response::Status(AgentStatus {
            pid: std::process::id(),
            expires_in: deadline.map(|d| d.saturating_duration_since(Instant::now()).as_secs()),
            keys: keys
                .iter()
                .map(|k| HeldKey {
                    handle: k.handle.clone(),
                    key_id: k.public.key_id.clone(),
                    minisign: k.public.minisign.clone(),
                    age: k.public.age.clone(),
                })
                .collect(),
        })),
        Request::Sign {
            handle,
            data,
            trusted,
            untrusted,
        } => find(&handle).and_then(|k| {
            let bytes = hex::decode(&data).map_err(|e| format!("bad data: {e}"))?;
            k.sign_detached(&bytes, &trusted, &untrusted)
                .map(|text| Response::Signature { text })
                .map_err(|e| e.to_string())
        }),
        Request::Unwrap { handle, stanzas } => find(&handle).and_then(|k| {
            let stanzas = stanzas
                .into_iter()
                .map(|s| {
                    Ok(age_core::format::Stanza {
                        tag: s.tag,
                        args: s.args,
                        body: hex::decode(&s.body).map_err(|e| format!("bad stanza: {e}"))?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            match k.decryptor().unwrap_stanzas(&stanzas) {
                None => Ok(Response::FileKey { key: None }),
                // A file key opens this one payload only; the identity stays here.
                Some(Ok(key)) => Ok(Response::FileKey {
                    key: Some(hex::encode(key.expose_secret())),
                }),
                Some(Err(e)) => Err(e.to_string()),
            }
        }),
        Request::Stop => Ok(Response::Stopping),
    };
    result.unwrap_or_else(|message| Response::Error { message })
}
