//! The report as a small document model (headings, paragraphs, notes, tables, figures) and
//! its two renderings: one self-contained HTML page (figures inlined as `<svg>`, a short
//! embedded style sheet, no scripts, no external references) and Markdown (figures as links to
//! `figures/<name>.svg` written beside it). All text is plain and escaped by each renderer.

/// A block of the report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    /// A section heading (level 2) with its anchor id.
    Section { id: String, title: String },
    /// A paragraph.
    Paragraph(String),
    /// A "not run" or caveat note, set apart.
    Note(String),
    /// A table.
    Table(Table),
    /// A figure.
    Figure(Figure),
}

/// A table: header cells and rows of cells.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// An SVG figure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    /// File name under `figures/` (e.g. `layers.svg`).
    pub file: String,
    /// Caption (also the Markdown alt text).
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Document {
    /// The figures, in order.
    pub fn figures(&self) -> impl Iterator<Item = &Figure> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Figure(f) => Some(f),
            _ => None,
        })
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;\
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ccc;padding-bottom:.2em}\
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em;margin:.8em 0}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{font-size:.9em;color:#555;margin-top:.3em}nav a{margin-right:1em}";

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes text for Markdown (inline text and table cells): the characters that start
/// inline markup, pipes, a leading block marker (`#`, `>`, `-`, `+`), and newlines (as
/// spaces).
pub(crate) fn escape_markdown(text: &str) -> String {
    escape_markdown_inline(text, true)
}

/// [`escape_markdown`] without the leading block marker rule when `line_start` is false
/// (table cells).
fn escape_markdown_inline(text: &str, line_start: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '#' | '>' | '-' | '+' if i == 0 && line_start => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// The SVG of a figure for inlining in HTML: the XML namespace attribute (optional in HTML)
/// is dropped, so the page holds no URL at all.
fn inline_svg(svg: &str) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

/// Whether a table cell holds a number (right-aligned in HTML).
fn numeric(cell: &str) -> bool {
    let t = cell.trim().trim_end_matches('%');
    !t.is_empty() && t != "-" && t.parse::<f64>().is_ok()
}

/// The HTML page.
pub(crate) fn render_html(doc: &Document) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<title>{}</title>\n", escape_html(&doc.title)));
    out.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    out.push_str(&format!("<h1>{}</h1>\n", escape_html(&doc.title)));
    let sections: Vec<(&str, &str)> = doc
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Section { id, title } => Some((id.as_str(), title.as_str())),
            _ => None,
        })
        .collect();
    if !sections.is_empty() {
        out.push_str("<nav>");
        for (id, title) in &sections {
            out.push_str(&format!(
                "<a href=\"#{}\">{}</a>",
                escape_html(id),
                escape_html(title)
            ));
        }
        out.push_str("</nav>\n");
    }
    for block in &doc.blocks {
        match block {
            Block::Section { id, title } => out.push_str(&format!(
                "<h2 id=\"{}\">{}</h2>\n",
                escape_html(id),
                escape_html(title)
            )),
            Block::Paragraph(text) => out.push_str(&format!("<p>{}</p>\n", escape_html(text))),
            Block::Note(text) => {
                out.push_str(&format!("<p class=\"note\">{}</p>\n", escape_html(text)))
            }
            Block::Table(table) => {
                out.push_str("<table>\n<thead><tr>");
                for cell in &table.header {
                    out.push_str(&format!("<th>{}</th>", escape_html(cell)));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in &table.rows {
                    out.push_str("<tr>");
                    for cell in row {
                        let class = if numeric(cell) { " class=\"num\"" } else { "" };
                        out.push_str(&format!("<td{class}>{}</td>", escape_html(cell)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Block::Figure(figure) => out.push_str(&format!(
                "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
                inline_svg(&figure.svg).trim_end(),
                escape_html(&figure.caption)
            )),
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The Markdown document; figures link to `figures/<file>`.
pub(crate) fn render_markdown(doc: &Document) -> String {
    let mut out = format!("# {}\n", escape_markdown(&doc.title));
    for block in &doc.blocks {
        out.push('\n');
        match block {
            Block::Section { title, .. } => {
                out.push_str(&format!("## {}\n", escape_markdown(title)))
            }
            Block::Paragraph(text) => out.push_str(&format!("{}\n", escape_markdown(text))),
            Block::Note(text) => out.push_str(&format!("> {}\n", escape_markdown(text))),
            Block::Table(table) => {
                let row = |cells: &[String]| {
                    let cells: Vec<String> = cells
                        .iter()
                        .map(|c| escape_markdown_inline(c, false))
                        .collect();
                    format!("| {} |\n", cells.join(" | "))
                };
                out.push_str(&row(&table.header));
                let rule: Vec<&str> = table.header.iter().map(|_| "---").collect();
                out.push_str(&format!("| {} |\n", rule.join(" | ")));
                for cells in &table.rows {
                    out.push_str(&row(cells));
                }
            }
            Block::Figure(figure) => out.push_str(&format!(
                "![{}](figures/{})\n\n*{}*\n",
                escape_markdown(&figure.caption),
                figure.file,
                escape_markdown(&figure.caption)
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Document {
        Document {
            title: "Run <a> & b".into(),
            blocks: vec![
                Block::Section {
                    id: "s".into(),
                    title: "Section | one".into(),
                },
                Block::Paragraph("x * y_z".into()),
                Block::Note("not run".into()),
                Block::Table(Table {
                    header: vec!["name".into(), "value".into()],
                    rows: vec![vec!["a|b".into(), "1.5".into()]],
                }),
                Block::Figure(Figure {
                    file: "f.svg".into(),
                    caption: "A figure".into(),
                    svg: "<svg width=\"1\" xmlns=\"http://www.w3.org/2000/svg\">\n</svg>\n".into(),
                }),
            ],
        }
    }

    #[test]
    fn html_is_escaped_self_contained_and_inlines_svg() {
        let html = render_html(&doc());
        assert!(html.contains("<title>Run &lt;a&gt; &amp; b</title>"));
        assert!(html.contains("<svg width=\"1\">"));
        assert!(!html.contains("http"));
        assert!(html.contains("<td class=\"num\">1.5</td>"));
        assert!(html.contains("<p class=\"note\">not run</p>"));
        assert!(html.contains("<a href=\"#s\">"));
    }

    #[test]
    fn markdown_escapes_and_links_figures() {
        let md = render_markdown(&doc());
        assert!(md.starts_with("# Run \\<a> & b\n"));
        assert_eq!(escape_markdown("> a -> b"), "\\> a -> b");
        assert_eq!(escape_markdown("-84.7%"), "\\-84.7%");
        assert_eq!(escape_markdown_inline("-84.7%", false), "-84.7%");
        assert!(md.contains("## Section \\| one"));
        assert!(md.contains("x \\* y\\_z"));
        assert!(md.contains("| a\\|b | 1.5 |"));
        assert!(md.contains("![A figure](figures/f.svg)"));
        assert!(md.contains("> not run"));
    }
}
