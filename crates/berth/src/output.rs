//! Plain-text tables, aligned fields and JSON output for read commands.

use clap::ValueEnum;
use serde::Serialize;

/// How read commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: cannot render JSON: {error}"),
    }
}

/// Renders rows as left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == cells.len() {
                    c.to_string()
                } else {
                    format!("{c:<width$}", width = widths[i])
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// Prints `items` as JSON, or as a table with one `row` per item.
pub fn list<T: Serialize>(
    format: Format,
    items: &[T],
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    match format {
        Format::Json => json(&items),
        Format::Table => {
            let rows: Vec<Vec<String>> = items.iter().map(row).collect();
            println!("{}", table(header, &rows));
        }
    }
}

/// Prints `item` as JSON, or through `human`.
pub fn one<T: Serialize>(format: Format, item: &T, human: impl FnOnce(&T)) {
    match format {
        Format::Json => json(item),
        Format::Table => human(item),
    }
}

/// Renders `label: value` lines with the values aligned.
pub fn fields(fields: &[(&str, String)]) -> String {
    let width = fields
        .iter()
        .map(|(label, _)| label.chars().count() + 1)
        .max()
        .unwrap_or(0);
    fields
        .iter()
        .map(|(label, value)| format!("{:<width$} {value}", format!("{label}:")))
        .map(|line| line.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["web".to_string(), "3/3".to_string()],
            vec!["worker-long".to_string(), "0/1".to_string()],
        ];
        assert_eq!(
            table(&["NAME", "READY"], &rows),
            "NAME         READY\nweb          3/3\nworker-long  0/1"
        );
        assert_eq!(table(&["A"], &[]), "A");
    }

    #[test]
    fn fields_align() {
        let lines = fields(&[
            ("user", "alice".into()),
            ("admin", "no".into()),
            ("email", String::new()),
        ]);
        assert_eq!(lines, "user:  alice\nadmin: no\nemail:");
        assert_eq!(fields(&[]), "");
    }
}
