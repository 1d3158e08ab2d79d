//! Warren: a self-hosted tunnel registry.
//!
//! The binary (`src/main.rs`) and the integration tests start the same thing: a [`Config`]
//! becomes an [`AppState`], [`app`] turns it into a router, and [`serve`] runs that router
//! until a shutdown signal, with the background tasks beside it.

pub mod agent;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod db;
pub mod error;
pub mod events;
pub mod fleet;
pub mod http;
pub mod net;
pub mod remote;
pub mod server;
pub mod sse;
pub mod state;
pub mod tasks;
pub mod telemetry;
pub mod time;
pub mod tunnels;
pub mod webhooks;

pub use config::Config;
pub use server::{app, serve, Server};
pub use state::AppState;
