//! Seed inputs for the fuzz targets: real files from the repository (format examples, MLCube
//! conformance corpora, fixtures) and artifacts made with cohort's own writers (signatures,
//! sealed payloads, tarballs), so mutations start from inputs that reach deep into each parser.

use std::io::Write;
use std::path::Path;

/// Every file under `dir` (recursively, skipping hidden and build folders) whose name ends with
/// one of `suffixes`, at most `limit` of them, in a stable order.
pub fn files(dir: &Path, suffixes: &[&str], limit: usize) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    walk(dir, suffixes, &mut paths, 0);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| b.len() <= 256 << 10)
        .take(limit)
        .collect()
}

fn walk(dir: &Path, suffixes: &[&str], out: &mut Vec<std::path::PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && depth < 6 {
            walk(&e.path(), suffixes, out, depth + 1);
        } else if ft.is_file() && suffixes.iter().any(|s| name.ends_with(s)) {
            out.push(e.path());
        }
    }
}

/// The record examples of docs/format.md as `path\n` + body (the record target splits them).
pub fn format_examples(repo: &Path) -> Vec<Vec<u8>> {
    let Ok(doc) = std::fs::read_to_string(repo.join("docs/format.md")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```toml path=") {
        let after = &rest[start + "```toml path=".len()..];
        let Some((path, body)) = after.split_once('\n') else {
            break;
        };
        let Some(end) = body.find("\n```") else {
            break;
        };
        out.push(format!("{path}\n{}\n", &body[..end]).into_bytes());
        rest = &body[end..];
    }
    out
}

/// Small tarballs exercising each entry type the extractor handles, plain and gzipped.
pub fn tarballs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, body).expect("in-memory tar");
    };
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Directory);
        b.append_data(&mut h, path, &[][..]).expect("in-memory tar");
    };
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "data/");
    file(&mut b, "data/a.csv", b"id,value\n1,2\n");
    file(
        &mut b,
        "paths.yaml",
        b"data_path: data\nlabels_path: labels\n",
    );
    out.push(b.into_inner().expect("in-memory tar"));
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &format!("{}/x", "d".repeat(120)), b"long name");
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h, "link", "../escape")
        .expect("in-memory tar");
    out.push(b.into_inner().expect("in-memory tar"));
    let gz: Vec<Vec<u8>> = out
        .iter()
        .map(|t| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(t).expect("in-memory gzip");
            e.finish().expect("in-memory gzip")
        })
        .collect();
    out.extend(gz);
    out
}

/// Raw HTTP responses of the shapes downloads meet.
pub fn http_responses() -> Vec<Vec<u8>> {
    [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"v1\"\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/5\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */5\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
        "HTTP/1.1 200 OK\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\nstream without a length",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// MLCube `-P` overrides and run-argument strings.
pub fn parameter_lines() -> Vec<Vec<u8>> {
    [
        "docker.build_strategy=always\nplatform.accelerator_count=2\n",
        "docker.gpu_args=--gpus all --shm-size 1g\n",
        "runner.--network=none\ntasks.infer.parameters.inputs.data_path=/data\n",
        "a.b.c={x: [1, 2, {y: z}]}\n",
        "--gpus=all --runtime=nvidia -e A=b -u 0 --security-opt \"seccomp=unconfined\"\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}
