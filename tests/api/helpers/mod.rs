//! Shared set-up for the integration tests: an in-process server on port 0 with its own temporary
//! database, the real binary for restart / signal / CLI tests, and small HTTP and WebSocket clients.
//!
//! Every wait has a timeout; a timeout is a failure, never a way to synchronise.

mod api;
mod asserts;
mod process;
mod server;
mod ws;

use std::time::Duration;

pub use api::*;
pub use asserts::*;
pub use process::*;
pub use server::*;
pub use ws::*;

/// How long any single expected event may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The seeded users' password (see seed/ and docs/API.md "Out of the box").
pub const SEED_PASSWORD: &str = "password";
/// Password used for users the tests register.
pub const PASSWORD: &str = "correct horse battery";
pub const GENERAL: i64 = 1;
