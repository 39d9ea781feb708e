//! HTML pages of the static site: the page shell (strict Content-Security-Policy that forbids
//! every network fetch, inline style and script pinned by hash), the escaping every piece of
//! registry text goes through, and the registry's index page. The benchmark page is in
//! `page.rs`, its charts in [`svg`].

mod assets;
mod details;
mod page;
pub mod svg;

use std::fmt::{self, Write};

pub use page::benchmark_page;

use crate::model::Sha256;
use crate::report::site::{ReleaseInfo, SiteInput};

use super::{is_listed, model_label};

/// Registry text made safe for HTML text and attribute values (`&`, `<`, `>`, `"`, `'`).
/// Everything from the registry is untrusted: every interpolation goes through this.
pub struct E<'a>(pub &'a str);

impl fmt::Display for E<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                // Control characters have no business in a page; they could confuse a reader.
                c if c.is_control() && c != '\n' && c != '\t' => f.write_char('\u{fffd}')?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Escapes `s` into a new string.
pub fn escape(s: &str) -> String {
    E(s).to_string()
}

/// A fragment id from registry text: `[a-z0-9-]` only, so it is safe in `id` and `href`.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() { c } else { '-' }
        })
        .collect()
}

/// Standard base64 (for CSP hashes; the only place the site needs it).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn csp_hash(text: &str) -> String {
    let hex = Sha256::of(text.as_bytes());
    let raw = hex::decode(hex.as_str()).expect("a Sha256 is 64 hex digits");
    format!("'sha256-{}'", base64(&raw))
}

/// The Content-Security-Policy of every page: nothing may be fetched (no scripts, styles,
/// fonts, images, frames or connections) except the inline style and script with these exact
/// hashes; `data:` images only for the empty favicon, so browsers do not ask for one.
fn csp() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src data:; base-uri 'none'; form-action 'none'",
        csp_hash(assets::STYLE),
        csp_hash(assets::SCRIPT)
    )
}

/// A whole page around `body` (already HTML).
pub(crate) fn shell(title: &str, body: &str, script: bool) -> Vec<u8> {
    let mut h = String::with_capacity(body.len() + assets::STYLE.len() + 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"generator\" content=\"cohort {}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{}</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>{}</style>\n</head>\n<body>\n{}",
        E(&csp()),
        E(crate::VERSION),
        E(title),
        assets::STYLE,
        body
    );
    if script {
        let _ = writeln!(h, "<script>{}</script>", assets::SCRIPT);
    }
    h.push_str("</body>\n</html>\n");
    h.into_bytes()
}

/// The commands that check a page against the registry, as HTML (shared by both pages).
pub(crate) fn verify_steps(site: &SiteInput, bench: Option<(&str, &ReleaseInfo)>) -> String {
    let url = site.clone_url.as_deref().unwrap_or("<registry URL>");
    let mut cmds = format!(
        "cohort registry clone {} \\\n    --root {} registry\ncd registry\ncohort verify\ngit rev-parse HEAD",
        shell_word(url),
        shell_word(&site.registry_id)
    );
    if let Some((b, release)) = bench {
        let _ = write!(
            cmds,
            "\nsha256sum {}    # {}\ncohort leaderboard {}",
            shell_word(&release.path),
            release.sha256,
            shell_word(b)
        );
    }
    let mut h = String::new();
    let _ = write!(
        h,
        "<ol class=\"steps\">\
         <li>Clone the registry, pinning its identity: <code>--root</code> is the hash of the \
         registry's first trust record, so a look-alike registry is refused.</li>\
         <li>Run <code>cohort verify</code>: it checks every signature and every rule in the \
         registry's history, including that each release is signed by its committee and only \
         uses results that their hospitals agreed to publish this way.</li>\
         <li>This page was built at commit <code class=\"hash\">{}</code>; \
         <code>git rev-parse HEAD</code> shows the commit you verified (the same, or a later one \
         that contains it).</li>\
         <li>{}</li></ol><pre><code>{}</code></pre>",
        E(&site.commit),
        if bench.is_some() {
            "<code>sha256sum</code> of the release record prints the hash in this page's \
             provenance; <code>cohort leaderboard</code> prints the same table from the signed \
             release, and <code>--format html -o DIR</code> rebuilds this page byte for byte."
        } else {
            "<code>cohort site -o DIR</code> rebuilds these pages byte for byte."
        },
        E(&cmds)
    );
    if site.clone_url.is_none() {
        h.push_str(
            "<p class=\"hint\">Replace <code>&lt;registry URL&gt;</code> with the address the \
             committee published for the registry.</p>",
        );
    }
    h
}

/// Quotes a word for a POSIX shell when it is not plainly safe.
fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,%".contains(c));
    if safe || s == "<registry URL>" {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub(crate) fn footer(site: &SiteInput) -> String {
    format!(
        "<footer><div class=\"wrap\">Built by cohort {} from the registry {} (id <code class=\"hash\">{}</code>) \
         at commit <code class=\"hash\">{}</code>. This page is self-contained: it loads no \
         scripts, fonts, images or data from anywhere.</div></footer>\n",
        E(crate::VERSION),
        E(&site.registry_name),
        E(&site.registry_id),
        E(&site.commit)
    )
}

/// The registry's index page: every benchmark with its latest release.
pub fn index_page(site: &SiteInput) -> Vec<u8> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<header class=\"top\"><div class=\"wrap\"><h1>{}<span class=\"ver\">leaderboards</span></h1>\
         <p class=\"lead\">Public leaderboards of federated benchmarks: machine-learning models \
         evaluated by hospitals on their own private data, which never left them. Each \
         leaderboard is a release signed by the benchmark's committee.</p>\
         <p class=\"meta\">Registry id <code class=\"hash\">{}</code> · commit <code class=\"hash\">{}</code></p>\
         </div></header>\n<main class=\"wrap\">\n<h2 id=\"benchmarks\">Benchmarks</h2>\n",
        E(&site.registry_name),
        E(&site.registry_id),
        E(&site.commit)
    );
    let mut pages: Vec<_> = site.benchmarks.iter().collect();
    pages.sort_by(|a, b| a.benchmark.name.cmp(&b.benchmark.name));
    if pages.is_empty() {
        h.push_str("<p>This registry has no benchmarks yet.</p>\n");
    } else {
        h.push_str(
            "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Benchmark</th>\
             <th scope=\"col\">What it measures</th><th scope=\"col\">Latest release</th>\
             <th scope=\"col\" class=\"num\">Ranked models</th><th scope=\"col\">Leading</th></tr></thead><tbody>\n",
        );
        for p in pages {
            let b = &p.benchmark;
            let latest = p.latest();
            let (release, ranked, leaders) = match latest {
                Some(r) => {
                    let lb = &r.record;
                    let leaders: Vec<String> = lb
                        .entries
                        .iter()
                        .filter(|e| e.rank == Some(1))
                        .map(|e| escape(&model_label(&e.model)))
                        .collect();
                    (
                        format!(
                            "release {}, {}",
                            lb.number,
                            E(&page::human_time(&lb.created))
                        ),
                        lb.entries
                            .iter()
                            .filter(|e| is_listed(e))
                            .count()
                            .to_string(),
                        if leaders.is_empty() {
                            "–".to_string()
                        } else {
                            leaders.join(", ")
                        },
                    )
                }
                None => ("not released yet".into(), "–".into(), "–".into()),
            };
            // Only a valid id names a page directory (write_site refuses others), so only
            // a valid id becomes a link: never `javascript:` or `../`.
            let name = if crate::model::ids::check_name("benchmark", &b.name).is_ok() {
                format!(
                    "<a href=\"{}/index.html\"><strong>{}</strong></a>",
                    E(&b.name),
                    E(&b.name)
                )
            } else {
                format!("<strong>{}</strong>", E(&b.name))
            };
            let _ = writeln!(
                h,
                "<tr><td>{name} <span class=\"sd\">v{}</span></td>\
                 <td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"nowrap\">{}</td></tr>",
                b.version,
                E(b.description.as_deref().unwrap_or("–")),
                release,
                ranked,
                leaders
            );
        }
        h.push_str("</tbody></table></div>\n");
    }
    h.push_str("<h2 id=\"verify\">How to verify these pages</h2>\n");
    h.push_str(&verify_steps(site, None));
    h.push_str("</main>\n");
    h.push_str(&footer(site));
    shell(
        &format!("{}: benchmark results", site.registry_name),
        &h,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_base64() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(slug("Model <x> v1"), "model--x--v1");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("file:///tmp/r.git"), "file:///tmp/r.git");
    }
}
