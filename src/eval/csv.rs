//! A small RFC 4180 CSV reader and writer.
//!
//! Hand-written because no CSV crate is in the dependency tree and adding
//! one recompiles shared crates for minutes on this machine; the format is
//! small enough that a reader of ~100 lines covers it: quoted fields with
//! doubled quotes, commas and newlines inside quotes, CRLF or LF line ends,
//! an optional UTF-8 BOM. Errors name the line and what was wrong.

use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CsvError {
    #[error("CSV line {line}: unterminated quoted field")]
    Unterminated { line: usize },
    #[error("CSV line {line}: unexpected character {found:?} after a closing quote")]
    AfterQuote { line: usize, found: char },
    #[error("CSV has no header row")]
    NoHeader,
    #[error("CSV header has no column {name:?} (columns: {columns})")]
    MissingColumn { name: String, columns: String },
    #[error("CSV header repeats column {name:?}")]
    DuplicateColumn { name: String },
    #[error("CSV line {line}: {found} fields, the header has {expected}")]
    FieldCount { line: usize, expected: usize, found: usize },
}

/// One parsed record with the line it started on (1-based), for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Parses all records of `text`. Blank lines between records are skipped.
pub fn parse(text: &str) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    loop {
        // Skip blank lines between records.
        while let Some(&c) = chars.peek() {
            if c == '\n' {
                line += 1;
                chars.next();
            } else if c == '\r' {
                chars.next();
            } else {
                break;
            }
        }
        if chars.peek().is_none() {
            break;
        }
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted_field = false;
        loop {
            match chars.next() {
                None => {
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some('"') if field.is_empty() && !quoted_field => {
                    quoted_field = true;
                    loop {
                        match chars.next() {
                            None => return Err(CsvError::Unterminated { line: start }),
                            Some('"') => {
                                if chars.peek() == Some(&'"') {
                                    chars.next();
                                    field.push('"');
                                } else {
                                    break;
                                }
                            }
                            Some(c) => {
                                if c == '\n' {
                                    line += 1;
                                }
                                field.push(c);
                            }
                        }
                    }
                    match chars.peek() {
                        None | Some(',') | Some('\n') | Some('\r') => {}
                        Some(&c) => return Err(CsvError::AfterQuote { line, found: c }),
                    }
                }
                Some(',') => {
                    fields.push(std::mem::take(&mut field));
                    quoted_field = false;
                }
                Some('\r') if chars.peek() == Some(&'\n') => {}
                Some('\n') => {
                    line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some(c) => field.push(c),
            }
        }
        records.push(Record { line: start, fields });
    }
    Ok(records)
}

/// A CSV with a header row: records checked to have the header's width.
#[derive(Debug, Clone)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Record>,
    index: HashMap<String, usize>,
}

impl Table {
    pub fn parse(text: &str) -> Result<Self, CsvError> {
        let mut records = parse(text)?.into_iter();
        let header = records.next().ok_or(CsvError::NoHeader)?.fields;
        let mut index = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            if index.insert(name.clone(), i).is_some() {
                return Err(CsvError::DuplicateColumn { name: name.clone() });
            }
        }
        let rows: Vec<Record> = records.collect();
        for r in &rows {
            if r.fields.len() != header.len() {
                return Err(CsvError::FieldCount { line: r.line, expected: header.len(), found: r.fields.len() });
            }
        }
        Ok(Self { header, rows, index })
    }

    /// The index of column `name`, or an error listing the columns there are.
    pub fn column(&self, name: &str) -> Result<usize, CsvError> {
        self.index.get(name).copied().ok_or_else(|| CsvError::MissingColumn {
            name: name.to_string(),
            columns: self.header.join(", "),
        })
    }
}

/// Quotes a field when it holds a comma, quote, CR or LF (RFC 4180).
pub fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// One CSV line (with the trailing LF) from fields.
pub fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut s = fields.iter().map(|f| quote(f.as_ref())).collect::<Vec<_>>().join(",");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_with_commas_quotes_and_newlines() {
        let t = "a,b\r\n\"x, \"\"y\"\"\",\"two\nlines\"\n3,\n";
        let r = parse(t).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].fields, vec!["x, \"y\"", "two\nlines"]);
        assert_eq!(r[2].line, 4);
        assert_eq!(r[2].fields, vec!["3", ""]);
    }

    #[test]
    fn round_trip_through_line() {
        let fields = ["plain", "with,comma", "with \"quote\"", "multi\nline", ""];
        let text = line(&fields);
        let r = parse(&text).unwrap();
        assert_eq!(r[0].fields, fields);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("a\n\"open").unwrap_err(), CsvError::Unterminated { line: 2 });
        assert!(matches!(parse("\"a\"b").unwrap_err(), CsvError::AfterQuote { line: 1, found: 'b' }));
        let e = Table::parse("a,b\n1,2\n3\n").unwrap_err();
        assert_eq!(e, CsvError::FieldCount { line: 3, expected: 2, found: 1 });
        let t = Table::parse("a,b\n1,2\n").unwrap();
        assert!(t.column("c").unwrap_err().to_string().contains("columns: a, b"));
    }
}
