//! Ctrl-C, SIGTERM and SIGHUP: say what the interruption means, remove this
//! process's partial objects from the repository, exit 130.
//!
//! A handler thread (signal-hook's iterator: the async-signal-safe part is
//! the crate's) waits for the signal; the command's threads are simply
//! stopped by the exit. That is safe because of the repository's write
//! order: whatever was published is whole, and the snapshot comes last.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lifeboat_store::WriteStore;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::exit;

static STORE: OnceLock<Arc<dyn WriteStore>> = OnceLock::new();
static NOTE: Mutex<&'static str> = Mutex::new("interrupted");
static GRACEFUL: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// For a daemon: the first interruption sets the returned flag instead of
/// exiting, so it can finish (or stop) what runs and exit cleanly; a second
/// interruption exits at once, as for any command.
pub fn graceful() -> Arc<AtomicBool> {
    Arc::clone(GRACEFUL.get_or_init(|| Arc::new(AtomicBool::new(false))))
}

/// Starts the handler thread. `json`: the interruption is also one JSON
/// document on stdout, as every outcome is.
pub fn install(json: bool) {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return; // no handler: the default (die) is still safe
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if let Some(flag) = GRACEFUL.get() {
                if !flag.swap(true, Ordering::SeqCst) {
                    say("lifeboat: stopping: what runs is finished or stopped cleanly first (interrupt again to exit at once)");
                    continue;
                }
            }
            if let Some(store) = STORE.get() {
                let _ = store.remove_own_temporaries();
            }
            let note = *NOTE.lock().unwrap_or_else(|e| e.into_inner());
            say(&format!("lifeboat: {note}"));
            if json {
                let doc = serde_json::json!({ "error": note, "exit_code": exit::INTERRUPTED });
                let _ = writeln!(std::io::stdout(), "{doc}");
            }
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    });
}

/// A line on stderr that cannot fail: `eprintln!` panics when stderr is
/// gone (a parent that was killed first), and a panicking handler thread
/// would leave the process running instead of exiting.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The repository whose temporaries an interruption removes.
pub fn watch_store(store: &Arc<dyn WriteStore>) {
    let _ = STORE.set(Arc::clone(store));
}

/// What an interruption of the running command means for the user.
pub fn set_note(note: &'static str) {
    *NOTE.lock().unwrap_or_else(|e| e.into_inner()) = note;
}
