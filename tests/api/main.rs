//! The integration suite, as one test binary: every module starts the real server (in-process
//! on port 0, or the real binary where a test needs a process) with its own temporary database
//! and talks to it over real HTTP and WebSocket. Shared set-up is in `helpers`.
//!
//! One binary rather than one per file: each test binary links the whole server and SQLite,
//! which on two cores cost more than running the tests.

// A failed unwrap or assertion here is a failed test, and a test reads as one scenario.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

mod helpers;

mod abuse;
mod attachments;
mod auth;
mod authz_matrix;
mod browser;
mod classroom;
mod cli;
mod cli_help;
mod cluster;
mod copy;
mod direct;
mod durability;
mod durability_limits;
mod edit_delete;
mod example_db;
mod extras;
mod groups;
mod messages;
mod openapi;
mod ops;
mod presence;
mod profile;
mod read_typing;
mod safety;
mod search;
mod slow_consumers;
mod startup_seed;
mod web_files;
mod websocket;
mod ws_fuzz;
