//! The reference parts of a benchmark page: model cards (owner, cube, image, failure
//! receipts), every cell with its manifest, the history of releases, and the provenance of
//! the release (record hash, signers, covered manifests, registry commit).

use std::fmt::Write;

use crate::model::{CubeRef, Entry, ImageSource, Leaderboard, Mlcube, build};
use crate::report::history::history as changes;
use crate::report::render::{is_listed, metric_names, model_label, value};
use crate::report::site::{BenchmarkPage, ReleaseInfo, SiteInput};

use super::page::{human_time, plural};
use super::{E, escape, slug};

/// The tooltip of a cell: its manifest path and hash (nothing in pseudonymised releases,
/// whose cells name no manifest).
pub fn manifest_title(lb: &Leaderboard, path: Option<&str>) -> String {
    let Some(path) = path else {
        return String::new();
    };
    match lb.results.iter().find(|c| c.path == path) {
        Some(c) => format!("{path}\nsha256 {}", c.sha256),
        None => path.to_string(),
    }
}

fn sha_of<'a>(lb: &'a Leaderboard, path: &str) -> Option<&'a str> {
    lb.results
        .iter()
        .find(|c| c.path == path)
        .map(|c| c.sha256.as_str())
}

fn image_text(cube: &Mlcube) -> String {
    let img = &cube.image;
    let source = match img.source {
        ImageSource::Local => "built locally at each site".to_string(),
        ImageSource::Pull => format!(
            "pulled by digest{}",
            img.reference
                .as_deref()
                .map(|r| format!(" from <code class=\"hash\">{}</code>", E(r)))
                .unwrap_or_default()
        ),
        ImageSource::Tarball => format!(
            "loaded from a tarball{}",
            img.tarball
                .as_ref()
                .map(|t| format!(
                    " (<code class=\"hash\">{}</code>, sha256 <code class=\"hash\">{}</code>)",
                    E(t.describe()),
                    E(t.sha256.as_str())
                ))
                .unwrap_or_default()
        ),
        ImageSource::Encrypted => {
            "private: encrypted, run only where its owner granted the key".to_string()
        }
    };
    format!("<code class=\"hash\">{}</code>, {source}", E(&img.id))
}

fn cube_facts(h: &mut String, page: &BenchmarkPage, c: &CubeRef) {
    let _ = write!(
        h,
        "<dt>Cube</dt><dd><code>{}</code><br>sha256 <code class=\"hash\">{}</code></dd>",
        E(&build::mlcube(&c.name, c.version)),
        E(c.sha256.as_str())
    );
    match page.cubes.get(c) {
        Some(cube) => {
            let _ = write!(
                h,
                "<dt>Image</dt><dd>{}</dd><dt>Submitted</dt><dd>{}</dd>",
                image_text(cube),
                E(&human_time(&cube.created))
            );
            if let Some(d) = &cube.description {
                let _ = write!(h, "<dt>About</dt><dd>{}</dd>", E(d));
            }
        }
        None => h.push_str("<dt>Image</dt><dd>record not available in this build</dd>"),
    }
}

pub fn model_cards(h: &mut String, page: &BenchmarkPage, lb: &Leaderboard) {
    h.push_str(
        "<h2 id=\"models\">Models</h2>\n<p class=\"hint\">Each model is one version of an \
         MLCube (a container image with a standard interface), pinned by hash. Failure \
         receipts say where a model failed at a site; they carry no patient data.</p>\n\
         <div class=\"cards\">\n",
    );
    for e in &lb.entries {
        card(h, page, lb, e);
    }
    h.push_str("</div>\n");
}

fn card(h: &mut String, page: &BenchmarkPage, lb: &Leaderboard, e: &Entry) {
    let label = model_label(&e.model);
    let _ = write!(
        h,
        "<article class=\"card\" id=\"model-{}\"><h3>{} <span class=\"sd\">v{}</span>",
        slug(&label),
        E(&e.model.name),
        e.model.version
    );
    match e.rank {
        Some(r) => {
            let _ = write!(h, " <span class=\"badge ok\">rank {r}</span>");
        }
        None => h.push_str(" <span class=\"badge warn\">not ranked</span>"),
    }
    if e.reference {
        h.push_str(" <span class=\"badge ref\">reference</span>");
    }
    let _ = write!(
        h,
        "</h3><dl><dt>Owner</dt><dd>{}</dd><dt>Results</dt><dd>{}{}</dd>",
        E(&e.owner),
        plural(e.datasets as usize, "dataset"),
        if e.failures.is_empty() {
            String::new()
        } else {
            format!(", {}", plural(e.failures.len(), "failed run"))
        }
    );
    let primary = &lb.policy.primary_metric;
    match e.metrics.get(primary) {
        Some(s) if is_listed(e) => {
            let _ = write!(
                h,
                "<dt>{}</dt><dd>{}{}</dd>",
                E(primary),
                E(&value(s.mean)),
                s.sd.map(|sd| format!(" ± {}", value(sd)))
                    .unwrap_or_default()
            );
        }
        _ => {
            let _ = write!(
                h,
                "<dt>{}</dt><dd>not shown: fewer than {}</dd>",
                E(primary),
                plural(lb.policy.min_datasets.max(1) as usize, "dataset")
            );
        }
    }
    cube_facts(h, page, &e.model);
    h.push_str("</dl>");
    if !e.failures.is_empty() {
        h.push_str("<p><strong>Failure receipts</strong></p><ul class=\"failures\">");
        for f in &e.failures {
            let receipt = f
                .result
                .as_deref()
                .map(|r| format!(" Receipt <code class=\"hash\">{}</code>", E(r)))
                .unwrap_or_default();
            let _ = write!(
                h,
                "<li><strong>{}</strong>: the <code>{}</code> step failed{} ({}).{receipt}</li>",
                E(crate::report::render::failure_dataset(f)),
                E(&f.stage),
                f.exit_code
                    .map(|c| format!(" with exit code {c}"))
                    .unwrap_or_default(),
                E(&f.reason),
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("</article>\n");
}

/// Every cell of a cross-product release with all its metrics and (unless pseudonymised) its
/// manifest.
pub fn all_cells(h: &mut String, lb: &Leaderboard, rows: &[&Entry]) {
    // Per dataset, a count of cases is a plain value: shown with the scores.
    let mut metrics = metric_names(lb);
    let sizes: std::collections::BTreeSet<&String> = rows
        .iter()
        .flat_map(|e| e.cells.iter().flat_map(|c| c.metrics.keys()))
        .filter(|k| lb.policy.is_size_metric(k) && !metrics.contains(k))
        .collect();
    metrics.extend(sizes.into_iter().cloned());
    let linked = !lb.is_unlinked();
    h.push_str(if linked {
        "<details><summary>All metrics for every model and dataset, with the result \
         manifest of each value</summary><div class=\"scroll\"><table><thead><tr>\
         <th scope=\"col\">Model</th><th scope=\"col\">Dataset</th>"
    } else {
        "<details><summary>All metrics for every model and dataset</summary>\
         <div class=\"scroll\"><table><thead><tr>\
         <th scope=\"col\">Model</th><th scope=\"col\">Dataset</th>"
    });
    for m in &metrics {
        let _ = write!(h, "<th scope=\"col\" class=\"num\">{}</th>", E(m));
    }
    if linked {
        h.push_str("<th scope=\"col\">Result manifest</th>");
    }
    h.push_str("</tr></thead><tbody>\n");
    for e in rows {
        for c in &e.cells {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td>",
                E(&model_label(&e.model)),
                E(&c.dataset)
            );
            for m in &metrics {
                let v = c.metrics.get(m).map(|v| value(*v)).unwrap_or_default();
                let _ = write!(h, "<td class=\"num\">{}</td>", E(&v));
            }
            match &c.result {
                Some(r) => {
                    let _ = writeln!(
                        h,
                        "<td><code class=\"hash\">{}</code><br><span class=\"sd\">sha256 <code class=\"hash\">{}</code></span></td></tr>",
                        E(r),
                        E(sha_of(lb, r).unwrap_or("(not covered)"))
                    );
                }
                None => h.push_str("</tr>\n"),
            }
        }
    }
    h.push_str("</tbody></table></div></details>\n");
}

pub fn history(h: &mut String, releases: &[&ReleaseInfo]) {
    let records: Vec<Leaderboard> = releases.iter().map(|r| r.record.clone()).collect();
    h.push_str("<h2 id=\"history\">Earlier releases</h2>\n<ul>");
    for r in releases.iter().rev() {
        let _ = write!(
            h,
            "<li>Release {}: {}, by {}, <code class=\"hash\">{}</code></li>",
            r.record.number,
            E(&human_time(&r.record.created)),
            E(&r.record.by),
            E(&r.path)
        );
    }
    h.push_str("</ul>\n");
    // Releases of one page are of one benchmark (write_site checks), so this cannot fail.
    let Ok(hist) = changes(&records) else {
        return;
    };
    for s in hist.steps.iter().rev() {
        let _ = write!(
            h,
            "<details{}><summary>From release {} to {} ({})</summary><div class=\"scroll\"><table>\
             <thead><tr><th scope=\"col\">Change</th><th scope=\"col\">Model</th>\
             <th scope=\"col\" class=\"num\">Rank</th><th scope=\"col\" class=\"num\">{}</th></tr></thead><tbody>",
            if s.to == hist.releases.last().copied().unwrap_or(0) {
                " open"
            } else {
                ""
            },
            s.from,
            s.to,
            E(&human_time(&s.created)),
            E(&s.metric)
        );
        for c in &s.changes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                c.kind.as_str(),
                E(&c.model),
                E(&c.rank_text()),
                E(&c.value_text())
            );
        }
        h.push_str("</tbody></table></div></details>\n");
    }
}

pub fn provenance(h: &mut String, site: &SiteInput, page: &BenchmarkPage, r: &ReleaseInfo) {
    let lb = &r.record;
    let signers: Vec<String> = r
        .signers
        .iter()
        .map(|(handle, key)| format!("{} (key <code class=\"hash\">{}</code>)", E(handle), E(key)))
        .collect();
    let _ = write!(
        h,
        "<h2 id=\"provenance\">Provenance</h2>\n<p>Where every number on this page comes from. \
         The release record below is signed; it lists the hash of every result manifest it \
         was computed from, and each manifest binds the exact model, data preparation and \
         metrics versions a hospital ran.</p>\n<details><summary>Release record and \
         signatures</summary><dl class=\"facts\">\
         <dt>Registry</dt><dd>{} (id <code class=\"hash\">{}</code>)</dd>\
         <dt>Built from commit</dt><dd><code class=\"hash\">{}</code></dd>\
         <dt>Release record</dt><dd><code>{}</code><br>sha256 <code class=\"hash\">{}</code></dd>\
         <dt>Made by</dt><dd>{} on {}</dd>\
         <dt>Signed by</dt><dd>{}; the committee needs {}</dd>\
         <dt>Benchmark version</dt><dd><code>{}</code><br>sha256 <code class=\"hash\">{}</code></dd>\
         </dl></details>\n",
        E(&site.registry_name),
        E(&site.registry_id),
        E(&site.commit),
        E(&r.path),
        E(r.sha256.as_str()),
        E(&lb.by),
        E(&human_time(&lb.created)),
        if signers.is_empty() {
            "nobody".to_string()
        } else {
            signers.join(", ")
        },
        plural(page.benchmark.release_threshold as usize, "signature"),
        E(&build::benchmark(&lb.benchmark.name, lb.benchmark.version)),
        E(lb.benchmark.sha256.as_str())
    );
    if lb.is_unlinked() {
        // Digests only: which manifest stands behind which pseudonym is sealed to the
        // committee.
        let _ = writeln!(
            h,
            "<details><summary>The {} this release covers</summary><p>Listed by sha256 only, \
             sorted: which dataset stands behind each pseudonym is sealed to the committee.</p>\
             <div class=\"scroll\"><table><thead><tr><th scope=\"col\">sha256</th></tr></thead><tbody>",
            plural(lb.inputs.len(), "result manifest")
        );
        for d in &lb.inputs {
            let _ = writeln!(
                h,
                "<tr><td><code class=\"hash\">{}</code></td></tr>",
                E(d.as_str())
            );
        }
        h.push_str("</tbody></table></div></details>\n");
        excluded(h, lb);
        return;
    }
    let _ = writeln!(
        h,
        "<details><summary>The {} this release covers</summary>\
         <div class=\"scroll\"><table><thead><tr><th scope=\"col\">Result manifest</th>\
         <th scope=\"col\">sha256</th><th scope=\"col\">Shown as</th></tr></thead><tbody>",
        plural(lb.results.len(), "result manifest")
    );
    for c in &lb.results {
        let _ = writeln!(
            h,
            "<tr><td><code class=\"hash\">{}</code></td><td><code class=\"hash\">{}</code></td><td>{}</td></tr>",
            E(&c.path),
            E(c.sha256.as_str()),
            shown_as(lb, &c.path)
        );
    }
    h.push_str("</tbody></table></div></details>\n");
    excluded(h, lb);
}

/// The results a release left out, with their reason codes.
fn excluded(h: &mut String, lb: &Leaderboard) {
    if lb.excluded.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<details><summary>{} left out</summary><ul>",
        plural(lb.excluded.len(), "result")
    );
    for x in &lb.excluded {
        let _ = writeln!(
            h,
            "<li><code class=\"hash\">{}</code>: {}</li>",
            E(&x.path),
            E(x.reason.as_str())
        );
    }
    h.push_str("</ul></details>\n");
}

/// How a covered manifest appears on the page.
fn shown_as(lb: &Leaderboard, path: &str) -> String {
    for e in &lb.entries {
        let label = escape(&model_label(&e.model));
        if let Some(c) = e.cells.iter().find(|c| c.result.as_deref() == Some(path)) {
            return format!("{label} on {}", E(&c.dataset));
        }
        if let Some(f) = e
            .failures
            .iter()
            .find(|f| f.result.as_deref() == Some(path))
        {
            return format!(
                "failure receipt of {label} on {}",
                E(crate::report::render::failure_dataset(f))
            );
        }
    }
    match crate::report::render::result_parts(path) {
        Some((model, _)) => format!("counted in the summary of {}", E(model)),
        None => "counted in the summaries".to_string(),
    }
}
