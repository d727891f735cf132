//! Reading the configuration file (TOML, <https://toml.io>, with the `toml`
//! crate): every error names the file, and where the file is at fault, the
//! line and the key.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use super::options::Options;

/// A configuration file as read: its options, and its text, so that a
/// value found bad after parsing (a domain, a network) can be reported at
/// its line.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub options: Options,
    text: String,
}

impl ConfigFile {
    /// Reads and parses `path`. Errors: the file cannot be read; it is not
    /// TOML; a key is unknown or its value has the wrong type (the `toml`
    /// crate's message, which gives the line, the column and the key).
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path).map_err(|err| anyhow!("{}: {err}", path.display()))?;
        Self::parse(path, text)
    }

    /// Parses `text` as the contents of `path`.
    pub fn parse(path: &Path, text: String) -> Result<ConfigFile> {
        let options: Options = toml::from_str(&text).map_err(|err| {
            let line = err.span().map(|span| line_of(&text, span.start));
            let message = err.message().trim_end();
            match line {
                Some(line) => anyhow!("{}:{line}: {message}", path.display()),
                None => anyhow!("{}: {message}", path.display()),
            }
        })?;
        Ok(ConfigFile { path: path.to_path_buf(), options, text })
    }

    /// An error about the value of `key` found at `span` of the file.
    pub fn error_at(&self, span: Range<usize>, key: &str, err: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}:{}: {key}: {err}", self.path.display(), line_of(&self.text, span.start))
    }

    /// An error about `key`, whose line is not known (a value that came
    /// from a flag, or a table read from another file).
    pub fn error(&self, key: &str, err: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}: {key}: {err}", self.path.display())
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile> {
        ConfigFile::parse(Path::new("smtpcell.toml"), text.to_string())
    }

    #[test]
    fn keys_are_the_flag_names_with_underscores() {
        let file = parse(
            "listen = \"127.0.0.1:25\"\nmax_recipients = 50\nrequire_tls = true\n\
             domains = [\"example.org\"]\n[greylisting]\nenabled = true\n",
        )
        .unwrap();
        assert_eq!(file.options.listen, Some("127.0.0.1:25".parse().unwrap()));
        assert_eq!(file.options.max_recipients, Some(50));
        assert!(file.options.require_tls);
        assert_eq!(file.options.domains.unwrap().into_inner(), ["example.org"]);
        assert!(file.options.greylisting.unwrap().enabled);
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_key() {
        for (text, line, words) in [
            ("hostname = \"mx\"\nmax_recipents = 5\n", 2, "max_recipents"),
            ("hostname = \"mx\"\n\nmax_recipients = \"many\"\n", 3, "invalid type"),
            ("listen = \"nowhere\"\n", 1, "invalid"),
            ("[rate_limits]\nclient_conections_per_minute = 5\n", 2, "client_conections_per_minute"),
            ("hostname = \n", 1, ""),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("smtpcell.toml:{line}: ")), "{text:?}: {err}");
            assert!(err.contains(words), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = ConfigFile::read(Path::new("/nonexistent/smtpcell.toml")).unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/smtpcell.toml: "), "{err}");
    }
}
