//! One benchmark's page: what the benchmark measures and how to read the results, the
//! sortable leaderboard, one chart per metric and the per-dataset table (cross-product).
//! Model cards, history and provenance are in `details.rs`.

use std::fmt::Write;

use crate::model::{DatasetNaming, Entry, Leaderboard, Ranking, Release, Weighting};
use crate::report::render::{
    covered_datasets, dataset_labels, has_ties, is_listed, metric_names, model_label, ranking_text,
    size_heading, size_names, size_number, value,
};
use crate::report::site::{BenchmarkPage, ReleaseInfo, SiteInput};

use super::details;
use super::svg::{Bar, bar_chart};
use super::{E, escape, footer, shell, slug, verify_steps};

/// What a federated benchmark is, in the header; on a phone after the leaderboard instead, so
/// the first screen shows rank, model and the primary metric.
const INTRO: &str = "A <strong>federated benchmark</strong>: each participating hospital \
     ran every model below on its own patient data, on its own machines. The data never \
     left the hospitals; only the scores did, encrypted to the benchmark committee, who \
     combined them and signed this leaderboard. Every number here can be checked \
     (<a href=\"#verify\">how</a>).";

/// The page of one benchmark, as bytes.
pub fn benchmark_page(site: &SiteInput, page: &BenchmarkPage) -> Vec<u8> {
    let b = &page.benchmark;
    let releases = page.sorted_releases();
    let latest = releases.last().copied();
    let mut h = String::new();
    header(&mut h, site, page, latest);
    h.push_str("<main class=\"wrap\">\n");
    match latest {
        None => {
            h.push_str(
                "<h2 id=\"leaderboard\">Leaderboard</h2>\n<p>The committee has not released \
                 results for this benchmark yet.</p>\n",
            );
            about(&mut h, page, None);
        }
        Some(r) => {
            let lb = &r.record;
            leaderboard(&mut h, lb);
            charts(&mut h, lb);
            if lb.policy.release == Release::CrossProduct {
                per_dataset(&mut h, lb);
            }
            about(&mut h, page, latest);
            details::model_cards(&mut h, page, lb);
            if releases.len() > 1 {
                details::history(&mut h, &releases);
            }
            details::provenance(&mut h, site, page, r);
        }
    }
    h.push_str(
        "<h2 id=\"verify\">How to verify this page</h2>\n<p>Anyone can check this page \
                against the registry, offline and without an account:</p>\n",
    );
    h.push_str(&verify_steps(site, latest.map(|r| (b.name.as_str(), r))));
    h.push_str("</main>\n");
    h.push_str(&footer(site));
    shell(
        &format!("{}: leaderboard · {}", b.name, site.registry_name),
        &h,
        latest.is_some(),
    )
}

fn header(h: &mut String, site: &SiteInput, page: &BenchmarkPage, latest: Option<&ReleaseInfo>) {
    let b = &page.benchmark;
    let _ = write!(
        h,
        "<header class=\"top\"><div class=\"wrap\"><nav><a href=\"../index.html\">← All benchmarks</a> \
         of {}</nav><h1>{}<span class=\"ver\">benchmark, version {}</span></h1>\n<p class=\"lead\">{}</p>\n",
        E(&site.registry_name),
        E(&b.name),
        b.version,
        E(b.description
            .as_deref()
            .unwrap_or("The committee gave no description of this benchmark."))
    );
    let _ = writeln!(h, "<p class=\"intro\">{INTRO}</p>");
    match latest {
        Some(r) => {
            let lb = &r.record;
            let signers: Vec<String> = r.signers.iter().map(|(h, _)| escape(h)).collect();
            let ranked = lb.entries.iter().filter(|e| is_listed(e)).count();
            let _ = writeln!(
                h,
                "<p class=\"meta\">{} ranked on {} · leaderboard release {} · published {} · \
                 signed by {}</p>",
                plural(ranked, "model"),
                plural(covered_datasets(lb), "dataset"),
                lb.number,
                E(&human_time(&lb.created)),
                if signers.is_empty() {
                    "nobody (unsigned)".to_string()
                } else {
                    signers.join(", ")
                }
            );
        }
        None => h.push_str("<p class=\"meta\">No leaderboard released yet</p>\n"),
    }
    h.push_str("</div></header>\n");
}

fn about(h: &mut String, page: &BenchmarkPage, latest: Option<&ReleaseInfo>) {
    let b = &page.benchmark;
    let policy = latest.map_or(&b.policy, |r| &r.record.policy);
    let metric = E(&policy.primary_metric);
    h.push_str("<h2 id=\"about\">How to read these results</h2>\n<dl class=\"facts\">\n");
    let committee: Vec<String> = b
        .committee
        .iter()
        .map(|m| {
            if *m == b.owner {
                format!("{} (benchmark owner)", E(m))
            } else {
                escape(m)
            }
        })
        .collect();
    let _ = writeln!(
        h,
        "<dt>Benchmark committee</dt><dd>{}: they defined the task, approve which models \
         and datasets take part, and sign each release ({} needed).</dd>",
        committee.join(", "),
        plural(b.release_threshold as usize, "signature")
    );
    let direction = match policy.ranking {
        Ranking::HigherIsBetter => "higher is better",
        Ranking::LowerIsBetter => "lower is better",
    };
    let _ = writeln!(
        h,
        "<dt>Ranked by</dt><dd><strong>{metric}</strong> ({direction}), averaged across \
         datasets{}. Models with the same value (to 6 decimals) share a rank, and the next \
         rank is skipped: 1, 1, 3.</dd>",
        match policy.weighting {
            Weighting::Equal => ", each dataset counting equally",
            Weighting::Size => ", each dataset weighted by its number of cases (n)",
        }
    );
    let released = match policy.release {
        Release::Aggregate => format!(
            "One number per model: its mean {metric} across datasets. No per-dataset values \
             and no spread are published."
        ),
        Release::PerModel => "Every metric per model, as the mean across datasets with its \
             standard deviation (±), lowest and highest value. No per-dataset values."
            .to_string(),
        Release::CrossProduct => "Every metric per model (mean ± standard deviation across \
             datasets), and each model's values on each dataset."
            .to_string(),
    };
    let _ = writeln!(h, "<dt>What is published</dt><dd>{released}</dd>");
    if latest.is_some_and(|r| r.record.has_totals()) && policy.release != Release::Aggregate {
        let mut counts = vec!["n".to_string()];
        counts.extend(policy.size_metrics.iter().map(|m| E(m).to_string()));
        let _ = writeln!(
            h,
            "<dt>Counts of cases</dt><dd>{} {} how many cases stand behind a model's values: \
             shown as the total across its datasets, never averaged, charted or ranked.</dd>",
            counts.join(", "),
            if counts.len() == 1 { "counts" } else { "count" }
        );
    }
    let min = policy.min_datasets.max(1);
    let _ = writeln!(
        h,
        "<dt>Minimum</dt><dd>A model is ranked once it has results on at least {}. \
         Models with fewer are listed without any numbers, so that no single hospital's \
         results can be read off. A failed run (see the model cards) does not count.</dd>",
        plural(min as usize, "dataset")
    );
    let datasets = latest.map(|r| covered_datasets(&r.record)).unwrap_or(0);
    let names = match policy.dataset_names {
        DatasetNaming::Pseudonymised => format!(
            "Hidden, as the committee's policy requires. <code>site-1</code>, \
             <code>site-2</code>, … stand for the {} in this release, in an order drawn at \
             random and known only to the committee; a label means the same dataset for every \
             model in this release, but labels are not comparable between releases.",
            plural(datasets, "participating dataset")
        ),
        DatasetNaming::Shown => format!(
            "Shown as the hospitals registered them ({} in this release).",
            plural(datasets, "dataset")
        ),
    };
    let _ = writeln!(h, "<dt>Datasets</dt><dd>{names}</dd>");
    let cube = |c: &crate::model::CubeRef| format!("<code>{}</code>", E(&model_label(c)));
    let _ = writeln!(
        h,
        "<dt>Pipeline</dt><dd>Every hospital prepared its data with {}, ran the models and \
         scored them with {}; the committee's reference model is {}. Each is pinned by hash \
         (see the model cards and provenance below).</dd>\n</dl>",
        cube(&b.data_preparator),
        cube(&b.metrics),
        cube(&b.reference_model)
    );
}

/// `data-first`: the direction a column sorts in on its first press (the better end first).
fn first_direction(lb: &Leaderboard, metric: &str) -> &'static str {
    if metric == lb.policy.primary_metric && lb.policy.ranking == Ranking::LowerIsBetter {
        "ascending"
    } else {
        "descending"
    }
}

/// The ranked table: rank, model and the primary metric first (all a phone's first screen
/// has room for), then the other scores, the size totals, datasets and owner; how to read it
/// follows the table.
fn leaderboard(h: &mut String, lb: &Leaderboard) {
    let metrics = metric_names(lb);
    let sizes = size_names(lb);
    h.push_str(
        "<h2 id=\"leaderboard\">Leaderboard</h2>\n<div class=\"scroll\"><table class=\"sortable\" id=\"board\">",
    );
    let _ = write!(
        h,
        "<caption class=\"visually-hidden\">Models of {} ranked by {}</caption>\
         <thead><tr><th scope=\"col\" class=\"num\" data-type=\"num\" data-first=\"ascending\" aria-sort=\"ascending\"><button type=\"button\">Rank</button></th>\
         <th scope=\"col\" data-first=\"ascending\"><button type=\"button\">Model</button></th>",
        E(&lb.benchmark.name),
        E(&lb.policy.primary_metric)
    );
    for m in &metrics {
        let _ = write!(
            h,
            "<th scope=\"col\" class=\"num\" data-type=\"num\" data-first=\"{}\"><button type=\"button\">{}</button></th>",
            first_direction(lb, m),
            E(m)
        );
    }
    for n in &sizes {
        let _ = write!(
            h,
            "<th scope=\"col\" class=\"num\" data-type=\"num\" data-first=\"descending\"><button type=\"button\">{}</button></th>",
            E(&size_heading(lb, n))
        );
    }
    h.push_str(
        "<th scope=\"col\" class=\"num\" data-type=\"num\" data-first=\"descending\"><button type=\"button\">Datasets</button></th>\
         <th scope=\"col\" data-first=\"ascending\"><button type=\"button\">Owner</button></th>",
    );
    h.push_str("</tr></thead>\n<tbody>\n");
    for (i, e) in lb.entries.iter().enumerate() {
        row(h, lb, &metrics, &sizes, i, e);
    }
    h.push_str(
        "</tbody></table></div>\n<p id=\"board-status\" class=\"visually-hidden\" aria-live=\"polite\"></p>\n",
    );
    h.push_str(
        "<p class=\"hint\">Select a column heading to sort (click it, or Tab to it and press \
         Enter). Values are means across datasets",
    );
    if lb.policy.release != Release::Aggregate {
        h.push_str("; ± is the standard deviation across datasets");
    }
    h.push('.');
    if lb.has_totals() && !sizes.is_empty() {
        h.push_str(" Totals count the cases behind each model's values; they rank nothing.");
    }
    if has_ties(lb) {
        h.push_str(" Ties share a rank.");
    }
    h.push_str(" <a href=\"#about\">How to read these results</a>.</p>\n");
    let _ = writeln!(h, "<p class=\"intro-after\">{INTRO}</p>");
}

fn row(
    h: &mut String,
    lb: &Leaderboard,
    metrics: &[String],
    sizes: &[String],
    i: usize,
    e: &Entry,
) {
    let label = model_label(&e.model);
    let listed = is_listed(e);
    let _ = write!(
        h,
        "<tr data-i=\"{i}\" class=\"{}\"><td class=\"num\" data-v=\"{}\">{}</td>\
         <td class=\"model\" data-v=\"{}\"><a href=\"#model-{}\">{}</a> <span class=\"sd\">v{}</span>",
        if listed { "listed" } else { "unlisted" },
        e.rank.map(|r| r.to_string()).unwrap_or_default(),
        e.rank.map_or_else(|| "–".to_string(), |r| r.to_string()),
        E(&label),
        slug(&label),
        E(&e.model.name),
        e.model.version
    );
    if e.reference {
        h.push_str(" <span class=\"badge ref\">reference</span>");
    }
    if !e.failures.is_empty() {
        let _ = write!(
            h,
            " <span class=\"badge warn\">{} failed run{}</span>",
            e.failures.len(),
            if e.failures.len() == 1 { "" } else { "s" }
        );
    }
    h.push_str("</td>");
    for (k, m) in metrics.iter().enumerate() {
        match e.metrics.get(m) {
            Some(s) if listed => {
                let _ = write!(
                    h,
                    "<td class=\"num{}\" data-v=\"{}\">{}",
                    if k == 0 { " primary" } else { "" },
                    s.mean,
                    E(&value(s.mean))
                );
                if let Some(sd) = s.sd {
                    // On its own line: the table stays narrow enough for every metric.
                    let _ = write!(h, "<br><span class=\"sd\">± {}</span>", E(&value(sd)));
                }
                h.push_str("</td>");
            }
            _ if !listed && k == 0 => {
                let _ = write!(
                    h,
                    "<td class=\"note\" data-v=\"\">not ranked: {} of {} datasets</td>",
                    e.datasets,
                    lb.policy.min_datasets.max(1)
                );
            }
            _ => h.push_str("<td class=\"num\" data-v=\"\"></td>"),
        }
    }
    for n in sizes {
        match size_number(lb, e, n).filter(|_| listed) {
            Some(v) => {
                let _ = write!(h, "<td class=\"num\" data-v=\"{v}\">{}</td>", E(&value(v)));
            }
            None => h.push_str("<td class=\"num\" data-v=\"\"></td>"),
        }
    }
    let _ = write!(
        h,
        "<td class=\"num\" data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td>",
        e.datasets,
        e.datasets,
        E(&e.owner),
        E(&e.owner)
    );
    h.push_str("</tr>\n");
}

fn charts(h: &mut String, lb: &Leaderboard) {
    h.push_str("<h2 id=\"charts\">Charts</h2>\n");
    let listed: Vec<&Entry> = lb.entries.iter().filter(|e| is_listed(e)).collect();
    if listed.is_empty() {
        h.push_str("<p>No model has results on enough datasets to be shown yet.</p>\n");
        return;
    }
    let mut how = vec!["bars: mean across datasets".to_string()];
    if lb.policy.release != Release::Aggregate {
        how.push("whiskers: lowest to highest dataset".into());
    }
    if lb.policy.release == Release::CrossProduct {
        how.push("dots: single datasets".into());
    }
    if listed.iter().any(|e| e.reference) {
        how.push("grey bar: the reference model".into());
    }
    let _ = writeln!(
        h,
        "<p class=\"hint\">One chart per metric, models in rank order. {}. Hover a bar for \
         its values.</p>\n<div class=\"charts\">",
        capitalize(&how.join("; "))
    );
    for (i, m) in metric_names(lb).iter().enumerate() {
        let bars: Vec<Bar> = listed
            .iter()
            .filter_map(|e| {
                let s = e.metrics.get(m)?;
                Some(Bar {
                    label: model_label(&e.model),
                    mean: s.mean,
                    min: s.min,
                    max: s.max,
                    dots: e
                        .cells
                        .iter()
                        .filter_map(|c| c.metrics.get(m).map(|v| (c.dataset.clone(), *v)))
                        .collect(),
                    reference: e.reference,
                })
            })
            .collect();
        if bars.is_empty() {
            continue;
        }
        let primary = *m == lb.policy.primary_metric;
        let note = if primary {
            format!(" · primary metric, {}", ranking_text(lb.policy.ranking))
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<figure><figcaption><strong>{}</strong>{}</figcaption>{}</figure>",
            E(m),
            E(&note),
            bar_chart(
                &format!("chart-{i}"),
                &format!("{m}: mean per model across datasets"),
                &format!("{} models; {}", bars.len(), how.join("; ")),
                &bars
            )
        );
    }
    h.push_str("</div>\n");
}

/// `1 model`, `2 models`.
pub(super) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `2026-11-27T18:00:00Z` as `27 November 2026, 18:00 UTC`; anything else unchanged. Pure
/// text work (no clock, no time zone), so the page stays deterministic.
pub(super) fn human_time(s: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .map(|_| &s[r])
    };
    let shape = b.len() == 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[19] == b'Z';
    match (
        shape,
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
    ) {
        (true, Some(y), Some(m), Some(d), Some(hh), Some(mm)) => {
            let month = m
                .parse::<usize>()
                .ok()
                .and_then(|m| MONTHS.get(m.wrapping_sub(1)));
            match month {
                Some(month) => format!("{} {month} {y}, {hh}:{mm} UTC", d.trim_start_matches('0')),
                None => s.to_string(),
            }
        }
        _ => s.to_string(),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn per_dataset(h: &mut String, lb: &Leaderboard) {
    let labels = dataset_labels(lb);
    let rows: Vec<&Entry> = lb.entries.iter().filter(|e| !e.cells.is_empty()).collect();
    if labels.is_empty() || rows.is_empty() {
        return;
    }
    let primary = &lb.policy.primary_metric;
    let hover = if lb.is_unlinked() {
        ""
    } else {
        " Hover a value for the result manifest it comes from."
    };
    let _ = write!(
        h,
        "<h2 id=\"per-dataset\">Results per dataset</h2>\n<p class=\"hint\">{} of each ranked \
         model on each dataset.{hover}</p>\n\
         <div class=\"scroll\"><table class=\"sortable narrow\" id=\"matrix\"><thead><tr>\
         <th scope=\"col\" data-first=\"ascending\"><button type=\"button\">Model</button></th>",
        E(primary)
    );
    for l in &labels {
        let _ = write!(
            h,
            "<th scope=\"col\" class=\"num\" data-type=\"num\" data-first=\"{}\"><button type=\"button\">{}</button></th>",
            first_direction(lb, primary),
            E(l)
        );
    }
    h.push_str("</tr></thead><tbody>\n");
    for (i, e) in rows.iter().enumerate() {
        let label = model_label(&e.model);
        let _ = write!(
            h,
            "<tr data-i=\"{i}\"><td data-v=\"{}\">{}</td>",
            E(&label),
            E(&label)
        );
        for l in &labels {
            let cell = e.cells.iter().find(|c| &c.dataset == l);
            match cell.and_then(|c| c.metrics.get(primary).map(|v| (c, v))) {
                Some((c, v)) => match c.result.as_deref() {
                    Some(_) => {
                        let _ = write!(
                            h,
                            "<td class=\"num\" data-v=\"{v}\" title=\"{}\">{}</td>",
                            E(&details::manifest_title(lb, c.result.as_deref())),
                            E(&value(*v))
                        );
                    }
                    None => {
                        let _ =
                            write!(h, "<td class=\"num\" data-v=\"{v}\">{}</td>", E(&value(*v)));
                    }
                },
                None => h.push_str("<td class=\"num\" data-v=\"\">–</td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str(
        "</tbody></table></div>\n<p id=\"matrix-status\" class=\"visually-hidden\" aria-live=\"polite\"></p>\n",
    );
    details::all_cells(h, lb, &rows);
}
