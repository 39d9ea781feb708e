//! Getting the image: inspect (its id, the config digest `docker inspect` reports), build from
//! a local cube's Dockerfile, load a tarball after checking its sha256, pull by reference.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptions, ImportImageOptions, PushImageOptions, RemoveImageOptions, TagImageOptions,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::spec::{normalize_image_id, pull_options};
use super::{docker_err, is_not_found};
use crate::mlcube::error::Error;
use crate::progress::Reporter;

const CHUNK: usize = 256 * 1024;

/// The id of the image a reference (tag, digest reference or id) names, if present.
pub async fn image_id(docker: &Docker, reference: &str) -> Result<Option<String>, Error> {
    match docker.inspect_image(reference).await {
        Ok(img) => Ok(img.id.map(|id| normalize_image_id(&id))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(docker_err(&format!("inspecting image {reference}"), e)),
    }
}

/// The size the engine reports for an image, if present.
pub async fn size(docker: &Docker, reference: &str) -> Result<Option<u64>, Error> {
    match docker.inspect_image(reference).await {
        Ok(img) => Ok(img.size.and_then(|s| u64::try_from(s).ok())),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(docker_err(&format!("inspecting image {reference}"), e)),
    }
}

/// The repository tags of an image (empty when it has none or is absent).
pub async fn tags(docker: &Docker, reference: &str) -> Result<Vec<String>, Error> {
    match docker.inspect_image(reference).await {
        Ok(img) => Ok(img.repo_tags.unwrap_or_default()),
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(docker_err(&format!("inspecting image {reference}"), e)),
    }
}

/// Builds `tag` from `context` with `dockerfile` (which may lie outside the context, as
/// `docker build -f` allows). Returns the image id.
pub async fn build(
    docker: &Docker,
    scratch: Option<&Path>,
    context: &Path,
    dockerfile: &Path,
    tag: &str,
    build_args: &[(String, String)],
    reporter: &dyn Reporter,
) -> Result<String, Error> {
    let failed = |message: String| Error::BuildFailed {
        image: tag.to_string(),
        dockerfile: dockerfile.to_path_buf(),
        message,
    };
    if !context.is_dir() {
        return Err(failed(format!(
            "the build context {} is not a folder",
            context.display()
        )));
    }
    if !dockerfile.is_file() {
        return Err(failed(format!("{} does not exist", dockerfile.display())));
    }
    let task = reporter.begin(&format!("build {tag}"), None);
    let result = async {
        let (tarball, dockerfile_in_tar) =
            context_tar(scratch, context, dockerfile).map_err(|e| failed(e.to_string()))?;
        let options = BuildImageOptions {
            dockerfile: dockerfile_in_tar,
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            buildargs: (!build_args.is_empty()).then(|| build_args.iter().cloned().collect()),
            ..Default::default()
        };
        // Large contexts take a while to upload before the Engine answers.
        let docker = docker
            .clone()
            .with_timeout(std::time::Duration::from_secs(3600));
        let tar_file = tarball.reopen().map_err(|e| failed(e.to_string()))?;
        let body = bollard::body_try_stream(file_chunks(tar_file).map(|r| r.map(Into::into)));
        let mut stream = docker.build_image(options, None, Some(body));
        let mut built: Option<String> = None;
        let mut last = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream {
                        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                            reporter.line(task, line);
                            last = line.to_string();
                        }
                    }
                    if let Some(id) = info.aux.and_then(|a| a.id) {
                        built = Some(normalize_image_id(&id));
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(failed(error.trim().to_string()));
                }
                Err(e) => return Err(docker_err(&format!("building {tag}"), e)),
            }
        }
        match built {
            Some(id) => Ok(id),
            None => image_id(&docker, tag)
                .await?
                .ok_or_else(|| failed(format!("the build produced no image ({last})"))),
        }
    }
    .await;
    reporter.end(task, result.is_ok());
    result
}

/// Writes the build context as a tar to a temporary file. Symlinks stay symlinks. Returns
/// the file and the Dockerfile's path inside the tar.
fn context_tar(
    scratch: Option<&Path>,
    context: &Path,
    dockerfile: &Path,
) -> std::io::Result<(tempfile::NamedTempFile, String)> {
    let mut tmp = tempfile::Builder::new();
    tmp.prefix(".cohort-context-").suffix(".tar");
    let tmp = match scratch {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tmp.tempfile_in(dir)?
        }
        None => tmp.tempfile()?,
    };
    let mut builder = tar::Builder::new(tmp.reopen()?);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.append_dir_all(".", context)?;
    let inside = dockerfile
        .strip_prefix(context)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty());
    let name = match inside {
        Some(rel) => rel,
        None => {
            let name = ".cohort-Dockerfile".to_string();
            builder.append_path_with_name(dockerfile, &name)?;
            name
        }
    };
    builder.into_inner()?.sync_all()?;
    Ok((tmp, name))
}

/// A file as a stream of chunks, so request bodies never hold it in memory.
fn file_chunks(
    mut file: File,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    futures_util::stream::poll_fn(move |_| {
        let mut buf = vec![0u8; CHUNK];
        std::task::Poll::Ready(match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(buf))
            }
            Err(e) => Some(Err(e)),
        })
    })
}

/// Loads an image tarball (`docker save` output) after checking its sha256. The file is
/// hashed again while it streams, and the last chunk is held back until that second hash
/// matches, so a file swapped in between is never loaded. Returns the loaded image ids.
pub async fn load_tarball(
    docker: &Docker,
    path: &Path,
    sha256: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, Error> {
    let expected = sha256
        .trim()
        .trim_start_matches("sha256:")
        .to_ascii_lowercase();
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let task = reporter.begin(&format!("verify {}", path.display()), Some(size));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        reporter.advance(task, n as u64);
    }
    let actual = hex::encode(hasher.finalize());
    reporter.end(task, actual == expected);
    if actual != expected {
        return Err(Error::Sha256Mismatch {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    file.rewind().map_err(io_err)?;

    let label = path.display().to_string();
    import(
        docker,
        verified_chunks(file, expected.clone(), path.to_path_buf()),
        &label,
        reporter,
    )
    .await
}

/// Loads a `docker save` stream from a reader straight into the Engine (nothing is written to
/// disk on the way: private models decrypt into this). A read error aborts the load before
/// the Engine sees the end of the stream.
pub async fn load_reader(
    docker: &Docker,
    reader: impl Read + Send + 'static,
    label: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, Error> {
    import(docker, reader_chunks(reader), label, reporter).await
}

/// Streams `body` into the Engine's image load; returns the loaded image ids.
async fn import(
    docker: &Docker,
    chunks: impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static,
    label: &str,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, Error> {
    let task = reporter.begin(&format!("load {label}"), None);
    let body = bollard::body_try_stream(chunks.map(|r| r.map(Into::into)));
    let docker = docker
        .clone()
        .with_timeout(std::time::Duration::from_secs(3600));
    let mut stream = docker.import_image(
        ImportImageOptions {
            quiet: true,
            ..Default::default()
        },
        body,
        None,
    );
    let mut refs = Vec::new();
    let mut result: Result<(), Error> = Ok(());
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream {
                    for line in text.lines() {
                        reporter.line(task, line);
                        if let Some(id) = line.strip_prefix("Loaded image ID: ") {
                            refs.push(normalize_image_id(id));
                        } else if let Some(r) = line.strip_prefix("Loaded image: ") {
                            refs.push(r.trim().to_string());
                        }
                    }
                }
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    result = Err(docker_err(
                        &format!("loading {label}"),
                        bollard::errors::Error::DockerStreamError { error: e },
                    ));
                    break;
                }
            }
            Err(e) => {
                result = Err(docker_err(&format!("loading {label}"), e));
                break;
            }
        }
    }
    reporter.end(task, result.is_ok());
    result?;
    let mut ids = Vec::new();
    for r in refs {
        let id = if r.starts_with("sha256:") {
            Some(r)
        } else {
            image_id(&docker, &r).await?
        };
        if let Some(id) = id.filter(|id| !ids.contains(id)) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// A reader as a body stream; a read error ends the body with that error.
fn reader_chunks(
    mut reader: impl Read + Send + 'static,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    let mut done = false;
    futures_util::stream::poll_fn(move |_| {
        if done {
            return std::task::Poll::Ready(None);
        }
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        // Fill whole chunks: the decrypting reader hands out small pieces.
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => {
                    done = true;
                    return std::task::Poll::Ready(Some(Err(e)));
                }
            }
        }
        if filled == 0 {
            done = true;
            return std::task::Poll::Ready(None);
        }
        buf.truncate(filled);
        std::task::Poll::Ready(Some(Ok(buf)))
    })
}

/// A file body that re-hashes while streaming and withholds its final chunk unless the hash
/// still matches.
fn verified_chunks(
    mut file: File,
    expected: String,
    path: PathBuf,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    let mut hasher = Some(Sha256::new());
    let mut pending: Option<Vec<u8>> = None;
    futures_util::stream::poll_fn(move |_| {
        loop {
            let Some(h) = hasher.as_mut() else {
                return std::task::Poll::Ready(None);
            };
            let mut buf = vec![0u8; CHUNK];
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) => return std::task::Poll::Ready(Some(Err(e))),
            };
            if n == 0 {
                let actual = hex::encode(hasher.take().expect("present").finalize());
                if actual != expected {
                    return std::task::Poll::Ready(Some(Err(std::io::Error::other(format!(
                        "{} changed while it was being loaded",
                        path.display()
                    )))));
                }
                return std::task::Poll::Ready(pending.take().map(Ok));
            }
            buf.truncate(n);
            h.update(&buf);
            if let Some(prev) = pending.replace(buf) {
                return std::task::Poll::Ready(Some(Ok(prev)));
            }
        }
    })
}

/// Pulls a reference (`repo@sha256:...` for registered cubes) with the registry's credentials
/// when the user has some. Returns the image id.
pub async fn pull(
    docker: &Docker,
    reference: &str,
    credentials: Option<DockerCredentials>,
    reporter: &dyn Reporter,
) -> Result<String, Error> {
    let task = reporter.begin(&format!("pull {reference}"), None);
    let docker_long = docker
        .clone()
        .with_timeout(std::time::Duration::from_secs(3600));
    let had_credentials = credentials.is_some();
    let host = super::auth::registry_host(reference);
    let mut stream = docker_long.create_image(Some(pull_options(reference)), None, credentials);
    let mut result = Ok(());
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(status) = info.status {
                    reporter.line(task, &status);
                }
            }
            Err(e) => {
                result = Err(Error::ImageUnavailable {
                    image: reference.to_string(),
                    message: match e {
                        bollard::errors::Error::DockerStreamError { error } => error,
                        bollard::errors::Error::DockerResponseServerError { message, .. } => {
                            message
                        }
                        other => other.to_string(),
                    },
                    hint: if had_credentials {
                        format!(
                            "check that {host} is reachable, that the reference exists and that your login there may read it"
                        )
                    } else {
                        format!(
                            "check that {host} is reachable and the reference exists; if it needs a login, `docker login {host}`"
                        )
                    },
                });
                break;
            }
        }
    }
    reporter.end(task, result.is_ok());
    result?;
    image_id(docker, reference)
        .await?
        .ok_or_else(|| Error::ImageUnavailable {
            image: reference.to_string(),
            message: "the pull finished but the image is not present".into(),
            hint: "try `docker pull` to see what the registry returns".into(),
        })
}

/// Tags `image_id` as `repo:tag` and pushes it with `credentials`; returns the digest
/// reference (`repo@sha256:...`) the registry now serves it under. A registry that is down,
/// refuses the login or rejects the manifest fails naming the host.
pub async fn push(
    docker: &Docker,
    image_id: &str,
    repo: &str,
    tag: &str,
    credentials: Option<DockerCredentials>,
    reporter: &dyn Reporter,
) -> Result<String, Error> {
    let host = super::auth::registry_host(repo);
    let had_credentials = credentials.is_some();
    let fail = |message: String| Error::Push {
        host: host.clone(),
        reference: format!("{repo}:{tag}"),
        message,
        logged_in: had_credentials,
    };
    docker
        .tag_image(
            image_id,
            Some(TagImageOptions {
                repo: Some(repo.to_string()),
                tag: Some(tag.to_string()),
            }),
        )
        .await
        .map_err(|e| docker_err(&format!("tagging {image_id} as {repo}:{tag}"), e))?;
    let task = reporter.begin(&format!("push {repo}:{tag}"), None);
    let docker_long = docker
        .clone()
        .with_timeout(std::time::Duration::from_secs(3600));
    let mut stream = docker_long.push_image(
        repo,
        Some(PushImageOptions {
            tag: Some(tag.to_string()),
            ..Default::default()
        }),
        credentials,
    );
    let mut result = Ok(());
    // The registry's answer for this tag (`<tag>: digest: sha256:... size: N`), as `docker push`
    // prints it: the digest of what was just pushed, never an older one the image carries.
    let mut pushed: Option<String> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                // The Engine reports a failed push inside the stream, not as an HTTP error.
                if let Some(detail) = info.error_detail {
                    result = Err(fail(detail.message.unwrap_or_else(|| "push failed".into())));
                    break;
                }
                if let Some(status) = info.status {
                    if let Some(rest) = status.strip_prefix(&format!("{tag}: digest: ")) {
                        pushed = rest.split_whitespace().next().map(str::to_string);
                    }
                    reporter.line(task, &status);
                }
            }
            Err(e) => {
                result = Err(fail(match e {
                    bollard::errors::Error::DockerStreamError { error } => error,
                    bollard::errors::Error::DockerResponseServerError { message, .. } => message,
                    other => other.to_string(),
                }));
                break;
            }
        }
    }
    reporter.end(task, result.is_ok());
    result?;
    if let Some(digest) = pushed {
        return Ok(format!("{repo}@{digest}"));
    }
    let inspect = docker
        .inspect_image(image_id)
        .await
        .map_err(|e| docker_err(&format!("inspecting {image_id}"), e))?;
    let prefix = format!("{repo}@");
    inspect
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.starts_with(&prefix))
        .ok_or_else(|| fail("the push finished but the Engine reports no digest for it".into()))
}

/// Writes `image_id` as a `docker save` tarball to `dest` (written whole, then renamed).
pub async fn save(docker: &Docker, image_id: &str, dest: &Path) -> Result<(), Error> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: dest.to_path_buf(),
        source,
    };
    let part = dest.with_extension("part");
    let mut file = File::create(&part).map_err(io)?;
    let mut stream = docker.export_image(image_id);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| docker_err(&format!("saving {image_id}"), e))?;
        file.write_all(&chunk).map_err(io)?;
    }
    file.sync_all().map_err(io)?;
    std::fs::rename(&part, dest).map_err(io)
}

/// Streams `image_id` as a `docker save` tarball into `out` (private models: `out` encrypts, so
/// no plaintext copy is ever written).
pub async fn save_to(
    docker: &Docker,
    image_id: &str,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let mut stream = docker.export_image(image_id);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| docker_err(&format!("saving {image_id}"), e))?;
        out.write_all(&chunk).map_err(|source| Error::Io {
            path: PathBuf::from(format!("<encrypted export of {image_id}>")),
            source,
        })?;
    }
    Ok(())
}

/// Removes an image (tests and cleanup).
pub async fn remove(docker: &Docker, reference: &str) -> Result<(), Error> {
    match docker
        .remove_image(
            reference,
            Some(RemoveImageOptions {
                force: true,
                ..Default::default()
            }),
            None,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(docker_err(&format!("removing image {reference}"), e)),
    }
}
