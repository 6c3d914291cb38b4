//! The TOML config file (`--config FILE`): top-level defaults and one
//! `[[pair]]` table per pair, every key named like the long option, `_` for
//! `-`. Every problem is reported as `FILE:LINE:COLUMN: reason`, at the key
//! or value it is about: unknown keys and bad values by the parser (each
//! field is `Spanned`), the rest by the same validation as the command
//! line, pointed back at the field its message names.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{RawPair, SyncOptions, parse_size};
use crate::excludes::ExcludeLists;

/// The top level (defaults) or one `[[pair]]`: the same keys, except that
/// `name`, `source`, `replica` belong to a pair and `pair` to the top.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Table {
    name: Option<Spanned<String>>,
    source: Option<Spanned<PathBuf>>,
    replica: Option<Spanned<PathBuf>>,
    interval: Option<Spanned<Interval>>,
    log: Option<Spanned<PathBuf>>,
    two_way: Option<bool>,
    watch: Option<bool>,
    exclude: Option<Vec<String>>,
    exclude_from: Option<Spanned<Vec<PathBuf>>>,
    delete_excluded: Option<bool>,
    max_delete: Option<u64>,
    checksum: Option<bool>,
    fsync: Option<bool>,
    jobs: Option<NonZeroUsize>,
    cache_limit: Option<Spanned<Size>>,
    allow_empty_source: Option<bool>,
    pair: Option<Vec<Spanned<Table>>>,
}

/// `interval = 30` or `interval = "5m"`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Interval {
    Seconds(f64),
    Text(String),
}

/// `cache_limit = 1048576` or `cache_limit = "64MiB"`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// One pair read from the file, with where each of its fields is.
pub struct FilePair {
    pub raw: RawPair,
    /// `FILE:LINE:COLUMN` of the pair's table.
    pub at: String,
    /// `FILE:LINE:COLUMN` of `source`, `replica`, `interval`, `log`,
    /// `name`, `exclude_from`, by key.
    fields: HashMap<&'static str, String>,
}

impl FilePair {
    /// Where a validation message is about: the field it names first,
    /// else the pair's table.
    pub fn locate(&self, message: &str) -> String {
        let key = [
            ("source", "source"),
            ("replica", "replica"),
            ("log file", "log"),
            ("interval", "interval"),
            ("exclude", "exclude_from"),
        ]
        .into_iter()
        .find(|(said, _)| message.starts_with(said))
        .map(|(_, key)| key);
        let at = key.and_then(|k| self.fields.get(k)).unwrap_or(&self.at);
        format!("{at}: {message}")
    }
}

/// Positions in one file's text.
struct Places<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Places<'_> {
    /// `FILE:LINE:COLUMN` of a byte offset (both counted from 1).
    fn at(&self, span: Range<usize>) -> String {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.len(), |i| before.len() - i - 1)
            + 1;
        format!("{}:{line}:{column}", self.file.display())
    }

    fn error(&self, span: Range<usize>, message: impl std::fmt::Display) -> String {
        format!("{}: {message}", self.at(span))
    }
}

/// Reads and parses a config file into its pairs, each with the command
/// line's options (`defaults`) under the file's top level under its own
/// table. Paths are relative to the file's folder.
pub fn load(file: &Path, defaults: (SyncOptions, &ExcludeLists)) -> Result<Vec<FilePair>, String> {
    let bytes = super::pairs_file::read_regular(file, "a config file")
        .map_err(|e| format!("config file {}: {e}", file.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("config file {}: not valid UTF-8 text", file.display()))?;
    parse(file, &text, defaults)
}

/// Parses a config file's text; see [`load`].
pub fn parse(
    file: &Path,
    text: &str,
    defaults: (SyncOptions, &ExcludeLists),
) -> Result<Vec<FilePair>, String> {
    let places = Places { file, text };
    let top: Table = toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end();
        match e.span() {
            Some(span) => places.error(span, message),
            None => format!("{}: {message}", file.display()),
        }
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    for (key, span) in [
        ("name", top.name.as_ref().map(Spanned::span)),
        ("source", top.source.as_ref().map(Spanned::span)),
        ("replica", top.replica.as_ref().map(Spanned::span)),
    ] {
        if let Some(span) = span {
            return Err(places.error(
                span,
                format!("`{key}` belongs in a [[pair]] table, not at the top level"),
            ));
        }
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut pairs = Vec::new();
    for table in top.pair.clone().unwrap_or_default() {
        let pair = one_pair(&places, base, &top, &table, defaults)?;
        if let Some(name) = &table.get_ref().name {
            let at = places.at(name.span());
            if let Some(first) = seen.insert(name.get_ref().clone(), at.clone()) {
                return Err(format!(
                    "{at}: the pair name {:?} is taken already (at {first}); names must be unique",
                    name.get_ref()
                ));
            }
        }
        pairs.push(pair);
    }
    Ok(pairs)
}

/// One `[[pair]]` table over the top level's defaults.
fn one_pair(
    places: &Places<'_>,
    base: &Path,
    top: &Table,
    table: &Spanned<Table>,
    defaults: (SyncOptions, &ExcludeLists),
) -> Result<FilePair, String> {
    let t = table.get_ref();
    let at = places.at(table.span());
    if let Some(nested) = &t.pair {
        let span = nested.first().map_or(table.span(), Spanned::span);
        return Err(places.error(span, "a [[pair]] cannot hold pairs of its own"));
    }
    let missing = |key: &str| format!("{at}: this [[pair]] has no `{key}`");
    let mut fields = HashMap::new();
    let mut path = |key: &'static str, value: Option<&Spanned<PathBuf>>| {
        value.map(|v| {
            fields.insert(key, places.at(v.span()));
            base.join(v.get_ref())
        })
    };
    let source = path("source", t.source.as_ref()).ok_or_else(|| missing("source"))?;
    let replica = path("replica", t.replica.as_ref()).ok_or_else(|| missing("replica"))?;
    let log_file =
        path("log", t.log.as_ref().or(top.log.as_ref())).ok_or_else(|| missing("log"))?;
    let interval = t.interval.as_ref().or(top.interval.as_ref());
    let interval = interval.ok_or_else(|| missing("interval"))?;
    fields.insert("interval", places.at(interval.span()));
    let interval = match interval.get_ref() {
        Interval::Seconds(n) => n.to_string(),
        Interval::Text(text) => text.clone(),
    };
    if let Some(name) = &t.name {
        fields.insert("name", places.at(name.span()));
        if name.get_ref().trim().is_empty() {
            return Err(places.error(name.span(), "a pair's name cannot be empty"));
        }
    }
    let (options, excludes) = options(places, base, top, t, defaults)?;
    if let Some(from) = t.exclude_from.as_ref().or(top.exclude_from.as_ref()) {
        fields.insert("exclude_from", places.at(from.span()));
    }
    let raw = RawPair {
        source,
        replica,
        interval,
        log_file,
        watch: t.watch.or(top.watch).unwrap_or(false),
        two_way: t.two_way.or(top.two_way).unwrap_or(false),
        name: t.name.as_ref().map(|n| n.get_ref().clone()),
        options,
        excludes,
    };
    Ok(FilePair { raw, at, fields })
}

/// A pair's options: its table's, else the top level's, else the command
/// line's.
fn options(
    places: &Places<'_>,
    base: &Path,
    top: &Table,
    t: &Table,
    (cli, cli_excludes): (SyncOptions, &ExcludeLists),
) -> Result<(SyncOptions, ExcludeLists), String> {
    let cache_limit = match t.cache_limit.as_ref().or(top.cache_limit.as_ref()) {
        None => cli.cache_limit,
        Some(size) => Some(match size.get_ref() {
            Size::Bytes(n) => {
                usize::try_from(*n).map_err(|_| places.error(size.span(), "too large"))?
            }
            Size::Text(text) => parse_size(text).map_err(|e| places.error(size.span(), e))?,
        }),
    };
    let options = SyncOptions {
        checksum: t.checksum.or(top.checksum).unwrap_or(cli.checksum),
        dry_run: cli.dry_run,
        fsync: t.fsync.or(top.fsync).unwrap_or(cli.fsync),
        allow_empty_source: t
            .allow_empty_source
            .or(top.allow_empty_source)
            .unwrap_or(cli.allow_empty_source),
        delete_excluded: t
            .delete_excluded
            .or(top.delete_excluded)
            .unwrap_or(cli.delete_excluded),
        max_delete: t.max_delete.or(top.max_delete).or(cli.max_delete),
        cache_limit,
        jobs: t.jobs.or(top.jobs).or(cli.jobs),
    };
    let patterns = t.exclude.as_ref().or(top.exclude.as_ref());
    let files = t.exclude_from.as_ref().or(top.exclude_from.as_ref());
    let excludes = if patterns.is_none() && files.is_none() {
        cli_excludes.clone()
    } else {
        ExcludeLists {
            patterns: patterns.cloned().unwrap_or_default(),
            files: files.map_or_else(Vec::new, |f| {
                f.get_ref().iter().map(|p| base.join(p)).collect()
            }),
        }
    };
    Ok((options, excludes))
}
