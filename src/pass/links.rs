//! Hard links: the names of one source file (within a pair) are made one
//! file in the replica too, where copying each name would take the space
//! of the file once per name.
//!
//! Only source files with more than one name are tracked, in groups keyed
//! by device and inode, for one pass (so two pairs never share a group).
//! The first name a pass meets is the group's leader and is synced like
//! any file (copied, touched or skipped, maybe as a big-file job); the
//! others follow: each becomes a hard link of the leader's replica file,
//! or is left alone when it already is one. A follower met while its
//! leader is still being synced waits in the group, holding a count of its
//! folder (so the folder's mtime is set after the link is made), and the
//! worker that finishes the leader makes the links: no worker ever waits
//! for another. When the leader fails, its followers are synced on their
//! own.
//!
//! A group keeps the leader's path, not its folder's handle (a pass over a
//! tree of linked files would hold a handle per folder); the folder is
//! opened again from the replica's root, name by name, only when a link
//! is made.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::Synced;
use super::report::Done;
use super::schedule::DirNode;
use super::walk::Walker;
use crate::cache::{Cache, Entry, Stamp};
use crate::cache_store::{self, CacheStore};
use crate::fsops::{self, Digest, Kind, Meta, join_rel};
use crate::logging::display_path;

/// What names one source file: its device and inode.
pub(super) type Key = (u64, u64);

pub(super) fn key(m: &Meta) -> Key {
    (m.dev, m.ino)
}

/// A name met while its group's leader was still being synced, with what
/// it takes to link or sync it later.
pub(super) struct Follower {
    pub(super) src: Arc<OwnedFd>,
    /// `None` in a dry run below a replica folder that does not exist yet.
    pub(super) dst: Option<Arc<OwnedFd>>,
    /// The folder's relative path; the file's is `dir_rel/name`.
    pub(super) dir_rel: Vec<u8>,
    pub(super) name: CString,
    pub(super) src_meta: Meta,
    pub(super) dst_meta: Option<Meta>,
    pub(super) old: Option<Entry>,
    /// Its folder, finished only after this name is done.
    pub(super) node: Arc<DirNode>,
}

/// The leader's replica file, which followers become links of.
#[derive(Clone)]
pub(super) struct Leader {
    /// Its path relative to the pair's roots.
    pub(super) rel: Vec<u8>,
    /// The replica file as the leader left it; `None` in a dry run where
    /// it would be copied (a new file, so no follower is linked yet).
    pub(super) replica: Option<Meta>,
    /// The digest of its bytes, when known, for the followers' entries.
    pub(super) digest: Option<Digest>,
}

enum Group {
    /// The leader is being synced; these followers wait for it.
    Pending(Vec<Follower>),
    Done {
        leader: Leader,
        /// The followers recorded in the cache as links of it.
        names: Vec<Vec<u8>>,
        /// Links were made to it in this pass, which moved its ctime.
        relinked: bool,
    },
    /// The leader failed: later names are synced on their own.
    Failed,
}

/// What a name of a linked source file does, as [`Links::join`] says.
pub(super) enum Role {
    /// The first name of its group: sync it, then call
    /// [`Links::leader_done`].
    Leader,
    /// Link it to (or leave it as a link of) this leader's replica file.
    Follow(Leader),
    /// Handed to the group; the leader's worker will do it.
    Waiting,
    /// Its leader failed: sync it as an ordinary file.
    Alone,
}

/// The pass's hard-link groups.
#[derive(Default)]
pub(super) struct Links {
    groups: Mutex<HashMap<Key, Group>>,
}

impl Links {
    /// Says what to do with a name of a source file that has several.
    /// `follower` is called only when the name must wait; it then holds
    /// one count of its folder.
    pub(super) fn join(&self, key: Key, follower: impl FnOnce() -> Follower) -> Role {
        let mut groups = self.groups.lock().expect("links poisoned");
        match groups.get_mut(&key) {
            None => {
                groups.insert(key, Group::Pending(Vec::new()));
                Role::Leader
            }
            Some(Group::Pending(waiting)) => {
                let follower = follower();
                follower.node.add_pending(1);
                waiting.push(follower);
                Role::Waiting
            }
            Some(Group::Done { leader, .. }) => Role::Follow(leader.clone()),
            Some(Group::Failed) => Role::Alone,
        }
    }

    /// Records how the leader of `key` ended (`None`: it failed) and hands
    /// back the followers that waited for it, each holding a count of its
    /// folder, for the caller to link (or sync) and release.
    pub(super) fn leader_done(&self, key: Key, leader: Option<Leader>) -> Vec<Follower> {
        let mut groups = self.groups.lock().expect("links poisoned");
        let state = match leader {
            Some(leader) => Group::Done {
                leader,
                names: Vec::new(),
                relinked: false,
            },
            None => Group::Failed,
        };
        match groups.insert(key, state) {
            Some(Group::Pending(waiting)) => waiting,
            _ => Vec::new(),
        }
    }

    /// Notes a follower recorded in the cache as a link of its leader's
    /// replica file, and whether the link was made now.
    fn note(&self, key: Key, rel: &[u8], linked: bool) {
        let mut groups = self.groups.lock().expect("links poisoned");
        if let Some(Group::Done {
            names, relinked, ..
        }) = groups.get_mut(&key)
        {
            names.push(rel.to_vec());
            *relinked |= linked;
        }
    }

    /// After the pass: each link made moved the ctime of the replica file,
    /// so the cache entries of its names, recorded along the way, no
    /// longer match it, and the next pass would read the file again to
    /// compare. They are recorded again from one last look at the file,
    /// provided it is still the same file with the same size and mtime.
    pub(super) fn restamp(
        self,
        replica_root: Option<&OwnedFd>,
        cache: &mut Cache,
        store: Option<&Mutex<CacheStore>>,
    ) {
        let Some(root) = replica_root else { return };
        let groups = self.groups.into_inner().expect("links poisoned");
        for group in groups.into_values() {
            let Group::Done {
                leader,
                mut names,
                relinked: true,
            } = group
            else {
                continue;
            };
            let (Some(was), Ok(now)) = (
                leader.replica,
                open_parent(root.as_fd(), &leader.rel)
                    .and_then(|(dir, name)| fsops::stat_at(dir.as_fd(), &name)),
            ) else {
                continue;
            };
            if key(&now) != key(&was) || (now.size, now.mtime) != (was.size, was.mtime) {
                continue;
            }
            names.push(leader.rel);
            for rel in names {
                cache.restamp_replica(&rel, Stamp::from(&now));
                if let Some(store) = store {
                    cache_store::lock(store).restamp_replica(&rel, Stamp::from(&now));
                }
            }
        }
    }
}

/// Opens the replica folder the file at `rel` is in, from the replica's
/// root and never following a symlink, and returns it with the file's
/// name.
fn open_parent(root: BorrowedFd<'_>, rel: &[u8]) -> io::Result<(OwnedFd, CString)> {
    let mut parts = rel.split(|&b| b == b'/');
    let name = parts.next_back().unwrap_or_default();
    let mut dir = root.try_clone_to_owned()?;
    for part in parts {
        dir = fsops::open_dir_at(dir.as_fd(), &CString::new(part)?)?;
    }
    Ok((dir, CString::new(name)?))
}

impl Walker<'_, '_> {
    /// Records how a group's leader ended (`synced`: `None` when it
    /// failed) and does the names that waited for it: links them to its
    /// replica file, or syncs each on its own when it failed.
    pub(super) fn leader_done(&mut self, src_meta: &Meta, rel: &[u8], synced: Option<&Synced>) {
        let leader = synced.map(|synced| Leader {
            rel: rel.to_vec(),
            replica: synced.replica,
            digest: synced.entry.and_then(|e| e.digest),
        });
        for f in self.shared.links.leader_done(key(src_meta), leader.clone()) {
            if !self.ctx.cancel.is_set() {
                let rel = join_rel(&f.dir_rel, f.name.to_bytes());
                let (src, dst) = (f.src.as_fd(), f.dst.as_deref().map(|d| d.as_fd()));
                let (s, d, old) = (&f.src_meta, f.dst_meta.as_ref(), f.old.as_ref());
                let entry = match &leader {
                    Some(leader) => self.follow(leader, src, dst, &rel, &f.name, s, d, old),
                    None => self
                        .sync_file(src, dst, &rel, &f.name, s, d, old)
                        .and_then(|synced| synced.entry),
                };
                if let Some(entry) = entry {
                    self.record(&f.dir_rel, &f.name, entry);
                }
            }
            self.release(Some(f.node));
        }
    }

    /// Makes a name of a linked source file a hard link of its leader's
    /// replica file, or leaves it when it already is one; returns its
    /// cache entry. Where no link can be made (a replica file system
    /// without hard links, such as FAT), the name is synced on its own.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn follow(
        &mut self,
        leader: &Leader,
        src: BorrowedFd<'_>,
        dst: Option<BorrowedFd<'_>>,
        rel: &[u8],
        name: &CStr,
        s: &Meta,
        d: Option<&Meta>,
        old: Option<&Entry>,
    ) -> Option<Entry> {
        if let (Some(r), Some(d)) = (&leader.replica, d) {
            if d.kind == Kind::File && key(d) == key(r) {
                self.shared.links.note(key(s), rel, false);
                return Some(Entry::new(s, r, leader.digest, self.shared.now));
            }
        }
        if !self.shared.replica.writes() {
            self.done(
                rel,
                Done::HardLinked {
                    leader: &leader.rel,
                },
            );
            return None;
        }
        let (Some(dst), Some(root), Some(r)) =
            (dst, self.shared.replica_root.get(), &leader.replica)
        else {
            return self
                .sync_file(src, dst, rel, name, s, d, old)
                .and_then(|synced| synced.entry);
        };
        let mut d = d;
        if let Some(folder) = d.filter(|d| d.kind == Kind::Dir) {
            if !self.remove_entry(dst, rel, name, folder) {
                return None;
            }
            d = None;
        }
        let linked = open_parent(root.as_fd(), &leader.rel)
            .map_err(|e| fsops::OpError {
                op: "open the linked file's folder",
                err: e,
            })
            .and_then(|(from, from_name)| fsops::hard_link(from.as_fd(), &from_name, dst, name, r));
        match linked {
            Ok(linked) => {
                self.done(
                    rel,
                    Done::HardLinked {
                        leader: &leader.rel,
                    },
                );
                self.shared.links.note(key(s), rel, true);
                Some(Entry::new(s, &linked, leader.digest, self.shared.now))
            }
            Err(e) => {
                self.ctx.log_debug(format_args!(
                    "{} not linked to {}: {e}; synced on its own",
                    display_path(rel),
                    display_path(&leader.rel)
                ));
                self.sync_file(src, Some(dst), rel, name, s, d, old)
                    .and_then(|synced| synced.entry)
            }
        }
    }
}
