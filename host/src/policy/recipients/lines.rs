//! The recipients table's lines, as postmap reads a virtual(5) source file
//! (Postfix's readlline): blank lines and comments are ignored, a line that
//! starts with whitespace continues the entry above it. No crate parses
//! Postfix tables, and the format is this small, so it is read here line by
//! line rather than through a general-purpose parser.

use anyhow::{Result, bail};

/// A word of the table and the line it is on (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Word<'a> {
    pub text: &'a str,
    pub line: usize,
}

/// One entry: its key and its targets, as written.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Entry<'a> {
    pub key: Word<'a>,
    pub targets: Vec<Word<'a>>,
}

/// Splits `text` into entries. A `#` at the start of a line or after
/// whitespace starts a comment to the end of the line (a `#` inside a word
/// is part of it: it is atext, RFC 5322). Words are separated by
/// whitespace and/or commas; the first word of an entry is its key, the
/// others its targets. A trailing `\r` is ignored.
///
/// # Errors
/// `ORIGIN:LINE: ...` for an indented line with no entry above it to
/// continue (postmap warns and skips it; a table that cannot start the
/// server should say so instead).
pub(super) fn entries<'a>(text: &'a str, origin: &str) -> Result<Vec<Entry<'a>>> {
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = uncommented(line.strip_suffix('\r').unwrap_or(line));
        let mut words = line
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .map(|text| Word { text, line: number });
        let Some(first) = words.next() else { continue };
        if line.starts_with(char::is_whitespace) {
            let Some(entry) = entries.last_mut() else {
                bail!("{origin}:{number}: an indented line continues an entry, but no entry starts above it");
            };
            entry.targets.push(first);
            entry.targets.extend(words);
        } else {
            entries.push(Entry { key: first, targets: words.collect() });
        }
    }
    Ok(entries)
}

/// `line` up to its comment, if it has one.
fn uncommented(line: &str) -> &str {
    let mut after_space = true;
    for (at, c) in line.char_indices() {
        if c == '#' && after_space {
            return &line[..at];
        }
        after_space = c.is_whitespace();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words<'a>(entry: &Entry<'a>) -> Vec<(&'a str, usize)> {
        std::iter::once(&entry.key).chain(&entry.targets).map(|w| (w.text, w.line)).collect()
    }

    #[test]
    fn entries_span_indented_lines_around_comments_and_blanks() {
        let text = "# the table\r\n\
                    a@x.test b@x.test,c@x.test , d@x.test # d too\r\n\
                    \n\
                    \t# still a@x.test's\n\
                    \te@x.test,\n  f@x.test\n\
                    g#h@x.test\ti@x.test#j\n";
        let entries = entries(text, "t").unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            words(&entries[0]),
            [("a@x.test", 2), ("b@x.test", 2), ("c@x.test", 2), ("d@x.test", 2), ("e@x.test", 5), ("f@x.test", 6)]
        );
        assert_eq!(words(&entries[1]), [("g#h@x.test", 7), ("i@x.test#j", 7)]);
    }

    #[test]
    fn a_key_alone_is_an_entry_without_targets() {
        let entries = entries("a@x.test\nb@x.test # nothing\n", "t").unwrap();
        assert_eq!(
            entries.iter().map(|e| (e.key.text, e.targets.len())).collect::<Vec<_>>(),
            [("a@x.test", 0), ("b@x.test", 0)]
        );
        assert!(super::entries("", "t").unwrap().is_empty());
        assert!(super::entries("\n  \n# only\n   # comments\n", "t").unwrap().is_empty());
    }

    #[test]
    fn an_indented_line_with_nothing_to_continue_is_an_error() {
        let err = entries("# header\n\n  b@x.test\n", "t").unwrap_err().to_string();
        assert!(err.starts_with("t:3: "), "{err}");
    }
}
