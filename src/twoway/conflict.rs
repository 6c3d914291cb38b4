//! Conflict copies' names: `STEM.conflict-YYYYMMDD-HHMMSS.EXT` beside the
//! file, in the local time of the pass, as Syncthing's
//! `.sync-conflict-…` copies are named: the extension stays last, so the
//! copy opens in the same program.

use std::time::SystemTime;

use time::OffsetDateTime;
use time::macros::format_description;

/// The conflict name for `path` (a relative path): the `n`th candidate,
/// `-2`, `-3`… added after the time when the first is taken.
pub fn name(path: &[u8], when: SystemTime, n: u32) -> Vec<u8> {
    let (dir, file) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    // A leading dot starts a hidden name, not an extension.
    let (stem, ext) = match file.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => (&file[..i], &file[i..]),
        _ => (file, &b""[..]),
    };
    let local = OffsetDateTime::from(when).to_offset(crate::logging::local_offset());
    let stamp = local
        .format(format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_else(|_| "00000000-000000".into());
    let mut out = Vec::with_capacity(path.len() + 32);
    out.extend_from_slice(dir);
    out.extend_from_slice(stem);
    out.extend_from_slice(b".conflict-");
    out.extend_from_slice(stamp.as_bytes());
    if n > 1 {
        out.extend_from_slice(format!("-{n}").as_bytes());
    }
    out.extend_from_slice(ext);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_extension_stays_last_and_a_counter_follows_the_time() {
        // 2026-11-29 21:50:38 UTC; logging is not set up here, so UTC.
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_989_038);
        let name = |p: &[u8], n| String::from_utf8(super::name(p, when, n)).unwrap();
        assert_eq!(
            name(b"a/report.txt", 1),
            "a/report.conflict-20261129-215038.txt"
        );
        assert_eq!(name(b"b.tar.gz", 2), "b.tar.conflict-20261129-215038-2.gz");
        assert_eq!(name(b"x/.bashrc", 1), "x/.bashrc.conflict-20261129-215038");
        assert_eq!(name(b"Makefile", 1), "Makefile.conflict-20261129-215038");
    }
}
