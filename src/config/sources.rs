//! Where a run's pairs come from (the positionals, a pairs file, a config
//! file), kept so that a reload reads them again the same way, and their
//! validation as one set: each pair alone, then against each other, then
//! their exclude patterns. `--check-config` and a reload use it as is.

use std::path::PathBuf;
use std::sync::Arc;

use super::file::{self, FilePair};
use super::{PairSpec, RawPair, SyncOptions, check_overlaps, pairs_file, resolve, validate_pair};
use crate::excludes::{ExcludeLists, PairExcludes, Patterns};

/// The command line's pairs and files, and its options for them.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// SOURCE REPLICA INTERVAL LOGFILE, if given.
    pub positional: Option<RawPair>,
    pub pairs_file: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    /// The command line's options and excludes: every pair's unless its
    /// config file says otherwise.
    pub options: SyncOptions,
    pub excludes: ExcludeLists,
}

/// Where a pair came from, to say where its problem is.
enum Origin {
    CommandLine,
    /// `FILE:LINE` of a pairs file.
    Line(String),
    Table(Box<FilePair>),
}

impl Origin {
    fn locate(&self, message: String) -> String {
        match self {
            Origin::CommandLine => message,
            Origin::Line(at) => format!("{at}: {message}"),
            Origin::Table(pair) => pair.locate(&message),
        }
    }
}

impl Sources {
    /// The file a reload reads again and `ctl --config` names: the config
    /// file, else the pairs file.
    pub fn file(&self) -> Option<&PathBuf> {
        self.config_file.as_ref().or(self.pairs_file.as_ref())
    }

    /// Reads every pair and validates them as one set; nothing is created.
    pub fn load(&self) -> Result<Vec<PairSpec>, String> {
        let mut raws: Vec<(Origin, RawPair)> = Vec::new();
        if let Some(raw) = &self.positional {
            raws.push((Origin::CommandLine, self.with_defaults(raw.clone())));
        }
        if let Some(file) = &self.pairs_file {
            for (at, raw) in pairs_file::load(file)? {
                raws.push((Origin::Line(at), self.with_defaults(raw)));
            }
        }
        if let Some(file) = &self.config_file {
            for pair in file::load(file, (self.options, &self.excludes))? {
                let raw = pair.raw.clone();
                raws.push((Origin::Table(Box::new(pair)), raw));
            }
        }
        // A source inside another pair's replica may not exist yet: that
        // pair creates it (a chain).
        let upstream: Vec<PathBuf> = raws
            .iter()
            .filter_map(|(_, raw)| resolve(&raw.replica).ok())
            .collect();
        let mut specs = Vec::new();
        for (origin, raw) in &raws {
            specs.push(validate_pair(raw, &upstream).map_err(|e| origin.locate(e))?);
        }
        // One by one, so that a refusal names the later pair of two.
        for (i, (origin, _)) in raws.iter().enumerate() {
            let before: Vec<&PairSpec> = specs[..i].iter().collect();
            check_overlaps(&before, &specs[i..=i]).map_err(|e| origin.locate(e))?;
        }
        check_overlaps(&[], &specs)?;
        for ((origin, _), spec) in raws.iter().zip(&specs) {
            Patterns::load(&spec.excludes.patterns, &spec.excludes.files)
                .and_then(|p| PairExcludes::load(Arc::new(p), &spec.source))
                .map_err(|e| origin.locate(e))?;
        }
        Ok(specs)
    }

    /// A pair of the command line or a pairs file, with the command line's
    /// options.
    fn with_defaults(&self, raw: RawPair) -> RawPair {
        RawPair {
            options: self.options,
            excludes: self.excludes.clone(),
            ..raw
        }
    }
}
