//! bastion-replay: the security reviewer's terminal UI for finding and replaying recorded
//! sessions. It reads recordings through the `recorder` crate only (never the `bastion`
//! crate): a browser over the recording store, a player with a faithful terminal emulator
//! (`avt`), search over the recordings' text, live follow, ending live sessions and export.
//!
//! Layout: [`source`] is "a recording" behind one trait; [`worker`] loads and replays it in
//! the background; [`catalog`] and [`search`] feed the browser in the background; [`app`] is
//! the pure state machine (key → action → state); [`ui`] draws the state; [`wiring`] carries
//! out the state machine's effects; `main.rs` connects it all to the real terminal.

pub mod app;
pub mod catalog;
pub mod config;
pub mod export;
pub mod screen;
pub mod search;
pub mod source;
pub mod ui;
pub mod units;
pub mod wiring;
pub mod worker;
