//! The HTTP API over real HTTP: a server on a loopback port, a store file in a temporary
//! directory, and a minimal HTTP/1.1 client on a raw TCP stream.
//!
//! One test binary; the tests are grouped by job in the modules below, with the shared server
//! and client in `support`.

mod auth;
mod events;
mod findings;
mod postgres;
mod reads;
mod steering;
mod support;
mod workers;
