//! Platform services every area stands on: the store, credentials, jobs, events, audit.

pub mod answers;
pub mod audit;
pub mod auth;
pub mod events;
pub mod fetch;
pub mod jobs;
pub mod link_users;
pub mod memory;
pub mod pool_paths;
pub mod pool_users;
pub mod processes;
pub mod secrets;
pub mod serial;
pub mod stack_images;
pub mod state_files;
pub mod store;
pub mod tickets;
pub mod time;
pub mod workloads;
