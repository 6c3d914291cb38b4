//! What the program will do: validated sync pairs and options.
//!
//! Every pair, whether it comes from the command line, a pairs file or the
//! menu, goes through [`validate_pair`] and [`check_overlaps`], so the rules
//! are the same everywhere and are checked before anything is created.

use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::excludes::ExcludeLists;

/// The longest interval accepted: a year. Anything longer is a typo.
const MAX_INTERVAL_SECS: f64 = 365.0 * 24.0 * 3600.0;
/// The shortest interval accepted.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

pub mod file;
pub mod pairs_file;
pub mod sources;

/// One source/replica pair, its paths resolved (no `.`, `..` or symlinks in
/// the parts that exist) so that overlaps can be compared reliably.
#[derive(Clone, Debug, PartialEq)]
pub struct PairSpec {
    pub source: PathBuf,
    pub replica: PathBuf,
    pub interval: Duration,
    pub log_file: PathBuf,
    /// Synced as its source changes, besides every interval.
    pub watch: bool,
    /// Both folders are edited and each change goes either way (see
    /// [`crate::twoway`]); otherwise the replica mirrors the source.
    pub two_way: bool,
    /// What logs, the list and `ctl` call it: a config file's `name`;
    /// `None`: its number.
    pub name: Option<String>,
    /// Its options: a config file's, else the command line's.
    pub options: SyncOptions,
    pub excludes: ExcludeLists,
}

/// Options shared by every pair.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SyncOptions {
    pub checksum: bool,
    pub dry_run: bool,
    pub fsync: bool,
    /// Mirror an empty source even onto a non-empty replica.
    pub allow_empty_source: bool,
    /// Remove replica entries at excluded paths instead of leaving them.
    pub delete_excluded: bool,
    /// Most removals one pass may make.
    pub max_delete: Option<u64>,
    /// Most memory, in bytes, each pair's cache may use.
    pub cache_limit: Option<usize>,
    /// Folders one pass works on at once (`--jobs`); `None` picks two per
    /// core, at most 8.
    pub jobs: Option<NonZeroUsize>,
}

/// Parses a size in bytes: a number with an optional binary unit, `K`,
/// `M`, `G` or `T`, written `64M`, `64MiB` or `64MB` alike (all mean 2^20).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "size {text:?}: unknown unit {unit:?} (use K, M, G or T)"
            ));
        }
    };
    let value = number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .ok_or_else(|| format!("size {text:?} is not a positive number of bytes"))?;
    let bytes = value * (1u64 << shift) as f64;
    if bytes >= usize::MAX as f64 {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(bytes as usize)
}

/// The four fields of a pair as typed, before validation.
#[derive(Clone, Debug, PartialEq)]
pub struct RawPair {
    pub source: PathBuf,
    pub replica: PathBuf,
    pub interval: String,
    pub log_file: PathBuf,
    pub watch: bool,
    pub two_way: bool,
    pub name: Option<String>,
    pub options: SyncOptions,
    pub excludes: ExcludeLists,
}

/// Parses an interval: seconds as a positive number (fractions allowed), or
/// with a unit suffix `s`, `m` or `h`.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1.0),
        Some((i, 'm')) => (&text[..i], 60.0),
        Some((i, 'h')) => (&text[..i], 3600.0),
        _ => (text, 1.0),
    };
    let secs = number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .map(|n| n * unit)
        .ok_or_else(|| format!("interval {text:?} is not a number of seconds"))?;
    if secs <= 0.0 {
        return Err(format!("interval {text:?} must be more than zero seconds"));
    }
    if secs > MAX_INTERVAL_SECS {
        return Err(format!("interval {text:?} is longer than a year"));
    }
    let interval = Duration::from_secs_f64(secs);
    if interval < MIN_INTERVAL {
        // Passes back to back forever: surely a typo for something longer.
        return Err(format!(
            "interval {text:?} is shorter than a millisecond; it must be at least 0.001 s"
        ));
    }
    Ok(interval)
}

/// Resolves a path for comparison: the longest existing prefix is made
/// canonical (symlinks, `.`, `..`), the rest is normalised lexically. A
/// dangling symlink on the way is followed to where its target will be.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    resolve_links(path, 0)
}

/// [`resolve`], having followed `hops` dangling symlinks already.
fn resolve_links(path: &Path, hops: u32) -> io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match fs::canonicalize(existing) {
            Ok(mut base) => {
                for part in rest.iter().rev() {
                    match part {
                        Component::ParentDir => {
                            base.pop();
                        }
                        Component::Normal(name) => base.push(name),
                        _ => {}
                    }
                }
                return Ok(base);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(parent) = existing.parent() else {
                    return Err(e);
                };
                // A dangling symlink: a folder created at its target later
                // is reached through it, so compare where it leads.
                if let Ok(target) = fs::read_link(existing) {
                    if hops >= 40 {
                        return Err(io::Error::other("too many levels of symbolic links"));
                    }
                    let mut next = parent.join(target);
                    next.extend(rest.iter().rev());
                    return resolve_links(&next, hops + 1);
                }
                rest.push(
                    existing
                        .components()
                        .next_back()
                        .expect("a path with a parent has a last component"),
                );
                existing = parent;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Checks one pair the same way wherever it comes from and resolves its
/// paths. Nothing is created or changed. `upstream` are the replicas of the
/// other pairs that will run with it: a source that does not exist yet is
/// accepted inside one of them, since that pair will create it (a chain).
pub fn validate_pair(raw: &RawPair, upstream: &[PathBuf]) -> Result<PairSpec, String> {
    let interval = parse_interval(&raw.interval)?;
    if raw.source.as_os_str().is_empty() {
        return Err("source folder is empty".into());
    }
    if raw.replica.as_os_str().is_empty() {
        return Err("replica folder is empty".into());
    }
    if raw.log_file.as_os_str().is_empty() {
        return Err("log file is empty".into());
    }
    let source_arg = raw.source.as_path();
    match fs::metadata(source_arg) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("source {}: not a folder", source_arg.display())),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                && resolve(source_arg).is_ok_and(|s| upstream.iter().any(|r| s.starts_with(r))) => {
        }
        Err(e) => return Err(format!("source {}: {e}", source_arg.display())),
    }
    let source =
        resolve(source_arg).map_err(|e| format!("source {}: {e}", source_arg.display()))?;
    if let Some(fs_name) = pseudo_file_system(&source) {
        return Err(format!(
            "source {} is on {fs_name}, whose files do not know their own size; it cannot be mirrored",
            source_arg.display()
        ));
    }

    let replica_arg = raw.replica.as_path();
    let replica =
        resolve(replica_arg).map_err(|e| format!("replica {}: {e}", replica_arg.display()))?;
    match fs::metadata(&replica) {
        Ok(m) if !m.is_dir() => {
            return Err(format!("replica {}: not a folder", replica_arg.display()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = replica.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return Err(format!(
                    "replica {}: its parent folder {} does not exist",
                    replica_arg.display(),
                    parent.display()
                ));
            }
        }
        Err(e) => return Err(format!("replica {}: {e}", replica_arg.display())),
    }
    if replica == source {
        return Err(format!(
            "replica {} is the source folder itself",
            replica_arg.display()
        ));
    }
    if replica.starts_with(&source) {
        return Err(format!(
            "replica {} is inside the source folder {}",
            replica_arg.display(),
            source.display()
        ));
    }
    if source.starts_with(&replica) {
        return Err(format!(
            "replica {} contains the source folder {}",
            replica_arg.display(),
            source.display()
        ));
    }

    let log_arg = raw.log_file.as_path();
    let log_file = resolve(log_arg).map_err(|e| format!("log file {}: {e}", log_arg.display()))?;
    check_log_file(&log_file).map_err(|e| format!("log file {}: {e}", log_arg.display()))?;
    if log_file.starts_with(&replica) {
        return Err(format!(
            "log file {} is inside the replica folder, where a pass would delete it",
            log_arg.display()
        ));
    }
    if raw.two_way && log_file.starts_with(&source) {
        return Err(format!(
            "log file {} is inside the source folder of a two-way pair, which a pass writes as well",
            log_arg.display()
        ));
    }
    Ok(PairSpec {
        source,
        replica,
        interval,
        log_file,
        watch: raw.watch,
        two_way: raw.two_way,
        name: raw.name.clone(),
        options: raw.options,
        excludes: raw.excludes.clone(),
    })
}

/// The name of the kernel file system `path` is on when that is one whose
/// files report a size of 0 or 4096 whatever they hold (procfs, sysfs and
/// their kin): a copy would come out empty or be redone every pass.
fn pseudo_file_system(path: &Path) -> Option<&'static str> {
    let kind = rustix::fs::statfs(path).ok()?.f_type as u64;
    Some(match kind {
        0x9fa0 => "procfs (/proc)",
        0x6265_6572 => "sysfs (/sys)",
        0x0027_e0eb | 0x6367_7270 => "cgroupfs",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x7363_6673 => "securityfs",
        0x6265_6570 => "configfs",
        _ => return None,
    })
}

/// Checks that a log file can be appended to, without creating it.
fn check_log_file(path: &Path) -> Result<(), String> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err("is a folder".into()),
        Ok(_) => fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            if !parent.is_dir() {
                return Err(format!("its folder {} does not exist", parent.display()));
            }
            rustix::fs::access(parent, rustix::fs::Access::WRITE_OK)
                .map_err(|e| format!("cannot create it in {}: {e}", parent.display()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Refuses a set of pairs in which two would write into the same tree:
/// replicas that are the same folder or nested. `running` are pairs already
/// going; `new` are being added (and are checked against each other too).
pub fn check_overlaps(running: &[&PairSpec], new: &[PairSpec]) -> Result<(), String> {
    check_no_loop(running, new)?;
    for (i, a) in new.iter().enumerate() {
        let others = running.iter().copied().chain(new[..i].iter());
        for b in others {
            for (wa, wb) in a.writes().flat_map(|x| b.writes().map(move |y| (x, y))) {
                if wa == wb {
                    return Err(format!(
                        "two pairs write into the same {} {}",
                        a.role(wa),
                        wa.display()
                    ));
                }
                if overlap(wa, wb) {
                    let ((outer, of), (inner, by)) = if wa.starts_with(wb) {
                        ((wb, b), (wa, a))
                    } else {
                        ((wa, a), (wb, b))
                    };
                    return Err(format!(
                        "{} {} is inside {} {} of another pair; two pairs must never write into the same tree",
                        by.role(inner),
                        inner.display(),
                        of.role(outer),
                        outer.display()
                    ));
                }
            }
            for (log_owner, writer) in [(a, b), (b, a)] {
                if let Some(folder) = writer.writes().find(|w| log_owner.log_file.starts_with(w)) {
                    return Err(format!(
                        "log file {} is inside {} {} of another pair, where a pass would delete it",
                        log_owner.log_file.display(),
                        writer.role(folder),
                        folder.display()
                    ));
                }
            }
        }
    }
    Ok(())
}

impl PairSpec {
    /// How the pair is shown between its folders: `->` for a mirror,
    /// `<->` for two-way.
    pub fn arrow(&self) -> &'static str {
        if self.two_way { "<->" } else { "->" }
    }

    /// What `folder`, one this pair writes, is called in messages.
    fn role(&self, folder: &Path) -> &'static str {
        match (self.two_way, folder == self.replica) {
            (false, _) => "replica",
            (true, true) => "two-way replica",
            (true, false) => "two-way source",
        }
    }

    /// The folders this pair's passes write: the replica, and the source
    /// too for a two-way pair.
    pub fn writes(&self) -> impl Iterator<Item = &Path> {
        let source = self.two_way.then_some(self.source.as_path());
        std::iter::once(self.replica.as_path()).chain(source)
    }

    /// The folders this pair's passes read to decide: the source, and the
    /// replica too for a two-way pair.
    pub fn reads(&self) -> impl Iterator<Item = &Path> {
        let replica = self.two_way.then_some(self.replica.as_path());
        std::iter::once(self.source.as_path()).chain(replica)
    }
}

/// Whether one path is the other or lies inside it.
pub fn overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Whether pair `a` reads what pair `b` writes: a folder `a` reads and one
/// `b` writes overlap. Then `a` is downstream of `b` in a chain.
pub fn reads_from(a: &PairSpec, b: &PairSpec) -> bool {
    a.reads().any(|r| b.writes().any(|w| overlap(r, w)))
}

/// Refuses pairs that feed each other in a loop (A to B and B to A, or
/// longer): each would keep undoing the other, and no order exists in
/// which `--once` could run them.
fn check_no_loop(running: &[&PairSpec], new: &[PairSpec]) -> Result<(), String> {
    let all: Vec<&PairSpec> = running.iter().copied().chain(new).collect();
    // Depth-first search; 0 unvisited, 1 on the path, 2 done.
    fn visit(i: usize, all: &[&PairSpec], mark: &mut [u8], path: &mut Vec<usize>) -> bool {
        mark[i] = 1;
        path.push(i);
        for j in 0..all.len() {
            if j == i || !reads_from(all[j], all[i]) {
                continue;
            }
            if mark[j] == 1 || (mark[j] == 0 && visit(j, all, mark, path)) {
                path.push(j);
                return true;
            }
        }
        path.pop();
        mark[i] = 2;
        false
    }
    let mut mark = vec![0u8; all.len()];
    for start in 0..all.len() {
        let mut path = Vec::new();
        if mark[start] == 0 && visit(start, &all, &mut mark, &mut path) {
            let last = *path.last().expect("a loop has members");
            let first = path.iter().position(|&i| i == last).unwrap_or(0);
            let shown: Vec<String> = path[first..]
                .iter()
                .map(|&i| all[i].source.display().to_string())
                .collect();
            return Err(format!(
                "pairs sync in a loop ({}): each would undo the other; a chain must end",
                shown.join(" -> ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("0.001"), Ok(Duration::from_millis(1)));
        for bad in [
            "0", "-1", "abc", "", "NaN", "inf", "1e300", "s", "10x", "400d", "1e-10", "0.0009",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("0.5k"), Ok(512));
        assert_eq!(parse_size("2 GB"), Ok(2 << 30));
        for bad in ["", "0", "-1", "MiB", "12X", "1.2.3", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn overlapping_replicas_are_refused() {
        let spec = |r: &str| PairSpec {
            source: PathBuf::from("/src"),
            replica: PathBuf::from(r),
            interval: Duration::from_secs(1),
            log_file: PathBuf::from("/log"),
            watch: false,
            two_way: false,
            name: None,
            options: SyncOptions::default(),
            excludes: ExcludeLists::default(),
        };
        assert!(check_overlaps(&[], &[spec("/r1"), spec("/r2")]).is_ok());
        assert!(check_overlaps(&[], &[spec("/r1"), spec("/r1")]).is_err());
        assert!(check_overlaps(&[&spec("/r1")], &[spec("/r1/x")]).is_err());
        assert!(check_overlaps(&[&spec("/r1/x")], &[spec("/r1")]).is_err());
        // A prefix that is not a parent folder is not nesting.
        assert!(check_overlaps(&[&spec("/r1")], &[spec("/r10")]).is_ok());
        // A log file inside another pair's replica would be deleted by it.
        let mut logged = spec("/r2");
        logged.log_file = PathBuf::from("/r1/log");
        assert!(check_overlaps(&[&spec("/r1")], std::slice::from_ref(&logged)).is_err());
        assert!(check_overlaps(&[&logged], &[spec("/r1")]).is_err());
    }
}
