//! How a worker waits between passes: on its triggers and the interval,
//! and, for a watched pair, on its watch, whose change notes are gathered
//! per path ([`Coalesce`]) into the passes.

use std::path::PathBuf;
use std::time::Instant;

use crossbeam_channel::{RecvTimeoutError, select};
use log::{debug, info, warn};

use crate::daemon::coalesce::{Coalesce, Kind};
use crate::daemon::watch::{Note, Renewal, Watch};
use crate::daemon::worker::{Trigger, Worker, format_interval};
use crate::status::WatchStatus;

impl Worker {
    /// Sleeps until the next trigger: one sent, or the interval's end at
    /// `next`. A supervisor gone counts as a stop.
    pub(super) fn wait(&self, next: Instant) -> Trigger {
        match self
            .triggers
            .recv_timeout(next.saturating_duration_since(Instant::now()))
        {
            Ok(trigger) => trigger,
            Err(RecvTimeoutError::Timeout) => Trigger::Interval,
            Err(RecvTimeoutError::Disconnected) => Trigger::Stop,
        }
    }

    /// Starts watching the source (and a two-way pair's replica) if the
    /// pair asks for it; a folder that cannot be watched is said once and
    /// left to the full passes (`fell_back` says why).
    pub(super) fn start_watch(
        &self,
        target: &str,
        fell_back: &mut Option<String>,
    ) -> Option<Watch> {
        if !self.spec.watch || self.once {
            return None;
        }
        let mut roots = vec![(self.spec.source.as_path(), "source")];
        if self.spec.two_way {
            // Both sides are edited. A replica the first pass has yet to
            // create is watched once it exists (see `Worker::run`).
            if !self.spec.replica.is_dir() {
                return None;
            }
            roots.push((self.spec.replica.as_path(), "replica"));
        }
        // Those in a root are watched with it.
        let patterns: Vec<PathBuf> = (self.excludes.lock().expect("excludes poisoned").files())
            .into_iter()
            .filter_map(|f| std::path::absolute(f).ok())
            .filter(|f| !roots.iter().any(|(root, _)| f.starts_with(root)))
            .collect();
        let excludes = self.excludes.lock().expect("excludes poisoned").matcher();
        match Watch::start(&roots, &patterns, excludes) {
            Ok(w) => {
                info!(
                    target: target,
                    "pair {}: watching the {} for changes",
                    self.id,
                    if self.spec.two_way { "source and the replica" } else { "source" }
                );
                Some(w)
            }
            Err((which, why)) => {
                self.say_unwatched(target, which, &why);
                *fell_back = Some(why);
                None
            }
        }
    }

    pub(super) fn say_unwatched(&self, target: &str, which: &str, why: &str) {
        warn!(
            target: target,
            "pair {}: warning: the {which} cannot be watched: {why}; changes are synced by the full pass every {} instead",
            self.id,
            format_interval(self.spec.interval)
        );
    }

    /// Says the first time events were lost; a full pass follows each time.
    pub(super) fn say_lost(&self, target: &str, said: &mut bool) {
        let line = "the kernel dropped change events (its queue overflowed); a full pass now finds what changed";
        if *said {
            debug!(target: target, "pair {}: {line}", self.id);
        } else {
            warn!(target: target, "pair {}: warning: {line}", self.id);
        }
        *said = true;
    }

    /// What starts the next pass of a pair that may be watched: its watch's
    /// notes, its triggers or the interval. After a full pass (`look`),
    /// and when told, it looks whether a root's path holds a new folder:
    /// that one is watched, and a full pass looks at it.
    pub(super) fn next_trigger(
        &self,
        next: Instant,
        look: bool,
        watching: &mut Watching,
    ) -> Trigger {
        let mut look = look;
        if let Some(w) = watching.watch.as_mut() {
            // The patterns the last pass read: watch what they leave in.
            if w.patterns(self.excludes.lock().expect("excludes poisoned").matcher()) {
                crate::status::lock(&self.status).watch = watching.status();
            }
        }
        loop {
            let Some(w) = watching.watch.as_mut() else {
                return self.wait(next);
            };
            if look {
                look = false;
                if let Some(trigger) = self.renew(watching) {
                    watching.coalesce.clear();
                    return trigger;
                }
                continue;
            }
            let waited = self.wait_watched(next, w, &mut watching.coalesce);
            if !matches!(waited, Waited::Trigger(Trigger::Changed(_)) | Waited::Root) {
                // A full pass (or the end) covers what waits.
                watching.coalesce.clear();
            }
            match waited {
                Waited::Trigger(t) => return t,
                Waited::Lost => {
                    self.say_lost(&watching.target, &mut watching.said_lost);
                    return Trigger::SyncNow;
                }
                Waited::Broken(why) => {
                    let which = if self.spec.two_way { "pair" } else { "source" };
                    self.say_unwatched(&watching.target, which, &why);
                    watching.watch = None;
                    watching.fell_back = Some(why);
                    return Trigger::SyncNow;
                }
                Waited::Root => look = true,
            }
        }
    }

    /// Watches a new folder at a root's path ([`Watch::renew`]); `Some`
    /// (a full pass) when the watch changed.
    fn renew(&self, watching: &mut Watching) -> Option<Trigger> {
        let w = watching.watch.as_mut()?;
        let target = &watching.target;
        let trigger = match w.renew() {
            Renewal::Same => return None,
            Renewal::Missing => {
                let why = w.off().unwrap_or_default();
                info!(target: target, "pair {}: {why}", self.id);
                None
            }
            Renewal::Renewed(name) => {
                info!(
                    target: target,
                    "pair {}: a new {name} folder is at {}: watching it, and a full pass looks at it",
                    self.id,
                    if name == "source" { &self.spec.source } else { &self.spec.replica }.display()
                );
                Some(Trigger::SyncNow)
            }
            Renewal::Failed(name, why) => {
                self.say_unwatched(target, &name, &why);
                watching.watch = None;
                watching.fell_back = Some(why);
                Some(Trigger::SyncNow)
            }
        };
        crate::status::lock(&self.status).watch = watching.status();
        trigger
    }

    /// Like [`Worker::wait`], also woken by the watch, whose notes are
    /// gathered per path ([`Coalesce`]): the wait ends when the first
    /// path is due, with a pass over the paths due then; the others wait
    /// on. A command sent meanwhile wins: its full pass covers them all.
    fn wait_watched(&self, next: Instant, watch: &Watch, coalesce: &mut Coalesce) -> Waited {
        let timeout = crossbeam_channel::at(next);
        loop {
            // What is queued already joins without a wait; counted first,
            // so a stream cannot keep the loop here.
            let now = Instant::now();
            for note in watch.notes.try_iter().take(watch.notes.len()) {
                if let Err(waited) = gather(Ok(note), coalesce, now) {
                    return waited;
                }
            }
            let due = coalesce.due();
            if due.is_some_and(|d| d <= now) {
                return Waited::Trigger(Trigger::Changed(coalesce.take(now)));
            }
            let wake = due.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
            select! {
                recv(self.triggers) -> t => return Waited::Trigger(t.unwrap_or(Trigger::Stop)),
                recv(watch.notes) -> note => {
                    if let Err(waited) = gather(note, coalesce, Instant::now()) {
                        return waited;
                    }
                },
                recv(wake) -> _ => {},
                recv(timeout) -> _ => return Waited::Trigger(Trigger::Interval),
            }
        }
    }
}

/// A watched pair's watch and what the worker says of it.
pub(super) struct Watching {
    /// `None` for a pair not watched, or not watching any more.
    pub watch: Option<Watch>,
    /// Why a watched pair is not watching, for the list.
    pub fell_back: Option<String>,
    /// Whether lost events were said already (a warning once).
    pub said_lost: bool,
    /// The watch's changes waiting for their pass.
    pub coalesce: Coalesce,
    /// The pair's log target.
    pub target: String,
}

impl Watching {
    /// The watch as the list shows it.
    pub fn status(&self) -> Option<WatchStatus> {
        watch_status(self.watch.as_ref(), self.fell_back.as_deref())
    }
}

/// A watched pair's watch as the list shows it; `None` for a pair not
/// watched.
pub(super) fn watch_status(watch: Option<&Watch>, fell_back: Option<&str>) -> Option<WatchStatus> {
    match (watch, fell_back) {
        (Some(w), _) => Some(match w.off() {
            Some(why) => WatchStatus::Off(why),
            None => WatchStatus::On(w.folders()),
        }),
        (None, Some(why)) => Some(WatchStatus::FellBack(why.to_string())),
        (None, None) => None,
    }
}

/// Adds a change note to `coalesce`; a note that ends the wait (lost
/// events, a broken watch, a root's folder replaced) is the `Err`.
fn gather(
    note: Result<Note, crossbeam_channel::RecvError>,
    coalesce: &mut Coalesce,
    now: Instant,
) -> Result<(), Waited> {
    let (kind, path) = match note {
        Ok(Note::Changed(path)) => (Kind::Changed, path),
        Ok(Note::Settled(path)) => (Kind::Settled, path),
        Ok(Note::Arrived(folder)) => (Kind::Arrived, folder),
        // The root's entry: a pass over the top folder reads the patterns
        // again, and looks at every folder if they changed.
        Ok(Note::Patterns) => (Kind::Settled, Vec::new()),
        Ok(Note::Lost) => return Err(Waited::Lost),
        Ok(Note::Root) => return Err(Waited::Root),
        Ok(Note::Broken(why)) => return Err(Waited::Broken(why)),
        Err(_) => return Err(Waited::Broken("the watch ended".into())),
    };
    coalesce.note(kind, path, now);
    Ok(())
}

/// What a watched pair's wait ended with.
pub(super) enum Waited {
    Trigger(Trigger),
    /// Events were lost: a full pass, watching goes on.
    Lost,
    /// Watching is over: full passes only, from now on.
    Broken(String),
    /// The folder at a root's path may be another one now.
    Root,
}
