//! Which addresses a download may reach. A URL comes from a signed record another organisation
//! wrote, so by default cohort connects only to public addresses: otherwise a record could make
//! every site's cohort send requests into that site's own network (services on loopback, the
//! cloud's metadata endpoint, intranet hosts), by its URL or by a redirect. Every address a
//! host name resolves to is checked, for the URL and each redirect, and the connection is made
//! to exactly the addresses checked. The site's own proxy is the site's choice and is not
//! checked; behind a proxy, the proxy reaches the target.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// An address of the site's own network that a download led to.
#[derive(Debug)]
pub(crate) struct PrivateAddress(pub IpAddr);

impl fmt::Display for PrivateAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not a public address", self.0)
    }
}

impl std::error::Error for PrivateAddress {}

/// Whether `ip` belongs to a network of the site itself rather than the public internet:
/// loopback, unspecified, link-local (which holds the cloud metadata endpoint), private and
/// shared (carrier-grade NAT) ranges, unique-local IPv6, multicast and broadcast, including
/// an IPv4 address written inside an IPv6 one (mapped, compatible or NAT64).
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        // 0.0.0.0/8 ("this network") and 100.64.0.0/10 (shared address space).
        || a == 0
        || (a == 100 && b & 0xc0 == 64)
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // 64:ff9b::/96 (NAT64) and ::/96 or ::ffff:0:0/96 carry an IPv4 address in their last
    // 32 bits, which is where such a connection goes.
    let embedded = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4];
    let mapped = s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0);
    if (nat64 || mapped) && !ip.is_loopback() && !ip.is_unspecified() {
        return private_v4(embedded);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, fec0::/10 site-local (deprecated).
        || s[0] & 0xfe00 == 0xfc00
        || s[0] & 0xffc0 == 0xfe80
        || s[0] & 0xffc0 == 0xfec0
}

/// The first address of the site's own network (see [`is_private`]) that `host`, an image
/// registry as a reference names it (`registry.example.org`, `10.0.0.5:5000`, `[::1]:5000`,
/// `localhost:5000`), resolves to; `None` when every address is public or the name does not
/// resolve (the Engine then says so). The Engine resolves the name again when it pulls: this
/// is the check as things stand when the pull starts.
pub fn private_registry_host(host: &str) -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
            (n, p.parse().unwrap_or(443))
        }
        _ => (host, 443),
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    // Docker Hub, where a reference naming no registry goes, is public.
    if name == "docker.io" {
        return None;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    (name, port)
        .to_socket_addrs()
        .ok()?
        .map(|a| a.ip())
        .find(|ip| is_private(*ip))
}

/// Resolves as ureq does, then refuses a target any of whose addresses is private (see
/// [`is_private`]); the configured proxy, when the URI is the proxy's, is resolved unchecked.
#[derive(Debug, Default)]
pub(crate) struct PublicOnly {
    inner: DefaultResolver,
    /// The proxy's host and port, when the agent goes through one.
    proxy: Option<(String, u16)>,
    /// Addresses taken as public (tests stand a "public" server on loopback with it).
    #[cfg(test)]
    public: Vec<IpAddr>,
}

impl PublicOnly {
    pub(crate) fn new(proxy: Option<&ureq::Proxy>) -> PublicOnly {
        PublicOnly {
            inner: DefaultResolver::default(),
            proxy: proxy.map(|p| (p.host().to_ascii_lowercase(), p.port())),
            #[cfg(test)]
            public: Vec::new(),
        }
    }

    fn refused(&self, ip: IpAddr) -> bool {
        #[cfg(test)]
        if self.public.contains(&ip) {
            return false;
        }
        is_private(ip)
    }

    fn is_proxy(&self, uri: &Uri) -> bool {
        let Some((host, port)) = &self.proxy else {
            return false;
        };
        let default = match uri.scheme_str() {
            Some("https") => 443,
            Some("http") => 80,
            _ => 0,
        };
        uri.host().is_some_and(|h| h.eq_ignore_ascii_case(host))
            && uri.port_u16().unwrap_or(default) == *port
    }
}

impl Resolver for PublicOnly {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if self.is_proxy(uri) {
            return Ok(addrs);
        }
        match addrs.iter().find(|a| self.refused(a.ip())) {
            Some(bad) => Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                PrivateAddress(bad.ip()),
            ))),
            None => Ok(addrs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_registries_in_the_sites_network_are_found_by_their_addresses() {
        for (host, private) in [
            ("127.0.0.1:5000", Some("127.0.0.1")),
            ("localhost:5000", Some("127.0.0.1")),
            ("localhost", Some("127.0.0.1")),
            ("10.1.2.3", Some("10.1.2.3")),
            ("[::1]:5000", Some("::1")),
            ("169.254.169.254:80", Some("169.254.169.254")),
            ("93.184.216.34:443", None),
            // A name that does not resolve is left to the Engine to report.
            ("registry.invalid", None),
        ] {
            let want = private.map(|p| p.parse::<IpAddr>().unwrap());
            assert_eq!(private_registry_host(host), want, "{host}");
        }
    }

    #[test]
    fn the_sites_own_networks_are_private_and_the_internet_is_not() {
        for private in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    /// A server on 127.0.0.1 that answers every request with a redirect to `to`.
    fn redirecting_to(to: String) -> std::net::SocketAddr {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
                );
            }
        });
        addr
    }

    #[test]
    fn a_redirect_into_the_sites_network_is_refused_at_its_hop() {
        // 127.0.0.1 stands for a public server; it redirects to 127.0.0.2, the site's own.
        let home = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let to = format!("http://{}/secret", home.local_addr().unwrap());
        let public = redirecting_to(to);
        let guard = PublicOnly {
            public: vec![public.ip()],
            ..PublicOnly::new(None)
        };
        let config = ureq::Agent::config_builder().max_redirects(10).build();
        let connector = ureq::unversioned::transport::DefaultConnector::default();
        let agent = ureq::Agent::with_parts(config, connector, guard);
        let err = agent
            .get(&format!("http://{public}/file"))
            .call()
            .unwrap_err();
        let ureq::Error::Io(io) = &err else {
            panic!("{err:?}")
        };
        let refused = io
            .get_ref()
            .and_then(|e| e.downcast_ref::<PrivateAddress>());
        assert_eq!(refused.map(|p| p.0), Some("127.0.0.2".parse().unwrap()));
        // Nothing connected to the site's own server.
        home.set_nonblocking(true).unwrap();
        assert!(home.accept().is_err(), "the redirect's target was reached");
    }

    #[test]
    fn a_url_leading_to_loopback_is_refused_before_connecting_and_the_proxy_is_not() {
        let config = ureq::Agent::config_builder().build();
        let guard = PublicOnly::new(None);
        let uri: Uri = "http://127.0.0.1:9/x".parse().unwrap();
        let err = guard
            .resolve(&uri, &config, NextTimeout::default())
            .unwrap_err();
        let ureq::Error::Io(io) = err else {
            panic!("{err:?}")
        };
        assert!(io.get_ref().is_some_and(|e| e.is::<PrivateAddress>()));
        let proxy = ureq::Proxy::new("http://127.0.0.1:3128").unwrap();
        let behind = PublicOnly::new(Some(&proxy));
        let at_proxy: Uri = "http://127.0.0.1:3128".parse().unwrap();
        assert!(
            behind
                .resolve(&at_proxy, &config, NextTimeout::default())
                .is_ok()
        );
        // Another port of the same host is not the proxy.
        assert!(
            behind
                .resolve(&uri, &config, NextTimeout::default())
                .is_err()
        );
    }
}
