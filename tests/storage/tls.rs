//! HTTPS against `openssl s_server` with a throwaway CA: refused without the bundle,
//! trusted with it.

use super::*;

fn openssl(args: &[&str], dir: &Path) -> bool {
    std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Kills the `openssl s_server` this test started, by its own handle.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn https_with_an_extra_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let made = openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=cohort test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
        d,
    ) && openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
        d,
    ) && openssl(
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        d,
    );
    if !made {
        eprintln!("skipping: the openssl command line tool is not available");
        return;
    }
    let www = d.join("www");
    fs::create_dir(&www).unwrap();
    let data = body(40_000);
    fs::write(www.join("asset.bin"), &data).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _server = Child(
        std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", "../srv.pem", "-key", "../srv.key"])
            .current_dir(&www)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://localhost:{port}/asset.bin");
    let out = d.join("out");
    let e = get(&url, None, &out.join("1"), &net()).unwrap_err();
    assert!(matches!(e, StorageError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("COHORT_CA_BUNDLE"), "{e}");
    let trusted = NetConfig {
        ca_bundles: vec![d.join("ca.pem")],
        ..net()
    };
    let f = get(&url, Some(&Sha256::of(&data)), &out.join("2"), &trusted).unwrap();
    assert_eq!(fs::read(f.path).unwrap(), data);
}
