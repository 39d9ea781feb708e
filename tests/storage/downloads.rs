//! Downloads from the loopback server: streaming, resume, retry, mismatch, caps, proxies,
//! local sources.

use super::*;

#[test]
fn download_streams_hashes_and_reports_progress() {
    let srv = Server::start();
    let data = body(300_000);
    srv.serve("/a.bin", Served::file(&data));
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let dest = dir.path().join("a.bin");
    let h = Sha256::of(&data);
    let f = fetch(
        &srv.url("/a.bin"),
        Some(&h),
        &dest,
        &net(),
        &rec,
        &Cancel::new(),
    )
    .unwrap();
    assert_eq!((f.sha256, f.bytes), (h, 300_000));
    assert_eq!(fs::read(&dest).unwrap(), data);
    assert_eq!(names(dir.path()), ["a.bin"], "no partial or meta file left");
    let begun = rec.begun.lock().unwrap();
    assert_eq!(begun[0].1, Some(300_000), "total from Content-Length");
    assert_eq!(rec.advanced.load(Ordering::Relaxed), 300_000);
}

#[test]
fn dropped_connection_is_resumed_with_range() {
    let srv = Server::start();
    let data = body(1 << 20);
    srv.serve(
        "/big",
        Served {
            drop_after: Some((1, 400_000)),
            ..Served::file(&data)
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big");
    let f = get(&srv.url("/big"), Some(&Sha256::of(&data)), &dest, &net()).unwrap();
    assert_eq!(fs::read(&f.path).unwrap(), data);
    let seen = srv.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let range = seen[1].range.as_deref().unwrap();
    assert!(
        range.starts_with("bytes=") && range != "bytes=0-",
        "{range}"
    );
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""));
    assert_eq!(seen[1].status, 206);
}

#[test]
fn an_interrupted_run_leaves_a_partial_that_the_next_run_resumes() {
    let srv = Server::start();
    let data = body(500_000);
    srv.serve(
        "/x",
        Served {
            drop_after: Some((1, 123_456)),
            ..Served::file(&data)
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.tar");
    let h = Sha256::of(&data);
    let no_retry = NetConfig {
        retries: 0,
        ..net()
    };
    let e = get(&srv.url("/x"), Some(&h), &dest, &no_retry).unwrap_err();
    assert!(e.is_environment(), "{e}");
    assert!(e.to_string().contains(&srv.url("/x")), "{e}");
    // Nothing that looks complete: only the .partial and its metadata.
    assert_eq!(names(dir.path()), ["x.tar.partial", "x.tar.partial.json"]);
    assert_eq!(
        fs::metadata(dir.path().join("x.tar.partial"))
            .unwrap()
            .len(),
        123_456
    );

    let f = get(&srv.url("/x"), Some(&h), &dest, &no_retry).unwrap();
    assert_eq!(f.sha256, h);
    assert_eq!(srv.seen()[1].range.as_deref(), Some("bytes=123456-"));
    assert_eq!(names(dir.path()), ["x.tar"]);
}

#[test]
fn a_server_without_range_support_restarts_from_zero() {
    let srv = Server::start();
    let data = body(200_000);
    srv.serve(
        "/n",
        Served {
            ranges: false,
            drop_after: Some((1, 50_000)),
            ..Served::file(&data)
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let f = get(
        &srv.url("/n"),
        Some(&Sha256::of(&data)),
        &dir.path().join("n"),
        &net(),
    )
    .unwrap();
    assert_eq!(fs::read(f.path).unwrap(), data);
    assert_eq!(srv.seen()[1].status, 200);
}

#[test]
fn a_file_changed_upstream_is_downloaded_again_not_spliced() {
    let srv = Server::start();
    let old = body(100_000);
    srv.serve(
        "/f",
        Served {
            drop_after: Some((1, 30_000)),
            ..Served::file(&old)
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let no_retry = NetConfig {
        retries: 0,
        ..net()
    };
    get(&srv.url("/f"), None, &dest, &no_retry).unwrap_err();
    let new: Vec<u8> = body(100_000).iter().map(|b| b ^ 0xff).collect();
    srv.serve(
        "/f",
        Served {
            etag: Some("\"v2\"".into()),
            ..Served::file(&new)
        },
    );
    let f = get(&srv.url("/f"), None, &dest, &no_retry).unwrap();
    let seen = srv.seen();
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""));
    assert_eq!(
        seen[1].status, 200,
        "If-Range mismatch sends the whole new file"
    );
    assert_eq!(f.sha256, Sha256::of(&new));
    assert_eq!(fs::read(dest).unwrap(), new);
}

#[test]
fn a_500_is_retried_and_a_persistent_one_is_an_environment_error() {
    let srv = Server::start();
    let data = body(10_000);
    srv.serve(
        "/once",
        Served {
            fail_500: 1,
            ..Served::file(&data)
        },
    );
    srv.serve(
        "/always",
        Served {
            fail_500: 100,
            ..Served::file(&data)
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let f = get(&srv.url("/once"), None, &dir.path().join("once"), &net()).unwrap();
    assert_eq!(f.bytes, 10_000);
    let e = get(
        &srv.url("/always"),
        None,
        &dir.path().join("always"),
        &net(),
    )
    .unwrap_err();
    assert!(
        matches!(e, StorageError::HttpStatus { status: 500, .. }),
        "{e}"
    );
    assert!(e.is_environment());
    let always = srv.seen().iter().filter(|s| s.path == "/always").count();
    assert_eq!(always, 4, "first try + 3 retries");
    assert!(!dir.path().join("always").exists());
}

#[test]
fn a_404_fails_at_once_and_is_not_an_environment_error() {
    let srv = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let e = get(&srv.url("/missing"), None, &dir.path().join("m"), &net()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("404") && msg.contains("/missing"), "{msg}");
    assert!(!e.is_environment());
    assert_eq!(srv.seen().len(), 1);
    assert!(names(dir.path()).is_empty());
}

#[test]
fn a_hash_mismatch_names_both_hashes_and_leaves_nothing() {
    let srv = Server::start();
    let served = body(50_000);
    srv.serve("/w", Served::file(&served));
    let dir = tempfile::tempdir().unwrap();
    let expected = Sha256::of(b"what the registry recorded");
    let e = get(
        &srv.url("/w"),
        Some(&expected),
        &dir.path().join("w"),
        &net(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&srv.url("/w")), "{msg}");
    assert!(msg.contains(expected.as_str()), "{msg}");
    assert!(msg.contains(Sha256::of(&served).as_str()), "{msg}");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn the_size_cap_refuses_and_leaves_nothing() {
    let srv = Server::start();
    srv.serve("/huge", Served::file(&body(5_000)));
    let dir = tempfile::tempdir().unwrap();
    let capped = NetConfig {
        max_bytes: 1_000,
        ..net()
    };
    let e = get(&srv.url("/huge"), None, &dir.path().join("h"), &capped).unwrap_err();
    assert!(e.to_string().contains("1000-byte download limit"), "{e}");
    assert!(names(dir.path()).is_empty());
}

#[test]
fn unreachable_and_stalled_servers_are_environment_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let quick = NetConfig {
        retries: 1,
        read_timeout: Duration::from_millis(300),
        ..net()
    };
    let e = get(
        &format!("http://127.0.0.1:{port}/x"),
        None,
        &dir.path().join("x"),
        &quick,
    )
    .unwrap_err();
    assert!(e.is_environment(), "{e}");

    let srv = Server::start();
    srv.serve(
        "/slow",
        Served {
            stall: Some(Duration::from_secs(3)),
            ..Served::file(b"never")
        },
    );
    let e = get(&srv.url("/slow"), None, &dir.path().join("s"), &quick).unwrap_err();
    assert!(e.is_environment(), "{e}");
    assert!(matches!(e, StorageError::Network { .. }), "{e}");
}

#[test]
fn a_cancelled_download_stops_and_can_resume() {
    let srv = Server::start();
    srv.serve("/c", Served::file(&body(1000)));
    let dir = tempfile::tempdir().unwrap();
    let cancel = Cancel::new();
    cancel.cancel();
    let e = fetch(
        &srv.url("/c"),
        None,
        &dir.path().join("c"),
        &net(),
        &Silent,
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(e, StorageError::Cancelled { .. }), "{e}");
    assert!(!dir.path().join("c").exists());
}

#[test]
fn the_proxy_is_used_unless_no_proxy_says_otherwise() {
    let srv = Server::start();
    let data = body(20_000);
    srv.serve("/p", Served::file(&data));
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    let via = NetConfig {
        http_proxy: Some(proxy.url()),
        ..net()
    };
    let f = get(&srv.url("/p"), None, &dir.path().join("p1"), &via).unwrap();
    assert_eq!(f.sha256, Sha256::of(&data));
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with(&format!("CONNECT {}", srv.addr)),
        "{seen:?}"
    );

    // https_proxy does not apply to http:// URLs; all_proxy does.
    let https_only = NetConfig {
        https_proxy: Some("http://127.0.0.1:9".into()),
        ..net()
    };
    get(&srv.url("/p"), None, &dir.path().join("p2"), &https_only).unwrap();
    let bypass = NetConfig {
        all_proxy: Some(proxy.url()),
        no_proxy: Some(format!("example.org, {}", srv.addr.ip())),
        ..net()
    };
    get(&srv.url("/p"), None, &dir.path().join("p3"), &bypass).unwrap();
    assert_eq!(proxy.seen().len(), 1, "NO_PROXY bypassed the proxy");
}

#[test]
fn file_urls_and_plain_paths() {
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("my assets");
    fs::create_dir_all(&src_dir).unwrap();
    let src = src_dir.join("w.bin");
    fs::write(&src, b"weights").unwrap();
    let h = Sha256::of(b"weights");
    let out = dir.path().join("out");
    let url = format!("file://{}", src.display().to_string().replace(' ', "%20"));
    let f = get(&url, Some(&h), &out.join("a"), &net()).unwrap();
    assert_eq!(fs::read(f.path).unwrap(), b"weights");
    let f = get(src.to_str().unwrap(), Some(&h), &out.join("b"), &net()).unwrap();
    assert_eq!(f.bytes, 7);
    let e = get(
        src.to_str().unwrap(),
        Some(&Sha256::of(b"x")),
        &out.join("c"),
        &net(),
    )
    .unwrap_err();
    assert!(matches!(e, StorageError::HashMismatch { .. }), "{e}");
    assert_eq!(names(&out), ["a", "b"], "no temp file left by the mismatch");
    let e = get("/no/such/file", None, &out.join("d"), &net()).unwrap_err();
    assert!(e.to_string().contains("/no/such/file"), "{e}");
}

#[test]
fn a_url_into_the_sites_own_network_is_refused_unless_allowed() {
    let srv = Server::start();
    let data = body(10_000);
    srv.serve("/own", Served::file(&data));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("own");
    let h = Sha256::of(&data);
    // The default: the server is on loopback, so no connection is made, nothing is written,
    // and the error is final (not retried) and names the setting.
    let default = NetConfig {
        allow_private_hosts: false,
        ..net()
    };
    let e = get(&srv.url("/own"), Some(&h), &dest, &default).unwrap_err();
    assert!(matches!(e, StorageError::PrivateHost { .. }), "{e}");
    assert!(!e.is_environment(), "not worth a retry: {e}");
    let msg = e.to_string();
    assert!(
        msg.contains("127.0.0.1") && msg.contains("COHORT_ALLOW_PRIVATE_HOSTS=1"),
        "{msg}"
    );
    assert!(srv.seen().is_empty(), "a request reached the server");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    // A name that resolves to loopback is refused the same way.
    let by_name = srv.url("/own").replace("127.0.0.1", "localhost");
    let e = get(&by_name, Some(&h), &dest, &default).unwrap_err();
    assert!(matches!(e, StorageError::PrivateHost { .. }), "{e}");
    assert!(srv.seen().is_empty());
    // Allowed, the same download goes through.
    let f = get(&srv.url("/own"), Some(&h), &dest, &net()).unwrap();
    assert_eq!(f.sha256, h);
}
