//! Conflict copies' names: `STEM.conflict-YYYYMMDD-HHMMSS.EXT` beside the
//! file, in the local time of the pass, as Syncthing's
//! `.sync-conflict-…` copies are named: the extension stays last, so the
//! copy opens in the same program. A name that would not fit the file
//! system's limit of 255 bytes has its stem shortened, never the tag.

use std::time::SystemTime;

use time::OffsetDateTime;
use time::macros::format_description;

/// The longest name (one path component) Linux file systems take.
const NAME_MAX: usize = 255;

/// The conflict name for `path` (a relative path): the `n`th candidate,
/// `-2`, `-3`… added after the time when the first is taken.
pub fn name(path: &[u8], when: SystemTime, n: u32) -> Vec<u8> {
    let (dir, file) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    let local = OffsetDateTime::from(when).to_offset(crate::logging::local_offset());
    let stamp = local
        .format(format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_else(|_| "00000000-000000".into());
    let mut tag = format!(".conflict-{stamp}").into_bytes();
    if n > 1 {
        tag.extend_from_slice(format!("-{n}").as_bytes());
    }
    let mut out = Vec::with_capacity(path.len() + 32);
    out.extend_from_slice(dir);
    out.extend_from_slice(&fitted(file, &tag));
    out
}

/// `STEM` + `tag` + `.EXT` for the name `file`, its stem shortened so that
/// the whole fits [`NAME_MAX`] bytes: a name of 230 bytes or more would
/// otherwise make a conflict copy that no file system takes. An extension
/// too long to leave a byte of stem counts as part of the stem.
fn fitted(file: &[u8], tag: &[u8]) -> Vec<u8> {
    // A leading dot starts a hidden name, not an extension.
    let (mut stem, mut ext) = match file.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => (&file[..i], &file[i..]),
        _ => (file, &b""[..]),
    };
    if tag.len() + ext.len() >= NAME_MAX {
        (stem, ext) = (file, &b""[..]);
    }
    let room = NAME_MAX.saturating_sub(tag.len() + ext.len());
    if stem.len() > room {
        stem = &stem[..char_floor(stem, room)];
    }
    [stem, tag, ext].concat()
}

/// The largest cut at or below `at` that splits no UTF-8 character of
/// `bytes` (any cut where the bytes before `at` are not UTF-8 anyway).
fn char_floor(bytes: &[u8], at: usize) -> usize {
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) if e.valid_up_to() >= at => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return at,
    };
    (0..=at)
        .rev()
        .find(|&i| valid.is_char_boundary(i))
        .unwrap_or(0)
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

    #[test]
    fn a_long_name_is_shortened_to_fit_keeping_its_extension_and_tag() {
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_989_038);
        let tag = ".conflict-20261129-215038";
        let long = format!("d/{}.txt", "x".repeat(250));
        for n in [1, 2, 1000] {
            let got = super::name(long.as_bytes(), when, n);
            let file = &got[2..];
            assert_eq!(file.len(), 255, "n = {n}");
            let want_end = if n > 1 {
                format!("{tag}-{n}.txt")
            } else {
                format!("{tag}.txt")
            };
            assert!(file.ends_with(want_end.as_bytes()), "n = {n}");
            assert!(got.starts_with(b"d/xxxx"));
        }
        // A name that just fits is not touched: 255 - 25 - 4 = 226 bytes
        // of stem.
        let fits = format!("{}.txt", "y".repeat(226));
        let got = super::name(fits.as_bytes(), when, 1);
        assert_eq!(got.len(), 255);
        assert!(got.starts_with(&fits.as_bytes()[..226]));
    }

    #[test]
    fn a_shortened_utf8_stem_is_cut_between_characters() {
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_989_038);
        // 3-byte characters: 255 - 25 - 3 = 227 bytes of room, 75 whole ones.
        let long = format!("{}.md", "\u{20ac}".repeat(100));
        let got = String::from_utf8(super::name(long.as_bytes(), when, 1)).unwrap();
        let want = format!("{}.conflict-20261129-215038.md", "\u{20ac}".repeat(75));
        assert_eq!(got, want);
    }

    #[test]
    fn an_extension_too_long_to_keep_is_cut_with_the_stem() {
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_989_038);
        let long = format!("a.{}", "e".repeat(240));
        let got = super::name(long.as_bytes(), when, 1);
        assert_eq!(got.len(), 255);
        assert!(got.ends_with(b".conflict-20261129-215038"));
        assert!(got.starts_with(b"a.eee"));
        // Not UTF-8: cut where it must be.
        let raw = [vec![0xffu8; 300], b".bin".to_vec()].concat();
        let got = super::name(&raw, when, 1);
        assert_eq!(got.len(), 255);
        assert!(got.ends_with(b".conflict-20261129-215038.bin"));
    }
}
