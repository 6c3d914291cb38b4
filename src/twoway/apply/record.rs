//! The archive's side of applying: each path recorded as both sides
//! hold it once the action there is done, or forgotten.

use super::*;

impl Apply<'_> {
    /// Records `path` as both sides hold it now (after this pass's action
    /// there). `from`: the side a copy was made from and the entry it
    /// copied, recorded as such: were that side stat-ed now, an edit made
    /// there since the copy would be recorded as synced, and never copied.
    pub(super) fn record_now(&mut self, path: &[u8], from: Option<(Side, &Seen)>) {
        if self.ctx.options.dry_run {
            return;
        }
        let (a, b) = match (self.stat(Side::A, path), self.stat(Side::B, path)) {
            (Ok(Some(a)), Ok(Some(b))) => (a, b),
            // Changed again meanwhile: the next pass sees what it is.
            _ => return,
        };
        let mut seen = |m: &Meta, side: Side| -> Option<Seen> {
            let what = What::of(m.kind)?;
            let target = if what == What::Link {
                let name = name_of(path);
                let dir = self.dir(side, parent(path)).ok()?;
                Some(Box::new(fsops::read_link(dir, &name).ok()?.into_bytes()))
            } else {
                None
            };
            let mut seen = Seen::of(m, what, target);
            if !self.stable_inodes[idx(side)] {
                seen.ino = 0;
            }
            Some(seen)
        };
        let (Some(mut a), Some(mut b)) = (seen(&a, Side::A), seen(&b, Side::B)) else {
            return;
        };
        if let Some((side, copied)) = from {
            let mut copied = copied.clone();
            if !self.stable_inodes[idx(side)] {
                copied.ino = 0;
            }
            match side {
                Side::A => a = copied,
                Side::B => b = copied,
            }
        }
        self.record(path, Some(&a), Some(&b));
    }

    pub(super) fn record(&mut self, path: &[u8], a: Option<&Seen>, b: Option<&Seen>) {
        let (Some(a), Some(b)) = (a, b) else {
            return;
        };
        // Sides that differ (one changed again since this pass's action)
        // are not recorded: the next pass sees both changes.
        if a.what != b.what
            || (a.what == What::File && a.size != b.size)
            || (a.what == What::Link && a.target != b.target)
        {
            return;
        }
        let stamp = |s: &Seen| Stamp {
            mtime: s.mtime.nanos(),
            ctime: s.ctime,
            ino: s.ino,
            mode: s.mode,
        };
        let since = self
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
            - RACY_WINDOW_SECS;
        let rec = Record {
            what: a.what,
            size: a.size,
            target: a.target.clone(),
            a: stamp(a),
            b: stamp(b),
            racy: a.what == What::File && (a.mtime.sec >= since || b.mtime.sec >= since),
        };
        if let Err(e) = self.archive.put(path, rec) {
            self.log.state_error(&e);
        }
    }

    pub(super) fn forget(&mut self, path: &[u8]) {
        if let Err(e) = self.archive.forget(path) {
            self.log.state_error(&e);
        }
    }
}
