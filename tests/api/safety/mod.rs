//! Safe on a shared network: a class of students cannot break in, lock others out, or wear the
//! server down. Per-address rules are tried from distinct loopback addresses (127.0.0.2, …);
//! rules about clients that are not on loopback, from a network namespace of the test's own.

mod connections;
mod hosts;
mod input;
mod limits;
mod network;
mod operator;
mod proxy;
mod races;
mod sessions;
