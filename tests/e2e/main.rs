//! End-to-end tests: the real binary, real git repositories (a bare remote and one clone per
//! role), real signatures, and (for the workflow) a real Docker Engine.

mod agent;
mod blobs;
mod bundles;
mod carry;
mod env;
mod execution;
mod forgery;
mod forgery_git;
mod foundation;
mod grammar;
mod habits;
mod helpful;
mod listing;
mod medperf;
mod metrics;
mod offline;
mod private;
mod refusals;
mod release;
mod sandbox;
mod sealed;
mod services;
mod sites;
mod transport;
mod transport_refused;
mod workflow;
mod world;
