//! chatserver: a real-time chat server on one SQLite file.
//!
//! Data flows one way: HTTP/WS filter (`api`) → handler → `store` → `hub` → sockets.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod cors;
pub mod error;
pub mod hub;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod store;
pub mod validate;
