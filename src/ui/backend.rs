//! What the menu drives: this process's own supervisor, or (for `foldersync
//! attach`) a running one through its control socket. Both end in the same
//! supervisor functions ([`crate::daemon::actions`]).

use std::sync::Mutex;

use super::render::list;
use crate::config::RawPair;
use crate::daemon::actions::{self, Action};
use crate::daemon::supervisor::{Supervisor, lock};

/// The pairs the menu shows and steers.
pub trait Backend {
    /// The text of option 1.
    fn list(&mut self) -> String;
    /// Does `action` to pair `id`: the sentence to show, either way.
    fn act(&mut self, action: Action, id: usize) -> Result<String, String>;
    /// Checks a source folder as soon as it is typed.
    fn check_source(&mut self, source: &std::path::Path) -> Result<(), String>;
    /// Checks a pair being added, before its last question.
    fn check(&mut self, raw: &RawPair) -> Result<(), String>;
    /// Starts a pair: the sentence to show, either way.
    fn add(&mut self, raw: RawPair) -> Result<String, String>;
    /// Whether this is a running service's, attached: option 3 detaches
    /// and option 8 stops it.
    fn attached(&self) -> bool;
    /// For an attached menu, stops the service (its option 8); `None` for
    /// the in-process menu, whose option 3 quits.
    fn stop_service(&mut self) -> Option<Result<String, String>>;
}

impl Backend for &Mutex<Supervisor> {
    fn list(&mut self) -> String {
        list(&lock(self).views())
    }

    fn act(&mut self, action: Action, id: usize) -> Result<String, String> {
        action.perform(&mut lock(self), id)
    }

    fn check_source(&mut self, source: &std::path::Path) -> Result<(), String> {
        actions::check_source(&lock(self), source)
    }

    fn check(&mut self, raw: &RawPair) -> Result<(), String> {
        actions::check_pair(&lock(self), raw.clone()).map(drop)
    }

    fn add(&mut self, raw: RawPair) -> Result<String, String> {
        actions::add_pair(&mut lock(self), raw)
    }

    fn attached(&self) -> bool {
        false
    }

    fn stop_service(&mut self) -> Option<Result<String, String>> {
        None
    }
}
