//! chatserver: a real-time chat server on one SQLite file.
//!
//! Data flows one way: the HTTP and WebSocket edges (`http`, `ws`) parse and call a `service`,
//! which calls the `store` (all SQL, and the single writer); after each commit the writer hands
//! the events to the `hub`, which routes them to the sockets. docs/ARCHITECTURE.md draws it.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod limits;

mod auth;
mod broker;
mod cors;
mod http;
mod hub;
mod metrics;
mod model;
mod net;
mod protocol;
mod service;
mod state;
mod store;
mod ws;

pub use http::RouteInfo;
