//! The pairs file: one pair a line, four fields separated by white space
//! and an optional fifth word `watch`, double quotes around a field with
//! spaces, `#` comments. Only parsing
//! happens here; the pairs are checked by [`super::validate_pairs`].

use std::fs;
use std::path::Path;

use super::RawPair;

/// Splits a pairs-file line into fields: white space separates them, a
/// field in double quotes may hold spaces, and inside quotes `\"` and `\\`
/// stand for `"` and `\`.
pub fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(fields);
        };
        let mut field = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a quoted field has no closing quote".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\')) => field.push(c),
                        Some(c) => {
                            field.push('\\');
                            field.push(c);
                        }
                        None => return Err("a quoted field has no closing quote".into()),
                    },
                    Some(c) => field.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err("a closing quote must be followed by a space".into());
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '"' {
                    return Err("a quote may only start a field".into());
                }
                field.push(c);
            }
        }
        fields.push(field);
    }
}

/// Parses the text of a pairs file into pairs with their line numbers;
/// errors name `FILE:LINE`.
pub fn parse(file: &Path, text: &str) -> Result<Vec<(usize, RawPair)>, String> {
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{}:{}", file.display(), i + 1);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_fields(trimmed).map_err(|e| format!("{at}: {e}"))?;
        let mut fields = fields;
        let watch = match fields.get(4).map(String::as_str) {
            Some("watch") if fields.len() == 5 => {
                fields.pop();
                true
            }
            Some(word) if fields.len() == 5 => {
                return Err(format!(
                    "{at}: the fifth field may only be the word watch, not {word:?}"
                ));
            }
            _ => false,
        };
        let [source, replica, interval, log_file] =
            <[String; 4]>::try_from(fields).map_err(|f| {
                format!(
                    "{at}: expected 4 fields (source, replica, interval, log file) and an optional watch, found {}",
                    f.len()
                )
            })?;
        pairs.push((
            i + 1,
            RawPair {
                source: source.into(),
                replica: replica.into(),
                interval,
                log_file: log_file.into(),
                watch,
            },
        ));
    }
    Ok(pairs)
}

/// Reads and validates a pairs file; errors name `FILE:LINE`.
pub fn load(file: &Path) -> Result<Vec<(String, RawPair)>, String> {
    let bytes = read_pairs_file(file).map_err(|e| format!("pairs file {}: {e}", file.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("pairs file {}: not valid UTF-8 text", file.display()))?;
    Ok(parse(file, &text)?
        .into_iter()
        .map(|(line, pair)| (format!("{}:{line}", file.display()), pair))
        .collect())
}

/// The largest pairs file read: far more than any real list of pairs, and
/// small enough that `--pairs /dev/zero` cannot eat the memory.
const MAX_PAIRS_FILE: u64 = 1 << 20;

/// Reads a pairs file, which must be a regular file of sane size: a FIFO
/// with no writer would hang, a device would never end.
fn read_pairs_file(file: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO with no writer must not wait for one.
    let handle = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(file)
        .map_err(|e| e.to_string())?;
    let meta = handle.metadata().map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("is a folder, not a file".into());
    }
    if !meta.is_file() {
        return Err("not a regular file (a pipe, socket or device cannot be a pairs file)".into());
    }
    if meta.len() > MAX_PAIRS_FILE {
        return Err(format!(
            "{} bytes is too big for a pairs file (at most 1 MiB)",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    handle
        .take(MAX_PAIRS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PAIRS_FILE {
        return Err("grew past 1 MiB while being read".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_quotes() {
        assert_eq!(
            split_fields(r#"a  b "c d" e"#).unwrap(),
            ["a", "b", "c d", "e"]
        );
        assert_eq!(
            split_fields(r#""a \"q\" \\ \n""#).unwrap(),
            [r#"a "q" \ \n"#]
        );
        assert_eq!(split_fields(r#""""#).unwrap(), [""]);
        assert!(split_fields(r#""open"#).is_err());
        assert!(split_fields(r#""a"b"#).is_err());
        assert!(split_fields(r#"a"b"#).is_err());
    }

    #[test]
    fn pairs_file_errors_name_the_line() {
        let text = "# comment\n\n/a /b 10 log\n/a /b 10\n";
        let err = parse(Path::new("p.txt"), text).unwrap_err();
        assert!(err.starts_with("p.txt:4: expected 4 fields"), "{err}");
    }

    #[test]
    fn a_fifth_field_may_only_be_watch() {
        let pairs = parse(Path::new("p"), "/a /b 10 log watch\n/c /d 10 log\n").unwrap();
        assert!(pairs[0].1.watch);
        assert!(!pairs[1].1.watch);
        let err = parse(Path::new("p"), "/a /b 10 log watsh\n").unwrap_err();
        assert!(err.starts_with("p:1: the fifth field may only be"), "{err}");
        let err = parse(Path::new("p"), "/a /b 10 log watch x\n").unwrap_err();
        assert!(err.starts_with("p:1: expected 4 fields"), "{err}");
    }
}
