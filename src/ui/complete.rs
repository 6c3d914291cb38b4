//! Tab completion of the path being typed in the "Add a sync pair"
//! prompts. The whole answer is one path (spaces included, nothing
//! escaped), which is why rustyline's word-splitting `FilenameCompleter`
//! does not fit.

use std::path::PathBuf;

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

/// The line editor's helper: completes paths when the prompt asks for one.
#[derive(Default)]
pub struct PathHelper {
    /// Set for the source, replica and log file prompts.
    pub paths: bool,
}

impl Completer for PathHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        if !self.paths {
            return Ok((pos, Vec::new()));
        }
        Ok(complete_path(&line[..pos]))
    }
}

impl Hinter for PathHelper {
    type Hint = String;
}
impl Highlighter for PathHelper {}
impl Validator for PathHelper {}
impl Helper for PathHelper {}

/// Where the last path component of `typed` starts, and the entries of its
/// folder that it could become (folders with a trailing `/`), sorted.
/// Leading blanks and an opening quote are left alone; `~` means home.
pub fn complete_path(typed: &str) -> (usize, Vec<String>) {
    let start = typed.len() - typed.trim_start().len();
    let start = start + usize::from(typed[start..].starts_with(['"', '\'']));
    let word = &typed[start..];
    if word == "~" {
        return (start, vec!["~/".into()]);
    }
    let (dir, prefix, at) = match word.rfind('/') {
        Some(i) => (&word[..=i], &word[i + 1..], start + i + 1),
        None => ("", word, start),
    };
    let folder = if dir.is_empty() {
        PathBuf::from(".")
    } else {
        expand_home(dir)
    };
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return (at, Vec::new());
    };
    let mut found: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !name.starts_with(prefix) || (name.starts_with('.') && !prefix.starts_with('.')) {
                return None;
            }
            // Follows a symlink: a link to a folder completes as a folder.
            let is_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
            Some(if is_dir { name + "/" } else { name })
        })
        .collect();
    found.sort();
    (at, found)
}

/// `~/x` means the home folder, as it would in a shell. (A bare `~` stays a
/// name, as the menu has always read it; Tab turns it into `~/`.)
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_the_last_component_of_a_path_with_spaces() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("my src")).unwrap();
        std::fs::write(dir.path().join("my notes.txt"), "").unwrap();
        std::fs::write(dir.path().join(".hidden"), "").unwrap();
        let typed = format!("  \"{}/my", dir.path().display());
        let (at, found) = complete_path(&typed);
        assert_eq!(at, typed.len() - 2);
        assert_eq!(found, ["my notes.txt", "my src/"]);
        let (_, all) = complete_path(&format!("{}/", dir.path().display()));
        assert_eq!(all.len(), 2, "hidden files only for a leading dot");
    }

    #[test]
    fn a_tilde_slash_is_the_home_folder_and_tab_completes_a_bare_tilde() {
        let home = PathBuf::from(std::env::var_os("HOME").unwrap());
        assert_eq!(expand_home("~"), PathBuf::from("~"));
        assert_eq!(expand_home("~/a b"), home.join("a b"));
        assert_eq!(expand_home("a/~"), PathBuf::from("a/~"));
        assert_eq!(complete_path("~"), (0, vec!["~/".to_string()]));
    }
}
