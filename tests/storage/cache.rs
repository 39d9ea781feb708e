//! The verified cache: corruption caught and re-fetched, concurrent fetches serialized.

use super::*;

#[test]
fn a_corrupted_cache_entry_is_detected_removed_and_fetched_again() {
    let srv = Server::start();
    let data = body(64_000);
    srv.serve("/cube.tar.gz", Served::file(&data));
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::at(home.path().join("cache"));
    let h = Sha256::of(&data);
    let rec = Recorder::default();
    let url = srv.url("/cube.tar.gz");
    let f = cache
        .get_or_fetch(&url, Some(&h), &net(), &rec, &Cancel::new())
        .unwrap();
    assert_eq!(f.path, cache.path_for(&h));
    // A hit is re-hashed, not re-downloaded.
    cache
        .get_or_fetch(&url, Some(&h), &net(), &rec, &Cancel::new())
        .unwrap();
    assert_eq!(srv.seen().len(), 1);
    // Same length, one byte different: a size check would miss it.
    let mut bad = data.clone();
    bad[1000] ^= 1;
    fs::write(&f.path, &bad).unwrap();
    let again = cache
        .get_or_fetch(&url, Some(&h), &net(), &rec, &Cancel::new())
        .unwrap();
    assert_eq!(fs::read(&again.path).unwrap(), data);
    assert_eq!(srv.seen().len(), 2, "re-fetched");
    let warnings = rec.warnings.lock().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("corrupted") && w.contains(h.as_str())),
        "{warnings:?}"
    );
    // Offline lookup of a swapped entry: reported absent, entry removed.
    fs::write(&f.path, b"swapped").unwrap();
    assert!(cache.get(&h, &Silent, &Cancel::new()).unwrap().is_none());
    assert!(!f.path.exists());
}

#[test]
fn concurrent_fetches_of_one_asset_download_it_once() {
    let srv = Server::start();
    let data = body(2 << 20);
    srv.serve("/shared", Served::file(&data));
    let home = tempfile::tempdir().unwrap();
    let h = Sha256::of(&data);
    let url = srv.url("/shared");
    let root: PathBuf = home.path().join("cache");
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (root, url, h) = (root.clone(), url.clone(), h.clone());
                s.spawn(move || {
                    Cache::at(root).get_or_fetch(&url, Some(&h), &net(), &Silent, &Cancel::new())
                })
            })
            .collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for r in results {
        assert_eq!(r.unwrap().sha256, h);
    }
    assert_eq!(
        srv.seen().len(),
        1,
        "the others waited and got a verified hit"
    );
    assert_eq!(fs::read(Cache::at(&root).path_for(&h)).unwrap(), data);
}
