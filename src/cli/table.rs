//! Terminal tables, one style for every listing: as wide as the terminal (wrapped between
//! words), at most [`NO_TERMINAL_WIDTH`] columns when there is none, and a sentence instead of
//! an empty box.

use std::io::IsTerminal;

use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};

use super::ui::Ui;

/// The width of a table printed to a pipe, a file or a CI log.
pub const NO_TERMINAL_WIDTH: u16 = 100;

pub fn new(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    // comfy-table fits a terminal it can measure; elsewhere it would never wrap.
    if !std::io::stdout().is_terminal() {
        t.set_width(NO_TERMINAL_WIDTH);
    }
    t
}

/// Prints `t` to stdout, or, when it has no rows, says `empty` (e.g. "no benchmarks yet") on
/// stderr: an empty box tells nothing.
pub fn print(ui: &Ui, t: &Table, empty: &str) {
    if t.row_count() == 0 {
        ui.status(empty);
    } else {
        ui.out(t.to_string());
    }
}

/// `text` cut to at most `max` characters by taking out its middle: the start and the end of a
/// path say the most (where it is, which file), and a path wrapped over many lines cannot be
/// copied.
pub fn shorten_middle(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max || max < 5 {
        return text.to_string();
    }
    let keep = max - 1;
    let head = keep / 3;
    let tail = keep - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_lose_their_middle() {
        let p = "/home/someone/.local/share/cohort/runs/0123456789abcdef/logs/prepare.log";
        let s = shorten_middle(p, 40);
        assert_eq!(s.chars().count(), 40);
        assert!(s.starts_with("/home/someone"), "{s}");
        assert!(s.ends_with("/logs/prepare.log"), "{s}");
        assert_eq!(shorten_middle("short", 40), "short");
    }

    #[test]
    fn tables_without_a_terminal_are_at_most_100_columns_and_wrap_between_words() {
        let mut t = new(&["name", "description"]);
        let long = "word ".repeat(60);
        t.add_row(vec!["heart", long.trim()]);
        let text = t.to_string();
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "{line}");
        }
        // Wrapped between words: no line ends inside one.
        assert!(text.lines().count() > 3);
        assert!(!text.contains("wor\n"), "{text}");
    }
}
