//! Network settings for downloads, resolved once by the CLI (proxies, NO_PROXY, extra CA
//! certificates, timeouts, limits) and turned here into a ureq agent per URL. The core never
//! reads the environment itself: [`NetConfig::from_env_lookup`] takes the lookup as a closure.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::error::{Result, StorageError};

/// How downloads reach the network. `Default` is direct connections, Mozilla's roots,
/// generous timeouts and a 64 GiB cap.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Proxy for `http://` URLs (HTTP_PROXY).
    pub http_proxy: Option<String>,
    /// Proxy for `https://` URLs (HTTPS_PROXY).
    pub https_proxy: Option<String>,
    /// Proxy for either scheme when the specific one is unset (ALL_PROXY); may be socks5://.
    pub all_proxy: Option<String>,
    /// Hosts that bypass the proxy (NO_PROXY): comma-separated names (a name also matches
    /// its subdomains; a leading `.` or `*.` is accepted), IP addresses, CIDR ranges,
    /// `host:port`, or `*` for everything.
    pub no_proxy: Option<String>,
    /// PEM bundles whose certificates are trusted in addition to Mozilla's roots
    /// (COHORT_CA_BUNDLE, SSL_CERT_FILE).
    pub ca_bundles: Vec<PathBuf>,
    /// Time to establish a connection (TCP, proxy and TLS handshakes).
    pub connect_timeout: Duration,
    /// Longest silence while waiting for a response or body bytes; a stalled transfer is
    /// retried (and resumed) after this.
    pub read_timeout: Duration,
    /// Retries after a failed attempt (connection reset, 5xx, timeout). An attempt that
    /// received bytes restarts the count, so a flaky link still finishes; 0 never retries.
    pub retries: u32,
    /// First retry delay; doubles each time, capped at 30 s.
    pub backoff: Duration,
    /// Refuse any download bigger than this many bytes ([`NetConfig::bounded_to`] lowers it
    /// to an asset's recorded size).
    pub max_bytes: u64,
    /// Slowest average rate a download may keep, in bytes per second, once `rate_grace` has
    /// passed: a server that dribbles a byte every few seconds (each read within
    /// `read_timeout`) would otherwise hold a download open for ever. Counted over the whole
    /// download, retries and their waits included; 0 turns the rule off.
    pub min_rate: u64,
    /// Time a download may take before `min_rate` applies (slow starts, retries).
    pub rate_grace: Duration,
    /// The User-Agent header.
    pub user_agent: String,
    /// Never download (`--offline`, an air-gapped site): a URL that is not in the cache is
    /// refused before any connection is made.
    pub offline: bool,
    /// Let downloads reach loopback, link-local and private addresses (see `guard`): off by
    /// default, since a URL comes from a record another organisation wrote; a consortium that
    /// hosts files on its private network turns it on (the CLI: COHORT_ALLOW_PRIVATE_HOSTS=1).
    pub allow_private_hosts: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            http_proxy: None,
            https_proxy: None,
            all_proxy: None,
            no_proxy: None,
            ca_bundles: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 4,
            backoff: Duration::from_millis(500),
            max_bytes: 64 << 30,
            min_rate: DEFAULT_MIN_RATE,
            rate_grace: Duration::from_secs(120),
            user_agent: format!("cohort/{}", crate::VERSION),
            offline: false,
            allow_private_hosts: false,
        }
    }
}

/// Largest download of an asset whose record states no size, unless the user raises it (the
/// same default as the unpacked size of such an asset).
pub const DEFAULT_MAX_UNRECORDED: u64 = 1 << 30;

/// Default [`NetConfig::min_rate`]: 16 KiB/s, far below any usable link.
pub const DEFAULT_MIN_RATE: u64 = 16 << 10;

impl NetConfig {
    /// These settings for an asset whose record states its size: the server may not send
    /// more than that (a 112-byte asset once streamed 2.1 GB before any limit).
    pub fn bounded_to(&self, size: Option<u64>) -> NetConfig {
        let mut net = self.clone();
        if let Some(s) = size {
            net.max_bytes = net.max_bytes.min(s);
        }
        net
    }

    /// These settings for a recorded asset: bounded by the size its record states, or, for a
    /// record that states none (older records, or one written to leave it out), by `ceiling`
    /// (the user's `--max-unpacked-size`) or [`DEFAULT_MAX_UNRECORDED`]. Without it a crafted
    /// record and a server streaming without a length filled the disk up to the 64 GiB cap.
    pub fn for_asset(&self, size: Option<u64>, ceiling: Option<u64>) -> NetConfig {
        self.bounded_to(Some(size.or(ceiling).unwrap_or(DEFAULT_MAX_UNRECORDED)))
    }

    /// Proxy and CA settings from environment-style variables. `lookup` is the CLI's
    /// `|k| std::env::var(k).ok()`; the lower-case spelling wins as in curl. COHORT_CA_BUNDLE
    /// and SSL_CERT_FILE are both added when set.
    pub fn from_env_lookup(lookup: impl Fn(&str) -> Option<String>) -> NetConfig {
        let var = |name: &str| {
            lookup(&name.to_ascii_lowercase())
                .or_else(|| lookup(name))
                .filter(|v| !v.trim().is_empty())
        };
        let mut ca_bundles = Vec::new();
        for name in ["COHORT_CA_BUNDLE", "SSL_CERT_FILE"] {
            if let Some(v) = lookup(name).filter(|v| !v.is_empty()) {
                ca_bundles.push(PathBuf::from(v));
            }
        }
        NetConfig {
            http_proxy: var("HTTP_PROXY"),
            https_proxy: var("HTTPS_PROXY"),
            all_proxy: var("ALL_PROXY"),
            no_proxy: var("NO_PROXY"),
            ca_bundles,
            ..NetConfig::default()
        }
    }

    /// The proxy URL to use for `url`, after NO_PROXY; `None` means connect directly.
    pub fn proxy_for(&self, url: &Uri) -> Option<&str> {
        let specific = match url.scheme_str() {
            Some("https") => self.https_proxy.as_deref(),
            _ => self.http_proxy.as_deref(),
        };
        let proxy = specific.or(self.all_proxy.as_deref())?;
        let host = url.host()?;
        let port = url
            .port_u16()
            .unwrap_or(if url.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        match &self.no_proxy {
            Some(list) if no_proxy_matches(list, host, port) => None,
            _ => Some(proxy),
        }
    }

    /// A ureq agent for `url`: the proxy chosen for it, the CA roots, the timeouts. Status
    /// codes are returned as responses (the caller decides what is transient) and bodies are
    /// never decoded, so hashes and Range offsets refer to the bytes on the wire.
    pub(crate) fn agent_for(&self, url: &Uri, roots: &RootCerts) -> Result<ureq::Agent> {
        let proxy = match self.proxy_for(url) {
            Some(p) => Some(ureq::Proxy::new(p).map_err(|e| StorageError::BadProxy {
                proxy: redact_userinfo(p),
                why: e.to_string(),
            })?),
            None => None,
        };
        let tls = TlsConfig::builder().root_certs(roots.clone()).build();
        let guard = super::guard::PublicOnly::new(proxy.as_ref());
        let config = ureq::Agent::config_builder()
            // Always set, so ureq's own environment lookup never decides.
            .proxy(proxy)
            .tls_config(tls)
            .http_status_as_error(false)
            .user_agent(self.user_agent.as_str())
            .accept_encoding("identity")
            .timeout_connect(Some(self.connect_timeout))
            .timeout_per_read(Some(self.read_timeout))
            .timeout_recv_response(Some(self.read_timeout))
            .max_redirects(10)
            .build();
        if self.allow_private_hosts {
            return Ok(ureq::Agent::new_with_config(config));
        }
        let connector = ureq::unversioned::transport::DefaultConnector::default();
        Ok(ureq::Agent::with_parts(config, connector, guard))
    }

    /// The trusted roots: Mozilla's, plus every certificate in the configured bundles.
    pub(crate) fn root_certs(&self) -> Result<RootCerts> {
        if self.ca_bundles.is_empty() {
            return Ok(RootCerts::WebPki);
        }
        let mut certs: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()))
            .collect();
        for path in &self.ca_bundles {
            let bad = |why: String| StorageError::CaBundle {
                path: path.clone(),
                why,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let before = certs.len();
            for item in ureq::tls::parse_pem(&pem) {
                match item.map_err(|e| bad(e.to_string()))? {
                    PemItem::Certificate(c) => certs.push(c),
                    // Keys or CRLs in a bundle are not roots; skip them like OpenSSL does.
                    _ => continue,
                }
            }
            if certs.len() == before {
                return Err(bad("it holds no PEM certificate".into()));
            }
        }
        Ok(RootCerts::new_with_certs(&certs))
    }
}

/// Whether `host:port` is exempt from proxying under a NO_PROXY list (curl's rules, plus
/// CIDR ranges and `host:port` entries that other tools accept).
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    let host_ip: Option<IpAddr> = host.parse().ok();
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let (name, want_port) = split_port(&entry);
            if want_port.is_some_and(|p| p != port) {
                return false;
            }
            if let Some(ip) = host_ip {
                return ip_matches(name, ip);
            }
            let name = name
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .trim_end_matches('.');
            !name.is_empty()
                && (host == name
                    || (host.len() > name.len()
                        && host.ends_with(name)
                        && host.as_bytes()[host.len() - name.len() - 1] == b'.'))
        })
}

/// Splits `name:port`, leaving bare IPv6 addresses (several colons) alone.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[')
        && let Some((ip, tail)) = rest.split_once(']')
    {
        return (ip, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match entry.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(p) => (name, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn ip_matches(entry: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => match b.parse::<u32>() {
            Ok(b) => (a, Some(b)),
            Err(_) => return false,
        },
        None => (entry, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(h)) => prefix_eq(
            u32::from(n).into(),
            u32::from(h).into(),
            bits.unwrap_or(32),
            32,
        ),
        (IpAddr::V6(n), IpAddr::V6(h)) => {
            prefix_eq(u128::from(n), u128::from(h), bits.unwrap_or(128), 128)
        }
        _ => false,
    }
}

fn prefix_eq(a: u128, b: u128, bits: u32, width: u32) -> bool {
    if bits > width {
        return false;
    }
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

/// A URL for messages, without credentials.
pub(crate) fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s && !url[s + 3..at].contains('/') => {
            format!("{}://***@{}", &url[..s], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn proxy_per_scheme_and_all_proxy_fallback() {
        let net = NetConfig {
            https_proxy: Some("http://sec:3128".into()),
            all_proxy: Some("socks5://all:1080".into()),
            ..NetConfig::default()
        };
        assert_eq!(
            net.proxy_for(&uri("https://a.org/x")),
            Some("http://sec:3128")
        );
        assert_eq!(
            net.proxy_for(&uri("http://a.org/x")),
            Some("socks5://all:1080")
        );
        assert_eq!(NetConfig::default().proxy_for(&uri("http://a.org/")), None);
    }

    #[test]
    fn no_proxy_rules() {
        let list = "example.com, .internal.org,*.corp, 10.0.0.0/8,::1, 192.168.1.5, build:8080";
        assert!(no_proxy_matches(list, "example.com", 443));
        assert!(no_proxy_matches(list, "www.example.com", 443));
        assert!(!no_proxy_matches(list, "badexample.com", 443));
        assert!(no_proxy_matches(list, "a.internal.org", 80));
        assert!(no_proxy_matches(list, "internal.org", 80));
        assert!(no_proxy_matches(list, "x.corp", 80));
        assert!(no_proxy_matches(list, "10.2.3.4", 80));
        assert!(!no_proxy_matches(list, "11.2.3.4", 80));
        assert!(no_proxy_matches(list, "[::1]", 80));
        assert!(no_proxy_matches(list, "192.168.1.5", 80));
        assert!(no_proxy_matches(list, "build", 8080));
        assert!(!no_proxy_matches(list, "build", 80));
        assert!(no_proxy_matches("*", "anything", 1));
        assert!(no_proxy_matches("EXAMPLE.com", "Example.COM", 1));
        let net = NetConfig {
            http_proxy: Some("http://p:1".into()),
            no_proxy: Some("127.0.0.1".into()),
            ..NetConfig::default()
        };
        assert_eq!(net.proxy_for(&uri("http://127.0.0.1:9/x")), None);
        assert!(net.proxy_for(&uri("http://localhost:9/x")).is_some());
    }

    #[test]
    fn env_lookup_prefers_lower_case_and_collects_bundles() {
        let env = |k: &str| match k {
            "https_proxy" => Some("http://lower:1".to_string()),
            "HTTPS_PROXY" => Some("http://upper:1".to_string()),
            "HTTP_PROXY" => Some("http://h:2".to_string()),
            "NO_PROXY" => Some("localhost".to_string()),
            "COHORT_CA_BUNDLE" => Some("/etc/corp.pem".to_string()),
            _ => None,
        };
        let net = NetConfig::from_env_lookup(env);
        assert_eq!(net.https_proxy.as_deref(), Some("http://lower:1"));
        assert_eq!(net.http_proxy.as_deref(), Some("http://h:2"));
        assert_eq!(net.no_proxy.as_deref(), Some("localhost"));
        assert_eq!(net.ca_bundles, vec![PathBuf::from("/etc/corp.pem")]);
    }

    #[test]
    fn ca_bundle_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let net = NetConfig {
            ca_bundles: vec![empty.clone()],
            ..NetConfig::default()
        };
        let e = net.root_certs().unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_userinfo("http://u:secret@proxy:3128"),
            "http://***@proxy:3128"
        );
        assert_eq!(redact_userinfo("http://proxy:3128"), "http://proxy:3128");
    }
}
