//! Exclude patterns: the run's (`--exclude`, `--exclude-from`) and each
//! pair's own `.foldersyncignore` at its source root, in gitignore syntax,
//! matched against paths relative to the pair's root.
//!
//! The matching is the `ignore` crate's gitignore matcher (ripgrep's): the
//! syntax is the one users know from git, with its corner cases (`/a`
//! anchored, `a/` folders only, `**`, `!` re-including, later lines winning)
//! already right and tested there.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The name of a pair's own pattern file, at its source root.
pub const IGNORE_FILE: &str = ".foldersyncignore";

/// One pattern as written, with where it came from for error messages.
#[derive(Clone, Debug)]
struct Line {
    /// `FILE:LINE`, or `--exclude` for one given on the command line.
    origin: String,
    text: String,
}

/// A pair's `exclude` patterns and `exclude_from` files, as given (the
/// command line's, or a config file's): what [`Patterns::load`] reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExcludeLists {
    pub patterns: Vec<String>,
    pub files: Vec<PathBuf>,
}

/// A pair's patterns (the run's, or its config table's), checked at start.
#[derive(Clone, Debug, Default)]
pub struct Patterns {
    /// The `--exclude` patterns.
    given: Vec<Line>,
    /// The `--exclude-from` files, read again by each pair when they
    /// change.
    files: Vec<PathBuf>,
}

impl Patterns {
    /// The `--exclude` patterns, then those of each `--exclude-from` file;
    /// `Err` (bad input) names the file and line that cannot be used.
    pub fn load(patterns: &[String], files: &[PathBuf]) -> Result<Patterns, String> {
        let given: Vec<Line> = patterns
            .iter()
            .map(|p| Line {
                origin: "--exclude".into(),
                text: p.clone(),
            })
            .collect();
        let run = Patterns {
            given,
            files: files.to_vec(),
        };
        // Parse now, so a bad line stops the run before anything starts.
        build(&run.lines()?)?;
        Ok(run)
    }

    /// The `--exclude` patterns, then those of each `--exclude-from` file
    /// as it reads now.
    fn lines(&self) -> Result<Vec<Line>, String> {
        let mut lines = self.given.clone();
        for file in &self.files {
            lines.extend(read_lines(file)?);
        }
        Ok(lines)
    }

    /// The `--exclude-from` files.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// The patterns a pass applies, ready to match.
#[derive(Debug)]
pub struct Matcher {
    gitignore: Gitignore,
}

impl Matcher {
    /// Whether the entry at `rel` (relative to the pair's root) is left
    /// out. Its parents need no check: an excluded folder is never entered.
    pub fn excludes(&self, rel: &[u8], is_dir: bool) -> bool {
        !self.gitignore.is_empty()
            && self
                .gitignore
                .matched(Path::new(OsStr::from_bytes(rel)), is_dir)
                .is_ignore()
    }

    pub fn is_empty(&self) -> bool {
        self.gitignore.is_empty()
    }

    /// How many patterns (comments and blank lines not counted).
    pub fn len(&self) -> usize {
        self.gitignore.len()
    }
}

/// What identifies a version of a file without reading it: any write,
/// rename over it or `touch` changes one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// One pair's patterns: the run's plus its `.foldersyncignore`, each file
/// read again when it changes.
#[derive(Debug)]
pub struct PairExcludes {
    run: Arc<Patterns>,
    file: PathBuf,
    /// The stamps of the `--exclude-from` files and then of the
    /// `.foldersyncignore` the patterns were built from; `None` for a file
    /// there was not.
    stamps: Vec<Option<Stamp>>,
    matcher: Arc<Matcher>,
}

impl PairExcludes {
    /// The run's patterns with those of `source`'s `.foldersyncignore`;
    /// `Err` (bad input) names the file and line that cannot be used.
    pub fn load(run: Arc<Patterns>, source: &Path) -> Result<PairExcludes, String> {
        let file = source.join(IGNORE_FILE);
        let (stamps, matcher) = read_pair(&run, &file)?;
        Ok(PairExcludes {
            run,
            file,
            stamps,
            matcher: Arc::new(matcher),
        })
    }

    /// Reads the pattern files again if one changed (a stat each, cheap
    /// enough for every pass). `Ok(true)`: the patterns changed. On `Err`
    /// the previous patterns stay in force, and the next call tries again.
    pub fn refresh(&mut self) -> Result<bool, String> {
        if stamps_of(&self.run, &self.file)? == self.stamps {
            return Ok(false);
        }
        let (stamps, matcher) = read_pair(&self.run, &self.file)?;
        self.stamps = stamps;
        self.matcher = Arc::new(matcher);
        Ok(true)
    }

    /// The files the patterns come from, for a watch to tell of their
    /// changes: the `--exclude-from` files and `.foldersyncignore`.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = self.run.files().to_vec();
        files.push(self.file.clone());
        files
    }

    pub fn matcher(&self) -> Arc<Matcher> {
        Arc::clone(&self.matcher)
    }
}

/// The stamp of the pair's pattern file; `None` when there is none.
fn stamp_of(file: &Path) -> Result<Option<Stamp>, String> {
    match fs::metadata(file) {
        Ok(m) => Ok(Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

/// The stamps of the run's pattern files, then of the pair's own.
fn stamps_of(run: &Patterns, file: &Path) -> Result<Vec<Option<Stamp>>, String> {
    let mut stamps = Vec::with_capacity(run.files.len() + 1);
    for f in &run.files {
        stamps.push(stamp_of(f)?);
    }
    stamps.push(stamp_of(file)?);
    Ok(stamps)
}

/// Stats, then reads and builds: a change between the two is seen at the
/// next refresh, never missed.
fn read_pair(run: &Patterns, file: &Path) -> Result<(Vec<Option<Stamp>>, Matcher), String> {
    let stamps = stamps_of(run, file)?;
    let mut lines = run.lines()?;
    if stamps.last().is_some_and(Option::is_some) {
        match read_lines(file) {
            Ok(own) => lines.extend(own),
            // Removed since the stat: no patterns of its own.
            Err(_) if matches!(stamp_of(file), Ok(None)) => return read_pair(run, file),
            Err(e) => return Err(e),
        }
    }
    Ok((stamps, build(&lines)?))
}

/// A pattern file's lines, each with its `FILE:LINE`.
fn read_lines(file: &Path) -> Result<Vec<Line>, String> {
    let bytes = fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(n, raw)| {
            let origin = format!("{}:{}", file.display(), n + 1);
            match std::str::from_utf8(raw.strip_suffix(b"\r").unwrap_or(raw)) {
                Ok(text) => Ok(Line {
                    origin,
                    text: text.to_string(),
                }),
                Err(_) => Err(format!("{origin}: the line is not UTF-8 text")),
            }
        })
        .collect()
}

/// Builds the matcher; `Err` names the first line that does not parse.
fn build(lines: &[Line]) -> Result<Matcher, String> {
    // Root "." strips nothing from the relative paths matched.
    let mut builder = GitignoreBuilder::new(".");
    // An unclosed `[` is a typo to report, not a literal to match.
    builder.allow_unclosed_class(false);
    for line in lines {
        builder
            .add_line(None, &line.text)
            .map_err(|e| format!("{}: bad pattern {:?}: {e}", line.origin, line.text))?;
    }
    let gitignore = builder
        .build()
        .map_err(|e| format!("exclude patterns: {e}"))?;
    Ok(Matcher { gitignore })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(lines: &[&str]) -> Matcher {
        let lines: Vec<Line> = lines
            .iter()
            .map(|t| Line {
                origin: "t".into(),
                text: t.to_string(),
            })
            .collect();
        build(&lines).expect("patterns parse")
    }

    #[test]
    fn gitignore_syntax_on_relative_paths() {
        let m = matcher(&[
            "*.tmp",
            "/build/",
            "cache/",
            "**/logs",
            "*.log",
            "!keep.log",
            "# c",
        ]);
        assert_eq!(m.len(), 6);
        assert!(m.excludes(b"a.tmp", false));
        assert!(m.excludes(b"x/y/a.tmp", false));
        assert!(m.excludes(b"build", true));
        assert!(!m.excludes(b"build", false));
        assert!(!m.excludes(b"sub/build", true));
        assert!(m.excludes(b"sub/cache", true));
        assert!(!m.excludes(b"sub/cache", false));
        assert!(m.excludes(b"a/b/logs", true));
        assert!(m.excludes(b"x.log", false));
        assert!(!m.excludes(b"keep.log", false));
        assert!(!m.excludes(b"# c", false));
    }

    #[test]
    fn a_bad_line_is_named() {
        let lines = [Line {
            origin: "f:3".into(),
            text: "a[b".into(),
        }];
        let e = build(&lines).unwrap_err();
        assert!(e.starts_with("f:3: bad pattern \"a[b\""), "{e}");
    }
}
