//! The pairs file: one pair a line, four fields separated by white space
//! and the optional words `watch` and `two-way` (or `one-way`, the
//! default) in either order, double quotes around a field with spaces,
//! `#` comments. Only parsing
//! happens here; the pairs are checked by [`super::sources`].

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
        let (mut watch, mut two_way) = (false, None);
        while fields.len() > 4 {
            let word = fields.pop().expect("more than four");
            match word.as_str() {
                "watch" if !watch => watch = true,
                "two-way" | "one-way" if two_way.is_none() => two_way = Some(word == "two-way"),
                _ => {
                    return Err(format!(
                        "{at}: after the four fields only the words watch and two-way (or one-way) may follow, each once, not {word:?}"
                    ));
                }
            }
        }
        let two_way = two_way.unwrap_or(false);
        let [source, replica, interval, log_file] =
            <[String; 4]>::try_from(fields).map_err(|f| {
                format!(
                    "{at}: expected 4 fields (source, replica, interval, log file) and the optional words watch and two-way, found {}",
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
                two_way,
                name: None,
                options: Default::default(),
                excludes: Default::default(),
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
    read_regular(file, "a pairs file")
}

/// Reads `what` (a pairs or config file) from a regular file of at most
/// 1 MiB.
pub fn read_regular(file: &Path, what: &str) -> Result<Vec<u8>, String> {
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
        return Err(format!(
            "not a regular file (a pipe, socket or device cannot be {what})"
        ));
    }
    if meta.len() > MAX_PAIRS_FILE {
        return Err(format!(
            "{} bytes is too big for {what} (at most 1 MiB)",
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
    fn watch_and_direction_may_follow_in_either_order() {
        let text =
            "/a /b 10 log watch\n/c /d 10 log\n/e /f 1 log two-way watch\n/g /h 1 log one-way\n";
        let pairs = parse(Path::new("p"), text).unwrap();
        let flags: Vec<_> = pairs.iter().map(|(_, p)| (p.watch, p.two_way)).collect();
        assert_eq!(
            flags,
            [(true, false), (false, false), (true, true), (false, false)]
        );
        for bad in [
            "/a /b 10 log watsh\n",
            "/a /b 10 log watch x\n",
            "/a /b 10 log watch watch\n",
            "/a /b 1 log two-way one-way\n",
        ] {
            let err = parse(Path::new("p"), bad).unwrap_err();
            assert!(
                err.starts_with("p:1: after the four fields only the words"),
                "{err}"
            );
        }
    }
}
